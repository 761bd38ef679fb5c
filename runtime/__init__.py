"""The torch-free runtime: bundles, backends, sources, stages and readings."""
