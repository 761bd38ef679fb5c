"""`emo-live calibrate` for affectgpt bundles: INT8 Q/DQ encoders and the LLM's weight forms.

``windows``: media -> the reasoner's inputs (8 frames, 8 clips per window), calibration and
check windows from media that share no file and no person. ``encoders``: Q/DQ variants of
the vision and audio graphs (the fusion graph is all projection and stays fp32), bounded by
per-token cosine with fp32 on the check windows. ``forms``: the decoder's int8/int4/int4f/
w8a8 forms built from the bundle's fp32 graph. ``answers``: the greedy answer on the check windows, fp32 against each variant.
``bundle``: the whole run and what it writes; ``report``: the report files.
"""
