#!/usr/bin/env bash
# Train the punctuation tagger on a lent GPU in one device call (docs/punctuation.md, "Training
# on a lent GPU"):
#
#   MINUTES=6 scripts/gpu/punctuation.sh 570      # the whole command ends within 570 s
#
# Needs the folder written here by `python -m models.train.punctuation pack --prepared data/punct
# --out data/punct-gpu` (the prepared arrays, xz-packed; the held-out books as a stand-in
# gutenberg_more.txt.gz; the real_dev_lj manifest), carried as `data/punct-gpu`: ../shared is not
# there. Only PyTorch, NumPy, ONNX and ONNX Runtime are used: the GPU image has them all, so
# nothing is installed (unlike scripts/gpu/train.sh, which brought TTS engines and wheels).
#
# Phases: unpack -> train MINUTES on CUDA -> calibrate -> export (int8 bundle) -> pack into $OUT
# -> held-out evaluation with whatever time is left (its figures can also be taken back home:
# `python -m export.punctuation_eval` on the returned bundle). $OUT gets session.log, eval.json
# and punct-run.tgz.part-* (15 MiB each; `cat punct-run.tgz.part-* | tar -xz` gives
# punct-run/: last.fp16.pt, log.jsonl, train.log, calibrate.json, bundle/).
#
# Sizes come from the environment so a CPU dry run can shrink them:
#   DEVICE=cpu WORKERS=1 THREADS=1 MINUTES=0.5 SIZE="--encoder transformer --d-model 64 --d-embed 32 \
#     --layers 2 --heads 2 --d-inner 128" BATCH="--batch-words 1024 --warmup 10" OUT=/tmp/out \
#     PYTHON=.venv/bin/python scripts/gpu/punctuation.sh 900
set -uo pipefail
cd "$(dirname "$0")/../.."
budget=${1:?seconds the whole command may take: the timeout_s of the device call less a margin}
begin=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PY=${PYTHON:-python3}
PACK=${PACK:-data/punct-gpu}
W=${GPU_WORK:-/tmp/punct}
OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-6}
# Size: the bundle runs on the server's CPU, where the tagger should stay under 5% of the acoustic
# model's time (docs/punctuation.md). The shipped conv tagger (3.6M encoder parameters) takes
# 0.34 ms per audio second; scaling by parameters, 6 layers of 384 (10.6M, 6 heads of 64) come to
# about 1 ms against the acoustic model's 24 ms, a share of 0.04, while 512 wide (19M) would be
# about 0.075. The H200 is not what limits: 26M words of text and a few minutes are.
SIZE=${SIZE:---encoder transformer --d-model 384 --layers 6 --heads 6 --d-inner 1536}
# Batches of 32k words (256 windows of 128): big enough to keep the GPU busy, still 11,000 steps
# in 6 minutes if the workers make a million words a second. Warm-up 500 steps for the attention model (the CPU recipe's 200 suits the conv).
BATCH=${BATCH:---batch-words 32768 --lr 1e-3 --warmup 500}
# 14 of the 16 cores make batches: recognition errors are injected in Python (62k words a second on
# one busy core of the project's machine), far slower than the GPU takes them; one core drives the
# GPU. If the logged words/s stays near WORKERS times a core's rate, the workers are the limit.
WORKERS=${WORKERS:-14}
THREADS=${THREADS:-2}
EVAL_THREADS=${EVAL_THREADS:-8}
RUN=$W/punct-run
mkdir -p "$OUT" "$RUN"
exec > >(tee -a "$OUT/session.log") 2>&1

stamp() { echo "--- $(( $(date +%s) - begin )) s: $*"; }

stamp "unpack $PACK/punct.tar.xz"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, onnx, onnxruntime; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'onnx', onnx.__version__, 'ort', onnxruntime.__version__)"
$PY -m models.train.punctuation unpack --archive "$PACK/punct.tar.xz" --out "$W/prepared" || exit 1

stamp "train $MINUTES min on $DEVICE: $SIZE $BATCH"
# shellcheck disable=SC2086  # SIZE and BATCH are lists of options
$PY -m models.train.punctuation train --prepared "$W/prepared" --out "$RUN" --device "$DEVICE" --workers "$WORKERS" \
  --threads "$THREADS" --minutes "$MINUTES" --eval-minutes 2 $SIZE $BATCH 2>&1 | tee "$RUN/train.log" \
  | awk '$1 != "step" || $2 % 500 == 0 { print; fflush() }' || true  # every step line stays in train.log
[ -f "$RUN/last.pt" ] || { stamp "no checkpoint"; exit 1; }

stamp "calibrate"
$PY -m models.train.punctuation calibrate --checkpoint "$RUN/last.pt" --prepared "$W/prepared" | tee "$RUN/calibrate.json"

stamp "export"
$PY -m export.cli punctuation "$RUN/last.pt" -o "$RUN/bundle" --name punctuation --int8

stamp "pack into $OUT"
$PY - "$RUN" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "scripts/gpu")
from collect import pack_checkpoint  # float16 weights, no optimiser state: what the GPU session shipped back before

run = Path(sys.argv[1])
pack_checkpoint(run / "last.pt", run / "last.fp16.pt")
print(f"last.fp16.pt: {(run / 'last.fp16.pt').stat().st_size / 2**20:.1f} MiB")
EOF
tar -czf - -C "$W" --exclude=last.pt punct-run | split -b 15M - "$OUT/punct-run.tgz.part-"
ls -la "$OUT"

left=$(( budget - ($(date +%s) - begin) - 10 ))
if [ "$left" -gt 60 ]; then
  stamp "held-out evaluation (at most $left s)"
  timeout "$left" $PY -m export.punctuation_eval --bundle "$RUN/bundle" --data "$PACK" --threads "$EVAL_THREADS" \
    --json "$OUT/eval.json" || echo "evaluation stopped (status $?): run it at home on the returned bundle"
else
  echo "no time left for the held-out evaluation ($left s): run it at home on the returned bundle"
fi
stamp "done"
