"""`emo-live eval`: how right the readings are, on labelled data.

The product is the reading, so evaluation runs the bundle's own profile stages on every item
(``items.py``) and scores the readings: label metrics with calibration (``metrics.py``), the
EMER metrics on items with reference clues (``emer.py``), and a report in Markdown, JSON and
PNG plots (``report.py``). Datasets come from a manifest CSV or the built-in MELD and
GoEmotions readers (``readers.py``).
"""
