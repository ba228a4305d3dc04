#!/usr/bin/env bash
# Every figure of the README's accuracy table, one JSON line each.
# Usage: scripts/evaluate.sh MODEL [LIMIT] [MODELS_DIR]   (test sets: data/corpus40, see the README)
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:?model name}; limit=${2:-200}; dir=${3:-models/bundles}
eval_=(asr-eval --models-dir "$dir" --model "$model" --json --limit "$limit")
command -v asr-eval >/dev/null || eval_=(.venv/bin/asr-eval "${eval_[@]:1}")
for set in dev test_slt; do
  "${eval_[@]}" "data/corpus40/$set.jsonl" --decoder greedy
  "${eval_[@]}" "data/corpus40/$set.jsonl" --decoder beam
  "${eval_[@]}" "data/corpus40/$set.jsonl" --decoder beam --rescore
done
for set in test_slt_noisy test_slt_8k test_an4 test_fsdd; do
  "${eval_[@]}" "data/corpus40/$set.jsonl" --decoder greedy
  "${eval_[@]}" "data/corpus40/$set.jsonl" --decoder beam
done
"${eval_[@]}" data/corpus40/test_slt.jsonl --decoder greedy --precision int8
"${eval_[@]}" data/corpus40/dev.jsonl --decoder greedy --precision int8
