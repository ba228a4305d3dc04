#!/usr/bin/env bash
# The README's accuracy table, one JSON line per figure: real speech first (real_dev_lj, the held-out
# AN4 speakers, LibriSpeech speaker 19 held out of real_more), then held-out Kokoro blends reading
# held-out sentences (scripts/split_shared_speech.py writes the data/ manifests).
# Usage: scripts/evaluate-real.sh [MODEL] [MODELS_DIR] [LIMIT]
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:-whisper-ctc-base}; dir=${2:-models/bundles}; limit=${3:-1000}
eval_=(asr-eval --models-dir "$dir" --model "$model" --json --limit "$limit")
command -v asr-eval >/dev/null || eval_=(.venv/bin/asr-eval "${eval_[@]:1}")
data=${ASR_DATA:-../shared/data}
[ -f data/test_an4.jsonl ] || .venv/bin/python scripts/split_shared_speech.py --data "$data" >&2
for set in "$data/real_dev_lj/manifest.jsonl" data/test_an4.jsonl data/real_more/dev.jsonl data/kokoro/dev.jsonl; do
  "${eval_[@]}" "$set" --decoder greedy
  "${eval_[@]}" "$set" --decoder beam
  "${eval_[@]}" "$set" --decoder beam --rescore
done
