#!/usr/bin/env bash
# Set up GranuMamba on a fresh Debian or Ubuntu machine: Debian packages, then a virtual
# environment with the requirements. Idempotent: what is installed already is skipped.
#   scripts/setup.sh          the demo's needs (packages.txt, requirements.txt)
#   scripts/setup.sh --dev    also the test tools (requirements-dev.txt; chromium for browser tests; Blender and
#                             the Khronos glTF validator, which the export tests open exported files with)
# Both add the optional piper voice (requirements-piper.txt) unless GRANUMAMBA_NO_PIPER=1.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo_cmd="sudo"

apt_packages=$(grep -vE '^\s*(#|$)' packages.txt)
[ "$dev" = 1 ] && apt_packages="$apt_packages chromium python3-venv blender python3-numpy"
# node and npm for the glTF validator: Debian's, unless a node that brings its own npm is installed
[ "$dev" = 1 ] && ! command -v npm >/dev/null && apt_packages="$apt_packages nodejs npm"
missing=""
for p in $apt_packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[setup] installing Debian packages:$missing"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$py" -m venv .venv
fi
pip=".venv/bin/python -m pip"
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
reqs="requirements.txt"
[ "$dev" = 1 ] && reqs="requirements.txt requirements-dev.txt"
[ "${GRANUMAMBA_NO_PIPER:-0}" = 1 ] || reqs="$reqs requirements-piper.txt"
stamp=".venv/.granumamba-$(stamp_of $reqs)-$dev"
if [ ! -e "$stamp" ]; then
  # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
  .venv/bin/python -c "import torch" 2>/dev/null || $pip install -q "torch==2.13.0"
  for r in $reqs; do [ "$r" = requirements.txt ] && [ "$dev" = 1 ] || $pip install -q -r "$r"; done  # -dev includes requirements.txt
  # numba compiles the generation's loops on first use (about 3 s): do it once here, into its
  # cache, rather than on every start.
  .venv/bin/python -c "from granumamba.model.sampler import compile_kernels; compile_kernels()"
  rm -f .venv/.granumamba-*-"$dev"
  touch "$stamp"
fi
if [ "$dev" = 1 ] && [ ! -d tests/js/node_modules/gltf-validator ]; then
  echo "[setup] installing the test's JavaScript clients (tests/js)"
  (cd tests/js && npm ci --silent --no-audit --no-fund)
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
