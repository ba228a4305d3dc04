#!/usr/bin/env bash
# Pack what the corpus builder needs on a GPU machine that has PyTorch but no TTS engines
# and no package registry: the three engines with their voices and libraries (glibc
# excluded) as one tar.xz, and Python 3.12 wheels of soundfile/soxr. Run on a Debian
# machine with the engines installed (`.ci/run` installs them); writes into .gpu/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.gpu
mkdir -p "$out/wheels"
packages="flite libflite1 espeak-ng libespeak-ng1 espeak-ng-data libsonic0 libpcaudio0 festival
  festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festlex-cmu festlex-poslex"
list=$(mktemp)
for p in $packages; do dpkg -L "$p"; done | grep -v -E '^/usr/share/(doc|man|lintian|bug)/' | while read -r f; do
  [ -f "$f" ] && echo "$f"
done >"$list"
for bin in /usr/bin/flite /usr/bin/espeak-ng /usr/bin/festival; do
  ldd "$bin" | awk '$3 ~ /^\// {print $3}' | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64)\.so' >>"$list"
done
# Other languages' dictionaries and libstdc++ (every PyTorch image has a newer one) stay behind.
sort -u "$list" | grep -v -E '/espeak-ng-data/[a-z_]+_dict$|/libstdc\+\+' >"$list.keep"
grep -E '/espeak-ng-data/en_dict$' "$list" >>"$list.keep"
tar --dereference -cf - -T "$list.keep" | xz -9e -T2 >"$out/tts.tar.xz"
rm -f "$list" "$list.keep"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$out/wheels" soundfile==0.13.1 soxr==0.5.0.post1 cffi==1.17.1 pycparser==2.22
du -sh "$out"/*
