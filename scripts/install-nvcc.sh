#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler from PyPI into .venv-cuda (cached between runs).
# Newer compilers emit PTX that CUDA 13.0 drivers reject: keep these pins.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-cuda
find_bin() { ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13/bin 2>/dev/null | head -n 1 || true; }
bin=$(find_bin)
if [ -z "$bin" ] || [ ! -x "$bin/nvcc" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
  bin=$(find_bin)
fi
# The nvcc wheel finds cicc/ptxas through its own folder; print where it is.
echo "$(cd "$bin" && pwd)/nvcc"
