#!/usr/bin/env bash
# The built-in demo, from a fresh clone: installs the dependencies, builds clipes-generate, writes
# a few sample photos (python3-skimage) with image-level labels, and runs clipes-generate on them
# with configs/custom-example.json. Outputs: demo-out/ (masks, confidence maps, overlays, run.json).
#
# With models/ViT-B-16.pt and models/bpe_simple_vocab_16e6.txt.gz (scripts/download_clip.sh) it
# uses the real CLIP. Without them (offline) it falls back to a RANDOM test model: the run goes end
# to end, but its masks mean nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target clipes-generate

demo=build/demo
model=models/ViT-B-16.pt
vocab=models/bpe_simple_vocab_16e6.txt.gz
vocab_flag=()
if [ -f "$model" ] && [ -f "$vocab" ]; then
  /usr/bin/python3 scripts/make_demo_data.py "$demo/data"
  echo "demo: using the real CLIP ViT-B/16 ($model)"
else
  cat >&2 <<'WARN'

  ######################################################################################
  #  demo: models/ViT-B-16.pt is missing (scripts/download_clip.sh fetches it, online).  #
  #  FALLING BACK TO A RANDOM TEST MODEL: the run goes end to end, but the masks, CAMs   #
  #  and confidence maps it writes MEAN NOTHING.                                         #
  ######################################################################################

WARN
  model=$demo/random_clip.pt
  [ -f "$model" ] || /usr/bin/python3 scripts/make_tiny_clip.py --arch tiny --out "$model"
  if [ -f "$vocab" ]; then
    :
  elif [ -f ../shared/vocab/bpe_simple_vocab_16e6.txt.gz ]; then
    vocab=../shared/vocab/bpe_simple_vocab_16e6.txt.gz
  else
    vocab=$demo/synthetic_vocab.txt.gz
    vocab_flag=(--vocab "$vocab")
    echo "demo: CLIP's vocabulary is missing too: using a synthetic one (tokens mean nothing)" >&2
  fi
  /usr/bin/python3 scripts/make_demo_data.py "$demo/data" "${vocab_flag[@]}"
fi

build/release/bin/clipes-generate --config configs/custom-example.json --data-root "$demo/data" \
  --model "$model" --vocab "$vocab" --out demo-out --overlays --overwrite "$@"
echo "demo: done. Look at demo-out/overlays/*.jpg; masks in demo-out/masks, run record demo-out/run.json"
