#!/usr/bin/env bash
# Set everything up (Debian packages, .venv with the requirements) and start the demo on
# http://127.0.0.1:7860 with the bundled weights (or GRANUMAMBA_MODEL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False
exec .venv/bin/python app.py "$@"
