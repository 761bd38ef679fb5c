"""Calibration: explicit Q/DQ INT8 graphs from calibration sets, with fp32-vs-int8 reports."""
