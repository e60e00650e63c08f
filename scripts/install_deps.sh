#!/usr/bin/env bash
# Installs every build and test dependency of clipes from Debian's packages. Idempotent: it does
# nothing (and needs no network) when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache
  libtorch-dev           # LibTorch 1.13 (CPU)
  libopenblas0-openmp    # without it LibTorch's matrix products use the reference BLAS (20x slower)
  libopencv-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libgtest-dev
  libpcre2-dev zlib1g-dev libpng-dev libpugixml-dev libssl-dev
  libicu-dev             # Unicode lower case and NFC normalisation (CLIP tokenizer)
  libgloo-dev            # the Gloo process group of distributed training (c10d headers)
  python3 python3-torch python3-numpy   # scripts/make_tiny_clip.py writes the test fixtures
  python3-skimage        # the demo's sample photos (skimage.data)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
