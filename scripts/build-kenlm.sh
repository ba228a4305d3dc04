#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary from PyPI's kenlm source distribution into .tools/kenlm/bin.
#
#   scripts/build-kenlm.sh            # then: .tools/kenlm/bin/lmplz --help
#
# Offline tooling for building the n-gram LM (see docs/language-models.md); neither the server,
# the default install nor .ci/run need it. PyPI's kenlm wheel holds only the Python query module
# and Debian packages no KenLM, but the sdist carries the whole C++ tree (lm/builder = lmplz,
# lm/build_binary_main.cc), which builds with cmake and Debian's Boost:
#   apt-get install cmake g++ libboost-program-options-dev libboost-system-dev \
#     libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
# (the script installs them itself when it runs as root with apt-get and they are missing).
# Environment: KENLM_VERSION (0.3.0), JOBS (make -j, default 1), PREFIX (.tools/kenlm),
# KENLM_MAX_ORDER (6).
set -euo pipefail
cd "$(dirname "$0")/.."

version=${KENLM_VERSION:-0.3.0}
sha256=c4628bb9fb63c8a6f9240035b8b037385cfc404cb72e933cf48878291edac1e8  # kenlm-0.3.0.tar.gz
jobs=${JOBS:-1}
prefix=${PREFIX:-$PWD/.tools/kenlm}
max_order=${KENLM_MAX_ORDER:-6}
pip=.venv/bin/pip
[ -x "$pip" ] || pip="python3 -m pip"

packages=(cmake g++ libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "build-kenlm: missing packages: ${missing[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# --no-build-isolation: only the sdist is wanted, not its build requirements built from source.
$pip download -q --no-deps --no-binary kenlm --no-build-isolation -d "$work" "kenlm==$version"
tarball="$work/kenlm-$version.tar.gz"
if [ "$version" = 0.3.0 ]; then
  echo "$sha256  $tarball" | sha256sum -c --quiet -
fi
tar -xzf "$tarball" -C "$work"
src="$work/kenlm-$version"
for f in lm/builder/lmplz_main.cc lm/build_binary_main.cc; do
  [ -f "$src/$f" ] || { echo "build-kenlm: $f missing from the kenlm $version sdist" >&2; exit 1; }
done

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER="$max_order" \
  -DCOMPILE_TESTS=OFF -DENABLE_PYTHON=OFF -DENABLE_INTERPOLATE=OFF >"$work/cmake.log"
make -C "$work/build" -j"$jobs" lmplz build_binary query
mkdir -p "$prefix/bin"
install -m 755 "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$work/build/bin/query" "$prefix/bin/"
echo "kenlm $version (max order $max_order) installed in $prefix/bin: lmplz build_binary query"
