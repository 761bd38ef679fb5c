"""`emo-live calibrate` for the LLM profiles' bundles (affectgpt, emotion_llama): INT8 Q/DQ
encoders and the LLM's weight forms.

``profiles``: what differs by profile (which graphs are encoders, how a window becomes their
feeds, how the runtime's model loads and answers). ``windows``: media -> the reasoners'
windows (frames and 16 kHz audio), calibration and check windows from media that share no
file and no person. ``encoders``: Q/DQ variants of the encoders (affectgpt's fusion graph is
all projection and stays fp32), bounded by per-token cosine with fp32 on the check windows.
``forms``: the decoder's int8/int4/int4f/w8a8 forms built from the bundle's fp32 graph.
``answers``: the greedy answer on the check windows, fp32 against each variant. ``bundle``:
the whole run and what it writes; ``report``: the report files.
"""
