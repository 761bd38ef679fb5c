"""Calibration: explicit Q/DQ INT8 graphs from calibration sets, with fp32-vs-int8 reports.

``emolive.calibrate.vision.calibrate_bundle(bundle_dir, config, log)`` is the entry point
(``emo-live calibrate``). Modules: ``media`` (calibration / held-out evaluation media, kept
apart), ``sets`` (graph inputs made by the runtime's own preprocessing, cached), ``qdq``
(ONNX Runtime static Q/DQ quantization), ``metrics`` and ``report`` (agreement, latency,
floors).
"""
