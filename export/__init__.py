"""Export: trained models to checked ONNX graphs and bundles. The only place that imports torch."""
