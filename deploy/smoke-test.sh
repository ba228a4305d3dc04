#!/usr/bin/env bash
# Build the CPU runtime image and smoke-test it without a Docker engine (podman + buildah).
#
#   deploy/smoke-test.sh            # build, run the image's command, /readyz, transcribe, SIGTERM
#
# Steps:
#   1. base image: BASE (default localhost/debian:bookworm, made by deploy/make-base-image.sh with
#      debootstrap when missing; set BASE=debian:bookworm-slim where a registry can be reached)
#   2. podman build --format docker (keeps HEALTHCHECK) --isolation chroot --network host --target runtime,
#      with the CA bundle CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt) as build secret `ca`
#   3. checks on the image: no torch, non-root user, HEALTHCHECK and exec-form ENTRYPOINT/CMD
#   4. models: the bundles baked into the image (models/bundles/); when there are none, a tiny
#      random Wav2Letter bundle is exported on the host (PYTHON, needs torch) and bind-mounted at
#      /models with ASR_MODELS_DIR=/models (the mounted-volume path)
#   5. `buildah run` of the image's ENTRYPOINT + CMD on a free loopback port (ASR_HOST=127.0.0.1),
#      wait for /readyz, run the image's HEALTHCHECK command, transcribe a WAV file
#   6. SIGTERM to tini (what `docker stop` does): uvicorn drains and everything exits 0
#
# Environment: BASE, CA_BUNDLE (empty: no secret), IMAGE (default localhost/asr-server:smoke),
# PYTHON (default .venv/bin/python), SKIP_BUILD=1 (reuse IMAGE), KEEP_IMAGE=0 (remove IMAGE after),
# READY_TIMEOUT (seconds, default 180). Needs root, podman, buildah (and debootstrap for step 1).
# Prints "SMOKE TEST PASSED" and exits 0 on success.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE="${BASE:-localhost/debian:bookworm}"
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
IMAGE="${IMAGE:-localhost/asr-server:smoke}"
PYTHON="${PYTHON:-.venv/bin/python}"
READY_TIMEOUT="${READY_TIMEOUT:-180}"
start_all=$(date +%s)

step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start_all ))"; }
fail() { echo "SMOKE TEST FAILED: $*" >&2; exit 1; }

for tool in podman buildah python3; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install podman buildah debootstrap)"
done

work="$(mktemp -d "${TMPDIR:-/var/tmp}/asr-smoke.XXXXXX")"
chmod 755 "$work"
ctr=""
runner=""
cleanup() {
  set +e
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    # Stop what this script started: the container's processes first, then buildah itself.
    for p in $(descendants "$runner"); do kill -KILL "$p" 2>/dev/null; done
    kill -KILL "$runner" 2>/dev/null
  fi
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1
  [ "${KEEP_IMAGE:-1}" = 0 ] && podman rmi -f "$IMAGE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

descendants() {  # every process below PID $1, parents before children
  local child
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

# ---------------------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  if [ "$BASE" = localhost/debian:bookworm ]; then
    step "base image $BASE"
    deploy/make-base-image.sh "$BASE"
  fi
  step "build $IMAGE (target runtime, base $BASE)"
  secret=()
  if [ -n "$CA_BUNDLE" ] && [ -s "$CA_BUNDLE" ]; then secret=(--secret "id=ca,src=$CA_BUNDLE"); fi
  build_start=$(date +%s)
  nice -n 10 podman build --format docker --isolation chroot --network host \
    --build-arg "BASE=$BASE" "${secret[@]}" --target runtime -t "$IMAGE" . >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log"; fail "image build"; }
  echo "built in $(( $(date +%s) - build_start ))s"
fi
podman image exists "$IMAGE" || fail "image $IMAGE not found"
podman image inspect --format 'size: {{.Size}} bytes' "$IMAGE"

# ---------------------------------------------------------------------------------------------
step "image checks"
# The image's configuration, with the Docker-format HEALTHCHECK folded in (podman lists it apart).
podman image inspect "$IMAGE" | python3 -c 'import json, sys; d = json.load(sys.stdin)[0]; c = d["Config"]; c.setdefault("Healthcheck", d.get("Healthcheck")); print(json.dumps(c))' >"$work/config.json"
python3 - "$work/config.json" <<'EOF' || fail "image configuration"
import json, sys
config = json.load(open(sys.argv[1]))
user = config.get("User", "")
problems = []
if not user or user.split(":")[0] in ("", "0", "root"):
    problems.append(f"runs as root (User={user!r})")
if not (config.get("Healthcheck") or {}).get("Test"):
    problems.append("no HEALTHCHECK (build with --format docker)")
if not (config.get("Entrypoint") or [""])[0].endswith("/tini") or not config.get("Cmd"):
    problems.append(f"entrypoint {config.get('Entrypoint')} cmd {config.get('Cmd')}")
env = dict(e.split("=", 1) for e in config.get("Env", []))
if not env.get("ASR_MODELS_DIR"):
    problems.append("no ASR_MODELS_DIR")
print(f"user {user}, entrypoint {config.get('Entrypoint')}, cmd {config.get('Cmd')}, healthcheck {config['Healthcheck']['Test']}")
sys.exit("; ".join(problems) if problems else 0)
EOF
ctr="$(buildah from --pull-never "$IMAGE")"
run_in() { buildah run --isolation chroot --network host "$@"; }
run_in "$ctr" -- python3 -c "import importlib.util as u, sys; bad = [m for m in ('torch', 'torchaudio', 'transformers') if u.find_spec(m)]; print('heavy modules:', bad or 'none'); sys.exit(bool(bad))" \
  || fail "torch or friends in the runtime image"
if run_in "$ctr" -- sh -c 'command -v gcc || command -v cc || command -v pip' >/dev/null 2>&1; then fail "compiler or pip in the runtime image"; fi
echo "no compiler, no pip"

# ---------------------------------------------------------------------------------------------
step "models"
mounts=()
bundled="$(run_in "$ctr" -- sh -c 'ls "$ASR_MODELS_DIR"/*/manifest.json 2>/dev/null | wc -l')"
if [ "$bundled" -gt 0 ]; then
  echo "$bundled bundle(s) baked into the image"
else
  echo "no bundle in the image: exporting a tiny random one and mounting it at /models"
  PYTHONPATH=. nice -n 10 "$PYTHON" - "$work/models" <<'EOF' || fail "tiny bundle export (needs the project's test environment: pip install -e '.[test]')"
import sys, tempfile
from pathlib import Path
from export.wav2letter import export_wav2letter
from tests.helpers import save_wav2letter_checkpoint
out = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    export_wav2letter(save_wav2letter_checkpoint(Path(tmp) / "asg.pt", criterion="asg"), out / "tiny-asg", int8=True, log=False)
print("exported", out / "tiny-asg")
EOF
  chmod -R a+rX "$work/models"
  mounts=(-v "$work/models:/models:ro" -e ASR_MODELS_DIR=/models)
fi

# ---------------------------------------------------------------------------------------------
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mapfile -t command < <(python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print("\n".join((c.get("Entrypoint") or []) + (c.get("Cmd") or [])))' "$work/config.json")
step "run the image's command: ${command[*]} on 127.0.0.1:$port"
envs=(-e ASR_HOST=127.0.0.1 -e "ASR_PORT=$port" -e ASR_THREADS=1 -e ASR_WORKERS=1)
run_in "${envs[@]}" "${mounts[@]}" "$ctr" -- "${command[@]}" >"$work/server.log" 2>&1 &
runner=$!
ready_start=$(date +%s)
until curl -fsS "http://127.0.0.1:$port/readyz" >"$work/readyz.json" 2>/dev/null; do
  kill -0 "$runner" 2>/dev/null || { cat "$work/server.log"; fail "server exited before it was ready"; }
  [ $(( $(date +%s) - ready_start )) -lt "$READY_TIMEOUT" ] || { cat "$work/server.log"; fail "not ready after ${READY_TIMEOUT}s"; }
  sleep 0.5
done
echo "ready after $(( $(date +%s) - ready_start ))s: $(cat "$work/readyz.json")"

mapfile -t health < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["Healthcheck"]["Test"][1:]))' "$work/config.json")
run_in "${envs[@]}" "$ctr" -- "${health[@]}" || fail "the image's HEALTHCHECK command failed"

python3 - "$work/speech.wav" <<'EOF'
import math, struct, sys, wave
rate = 16000
with wave.open(sys.argv[1], "wb") as w:  # 2 s of voiced-like bursts
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * (140 + 40 * math.sin(i / 2500)) * i / rate)
                                             * (1.0 if (i // 3000) % 3 else 0.05))) for i in range(2 * rate)))
EOF
code="$(curl -sS -o "$work/transcript.json" -w '%{http_code}' -F "file=@$work/speech.wav" "http://127.0.0.1:$port/v1/transcribe")"
[ "$code" = 200 ] || { cat "$work/transcript.json"; fail "POST /v1/transcribe answered $code"; }
python3 -c 'import json, sys; t = json.load(open(sys.argv[1])); assert "text" in t and t["duration"] > 1.9, t; print("transcribed", t["duration"], "s:", repr(t["text"][:60]))' "$work/transcript.json" \
  || fail "unexpected transcript"

# ---------------------------------------------------------------------------------------------
step "SIGTERM to the container's init (tini), as docker stop does"
init=""
for p in $(descendants "$runner"); do
  if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = tini ]; then init="$p"; break; fi
done
[ -n "$init" ] || fail "cannot find the container's tini process"
stop_start=$(date +%s)
kill -TERM "$init"
status=0
timeout 40 tail --pid="$runner" -f /dev/null || fail "still running 40 s after SIGTERM"
wait "$runner" || status=$?
runner=""
tail -6 "$work/server.log"
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
grep -q "Application shutdown complete" "$work/server.log" || fail "no 'Application shutdown complete' in the server log"
echo "clean exit (status 0) $(( $(date +%s) - stop_start ))s after SIGTERM"

echo
echo "SMOKE TEST PASSED in $(( $(date +%s) - start_all ))s"
