#!/usr/bin/env bash
# The default bundle from the fine-tuned Whisper-CTC checkpoint (docs/training.md):
# export (ONNX parity, int8 kept only if it keeps 97% of fp32's greedy words on the held-out real_more speaker),
# the n-gram LM and lexicon rebuilt from ../shared/data/text (docs/language-models.md, "Rebuilding"),
# then the beam's LM weight and word score and the rescoring weights tuned on that held-out speaker.
# Usage: scripts/ship-whisper-ctc.sh [CHECKPOINT] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-runs/whisper-ctc-base/best.pt}
out=${2:-models/bundles/whisper-ctc-base}
py=.venv/bin/python
init="$($py -m models.whisper_weights base)/model.bin"
[ -f data/real_more/dev.jsonl ] || $py scripts/split_shared_speech.py
# the LM and lexicon: a rebuild under runs/lm (docs/language-models.md), else the ones the bundle ships now
lm=${LM:-runs/lm/o3_p023_v100k/lm.klm}; lexicon=${LEXICON:-runs/lm/ship/lexicon.txt.gz}
if [ ! -f "$lm" ] || [ ! -f "$lexicon" ]; then
  keep=$(mktemp -d); cp "$out/lm.klm" "$out/lexicon.txt.gz" "$keep/"; lm=$keep/lm.klm; lexicon=$keep/lexicon.txt.gz
fi
.venv/bin/asr-export whisper "$ckpt" --init "$init" -o "$out" --default --dev data/real_more/dev.jsonl --dev-limit 111 \
  --min-agreement "${MIN_AGREEMENT:-0.97}" --decoding scripts/whisper-ctc-decoding.json --lm "$lm" --lexicon "$lexicon"
.venv/bin/asr-export tune "$out" --dev data/real_more/dev.jsonl --txl models/bundles/txl-char --beam-size 64 --limit 111 --write
