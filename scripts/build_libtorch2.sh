#!/usr/bin/env bash
# Builds clipes against LibTorch 2.x with CUDA, as PyPI's `torch` wheel ships it (headers,
# libraries and CMake config; the CUDA runtime comes with the wheel's nvidia-* dependencies), and
# runs the test suite, on the CPU when the machine has no GPU.
#
#   scripts/build_libtorch2.sh                 # torch 2.11.0 (CUDA 13.0) in .venv-libtorch2, build/cuda
#   scripts/build_libtorch2.sh -L unit         # ctest arguments pass through
#   CLIPES_TORCH_VERSION=2.12.1 scripts/build_libtorch2.sh
#   LIBTORCH_DIR=/opt/libtorch scripts/build_libtorch2.sh   # an unpacked LibTorch instead of the wheel
#
# Needs the CUDA toolkit (nvcc; its major version must match the wheel's CUDA: 13 for 2.11.0) to
# configure, since LibTorch's CMake config looks for it; no GPU to build and test.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${CLIPES_TORCH_VERSION:-2.11.0}
venv=${CLIPES_TORCH_VENV:-.venv-libtorch2}

scripts/install_deps.sh   # OpenCV, CLI11, ... from Debian (Debian's LibTorch stays unused here)
if [ -z "${LIBTORCH_DIR:-}" ]; then
  if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y -q --no-install-recommends python3-venv
  fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '$version')" 2>/dev/null; then
    echo "build_libtorch2: installing torch==$version into $venv (about 3 GB with its CUDA libraries)"
    "$venv/bin/python" -m pip install -q "torch==$version"
  fi
  LIBTORCH_DIR=$("$venv/bin/python" -c "import torch; print(torch.utils.cmake_prefix_path)")
fi
export LIBTORCH_DIR
command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"

cmake --preset cuda >/dev/null
grep -E "^CLIPES_TORCH_VERSION|^CLIPES_TORCH_CUDA" build/cuda/CMakeCache.txt | sed 's/^/build_libtorch2: /'
cmake --build --preset cuda -j "$(nproc)"
ctest --preset cuda -j "$(nproc)" "$@"
