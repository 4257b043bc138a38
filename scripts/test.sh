#!/usr/bin/env bash
# Set everything up (Debian packages, .venv with the dev requirements) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
