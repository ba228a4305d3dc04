#!/usr/bin/env bash
# The README's accuracy table, one JSON line per figure: real speech first (real_dev_lj, the held-out
# AN4 speakers), then held-out Kokoro blends reading held-out sentences (docs/training.md says how
# data/kokoro/dev.jsonl and data/corpus40/test_an4.jsonl are made).
# Usage: scripts/evaluate-real.sh [MODEL] [MODELS_DIR] [LIMIT]
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:-wav2letter-asg}; dir=${2:-models/bundles}; limit=${3:-1000}
eval_=(asr-eval --models-dir "$dir" --model "$model" --json --limit "$limit")
command -v asr-eval >/dev/null || eval_=(.venv/bin/asr-eval "${eval_[@]:1}")
data=${ASR_DATA:-../shared/data}
for set in "$data/real_dev_lj/manifest.jsonl" data/corpus40/test_an4.jsonl data/kokoro/dev.jsonl; do
  "${eval_[@]}" "$set" --decoder greedy
  "${eval_[@]}" "$set" --decoder beam
  "${eval_[@]}" "$set" --decoder beam --rescore
done
