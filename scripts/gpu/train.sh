#!/usr/bin/env bash
# One GPU training session for the default bundles (docs/training.md tells the story).
#
#   scripts/gpu/train.sh start SECONDS   set up, build the corpus, launch every run, wait, collect
#   scripts/gpu/train.sh wait SECONDS    wait while the runs go on, then collect
#
# The runs start in their own process sessions, so they outlive the command that launched
# them; every phase ends by packing the best checkpoints so far into $OUT. Needs .gpu/ from
# scripts/gpu/pack-tools.sh (TTS engines, wheels, real speech, text). Sizes come from the
# environment so a CPU dry run can shrink them.
set -uo pipefail
cd "$(dirname "$0")/../.."
phase=${1:?start or wait}
budget=${2:?seconds}
begin=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
W=${GPU_WORK:-/tmp/w}
OUT=${OUT:-/tmp/out}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SENTENCES=${SENTENCES:-57000}
VOICES=${VOICES:-2}
SYNTH_WORKERS=${SYNTH_WORKERS:-16}
MINUTES=${MINUTES:-21}
TXL_MINUTES=${TXL_MINUTES:-24}
W2L_SIZE=${W2L_SIZE:---channels 288 --depth 8 --kernel 11}
W2V_SIZE=${W2V_SIZE:-}
TXL_SIZE=${TXL_SIZE:---n-layer 6 --dropout 0.2}
WORKERS=${WORKERS:-4}
mkdir -p "$W/runs" "$OUT"

launch() {  # name command...: a run in its own session, its output in runs/NAME.log
  local name=$1; shift
  setsid nohup "$@" >"$W/runs/$name.log" 2>&1 </dev/null &
  echo "launched $name (pid $!)"
}

status() {
  echo "--- $(( $(date +%s) - begin )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  for log in "$W"/runs/*.log; do
    [ -f "$log" ] && echo "$(basename "$log"): $(grep -E '^(step|eval|final|[0-9]+ training)' "$log" | tail -n 2 | tr '\n' '|' | cut -c1-300)"
  done
}

setup() {
  [ -f /tmp/site/soundfile.py ] || $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
  command -v flite >/dev/null || { tar --skip-old-files -xJf .gpu/tts.tar.xz -C / && ldconfig; }
  [ -d "$W/data/text" ] || { mkdir -p "$W/data" && tar -xJf .gpu/data.tar.xz -C "$W/data"; }
  flite -voice kal -t "check" -o /tmp/check.wav && espeak-ng -w /tmp/check2.wav "check" && echo "tts ok"
  echo '(voice_kal_diphone) (utt.save.wave (utt.synth (Utterance Text "check")) "/tmp/check3.wav" (quote riff))' | festival --pipe && echo "festival ok"
}

if [ "$phase" = start ]; then
  setup
  $PY -c "
from pathlib import Path; from models.train.corpus import build_text_pools, write_lines
p = build_text_pools(Path('$W/data/text')); Path('$W/lm').mkdir(exist_ok=True)
print(write_lines(Path('$W/lm/train.txt'), p.lm_train), write_lines(Path('$W/lm/heldout.txt'), p.lm_heldout))"
  launch txl $PY -m models.train.txl --text "$W/lm/train.txt" --heldout "$W/lm/heldout.txt" --out "$W/runs/txl" \
    --device "$DEVICE" --batch-size 64 --steps 1000000 --minutes "$TXL_MINUTES" --lr 1e-3 --warmup 1000 \
    --eval-every 2000 --checkpoint-every 2000 --eval-chars 150000 $TXL_SIZE
  $PY -m models.train.corpus --out "$W/corpus" --sentences "$SENTENCES" --voices "$VOICES" --workers "$SYNTH_WORKERS" \
    --data "$W/data" 2>&1 | grep -v -E '^\s*$' | tail -n 30
  cp "$W/corpus/stats.json" "$W/runs/corpus-stats.json"
  common=(--train "$W/corpus/train.jsonl" --dev "$W/corpus/dev.jsonl" --device "$DEVICE" --load-workers 5 --workers "$WORKERS")
  launch w2l-asg $PY -m models.train.wav2letter "${common[@]}" --out "$W/runs/w2l-asg" --criterion asg $W2L_SIZE \
    --minutes "$MINUTES" --batch-seconds 400 --max-batch 128 --lr 2e-3 --eval-every 250 --checkpoint-minutes 2 --augment-clean 0.4
  launch w2l-ctc $PY -m models.train.wav2letter "${common[@]}" --out "$W/runs/w2l-ctc" --criterion ctc $W2L_SIZE \
    --minutes "$MINUTES" --batch-seconds 400 --max-batch 128 --lr 2e-3 --eval-every 250 --checkpoint-minutes 2 --augment-clean 0.4
  launch w2v2 $PY -m models.train.wav2vec2 finetune "${common[@]}" --out "$W/runs/w2v2" $W2V_SIZE \
    --minutes "$MINUTES" --batch-seconds 200 --max-batch 64 --lr 8e-4 --eval-every 500 --checkpoint-minutes 2
fi

while [ $(( $(date +%s) - begin )) -lt "$budget" ]; do
  status
  sleep "${POLL:-60}"
done
status
$PY scripts/gpu/collect.py "$W/runs" "$OUT"
ls -la "$OUT"
