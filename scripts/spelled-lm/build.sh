#!/bin/bash
# Rebuild the "books + spelled/command" 3-gram LM and lexicon from scratch, and a bundle copy that uses them.
#
#   scripts/spelled-lm/build.sh                 # LINES=100000 generated lines, out: runs/lm-spelled/g100000/
#   LINES=300000 scripts/spelled-lm/build.sh    # another mix
#
# Inputs (read only): runs/lm/lm_train.txt, runs/lm/vocab_100000.txt, runs/lm/ship/lexicon.txt.gz,
# data/an4_train.jsonl (minus the 4 tuning speakers of split_an4.py), data/fsdd_train.jsonl,
# and the bundle in $BUNDLE (only copied). Never reads data/test_an4.jsonl.
# Outputs: $OUT/{text.txt (removed at the end), vocab.txt, lexicon.txt.gz, lm.klm, build.json}, $OUT/bundle/.
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${LINES:-100000}
SEED=${SEED:-0}
BUNDLE=${BUNDLE:-models/bundles/whisper-ctc-base}
LM_WEIGHT=${LM_WEIGHT:-}      # empty: keep the bundle's
WORD_SCORE=${WORD_SCORE:-}
D=runs/lm-spelled
OUT=${OUT:-$D/g$LINES}
PY=.venv/bin/python
mkdir -p "$OUT"

# 1. AN4 training speakers: 4 held out for tuning (data/tune_an4.jsonl), the rest (data/an4_lmtrain.jsonl) for LM text.
$PY scripts/spelled-lm/split_an4.py $D/data

# 2. In-domain transcripts: AN4 (LM speakers) and FSDD, normalised like the LM text.
$PY - "$D/data/an4_lmtrain.jsonl" data/fsdd_train.jsonl > "$OUT/transcripts.txt" <<'EOF'
import json, sys
from app.asr.text import normalize_text
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        text = normalize_text(json.loads(line)["text"])
        if text:
            print(text)
EOF

# 3. Rule-generated spelled letters, digit strings, numbers, dates, commands.
nice -n 5 $PY scripts/spelled-lm/generate.py --lines "$LINES" --seed "$SEED" --vocab runs/lm/vocab_100000.txt > "$OUT/generated.txt"

# 4. Vocabulary and lexicon: the 100k words plus any in-domain word they lack (AN4 train: "rubout").
$PY - "$OUT" <<'EOF'
import gzip, sys
from pathlib import Path
out = Path(sys.argv[1])
vocab = open("runs/lm/vocab_100000.txt", encoding="utf-8").read().split()
known = set(vocab)
extra = []
for name in ("transcripts.txt", "generated.txt"):
    for line in open(out / name, encoding="utf-8"):
        for w in line.split():
            if w not in known:
                known.add(w)
                extra.append(w)
(out / "vocab.txt").write_text("\n".join(vocab + extra) + "\n", encoding="utf-8")
with gzip.open("runs/lm/ship/lexicon.txt.gz", "rt", encoding="utf-8") as f:
    lexicon = f.read()
lexicon += "".join(f"{w}\t{' '.join(w)} |\n" for w in extra)
with gzip.GzipFile(out / "lexicon.txt.gz", "wb", mtime=0) as f:
    f.write(lexicon.encode("utf-8"))
print("added words:", extra, file=sys.stderr)
EOF

# 5. LM text: the books (24.3M words) + transcripts + generated lines; then lmplz + build_binary as shipped.
cat runs/lm/lm_train.txt "$OUT/transcripts.txt" "$OUT/generated.txt" > "$OUT/text.txt"
nice -n 5 $PY -m models.lm.kenlm --corpus "$OUT/text.txt" --out "$OUT" --order 3 --prune 0 2 3 --vocab "$OUT/vocab.txt"
rm -f "$OUT/text.txt"

# 6. A copy of the bundle that decodes with them (manifest checksums redone).
rm -rf "$OUT/bundle"
cp -r "$BUNDLE" "$OUT/bundle"
$PY - "$OUT" "$LM_WEIGHT" "$WORD_SCORE" <<'EOF'
import sys
from pathlib import Path
from export.bundle_files import attach_decoding_files
out, lm_weight, word_score = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
weights = {k: float(v) for k, v in (("lm_weight", lm_weight), ("word_score", word_score)) if v}
attach_decoding_files(out / "bundle", lm=out / "lm.klm", lexicon=out / "lexicon.txt.gz", **weights)
EOF
ls -l "$OUT/lm.klm" "$OUT/lexicon.txt.gz"
