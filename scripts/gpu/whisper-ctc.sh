#!/usr/bin/env bash
# One Whisper-CTC fine-tune on a lent GPU: every block trained, waveforms augmented on the fly.
#
#   scripts/gpu/whisper-ctc.sh MINUTES      (on the device, .gpu carried; OUT set by the device tool)
#
# Needs .gpu/wctc from scripts/gpu/pack_whisper_ctc.py (the model as init.pt, the speech as Opus)
# and .gpu/wheels (soundfile, soxr, cffi, pycparser for Python 3.12: scripts/gpu/pack-tools.sh). The
# run's best checkpoint and log come back as runs.tgz.part-* (scripts/gpu/collect.py); load it over
# Whisper's own model.bin: `asr-export whisper best.pt --init .../model.bin`. DEVICE=cpu LIMIT=40
# makes a dry run here. Sizes come from the environment.
set -uo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:?minutes of training}
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/out}
D=${WCTC:-.gpu/wctc}
W=${GPU_WORK:-/tmp/wctc}
FREEZE=${FREEZE:-0}
WORKERS=${WORKERS:-12}
THREADS=${THREADS:-4}
BATCH_SECONDS=${BATCH_SECONDS:-160}
EVAL_MINUTES=${EVAL_MINUTES:-2}
mkdir -p "$W/run" "$OUT"
if [ -d .gpu/wheels ] && ! $PY -c "import soundfile, soxr" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl || exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
set_if() { [ -f "$D/$1/manifest.jsonl" ] && echo "$D/$1/manifest.jsonl"; }
train=($(set_if kokoro_train) $(set_if an4_train) $(set_if an4_train) $(set_if fsdd_train) $(set_if real_more_train) $(set_if real_more_train))
dev=($(set_if real_more_dev) $(set_if test_an4) $(set_if kokoro_dev))
watch=($(set_if real_dev_lj))
[ ${#train[@]} -gt 0 ] || { echo "no training sets under $D"; exit 1; }
$PY -m models.train.whisper_ctc --init "$D/init.pt" --train "${train[@]}" --dev "${dev[@]}" ${watch:+--watch "${watch[@]}"} \
  --out "$W/run" --device "$DEVICE" --threads "$THREADS" --load-workers 8 ${LIMIT:+--limit "$LIMIT"} \
  --freeze "$FREEZE" --minutes "$minutes" --chunk-frames 32 --left-chunks 8 --mel-floor -7 \
  --lr "${LR:-1e-4}" --head-lr "${HEAD_LR:-3e-4}" --warmup "${WARMUP:-100}" --batch-seconds "$BATCH_SECONDS" --max-batch 96 \
  --augment --augment-workers "$WORKERS" --eval-minutes "$EVAL_MINUTES" --checkpoint-minutes 2 --log-every 20 \
  2>&1 | grep --line-buffered -v "loading audio" | tee "$W/run/train.out" | grep --line-buffered -E "^(eval|step [0-9]*0 |[0-9]+ training)|Error|error" | cut -c1-400
$PY scripts/gpu/collect.py "$W" "$OUT"
