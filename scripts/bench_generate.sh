#!/usr/bin/env bash
# Benchmark of clipes-generate with the full ViT-B/16 architecture (random weights, made once by
# scripts/make_tiny_clip.py) on real VOC photos of 500x375 pixels: per-stage seconds per image,
# images/s and peak memory, for K = 1 and K = 3 classes per image, CRF on.
#
#   scripts/bench_generate.sh [--images N] [--threads T] [--model FILE] [--data DIR]
#
# Needs a Release build (build/release/bin/clipes-generate), /usr/bin/python3 with torch (for the
# random model) and the voc-mini photos (../shared/data/voc-mini, or --data).
set -euo pipefail
cd "$(dirname "$0")/.."
images=8
threads=0
model=build/bench/vit_b16_random.pt
data=../shared/data/voc-mini
vocab=../shared/vocab/bpe_simple_vocab_16e6.txt.gz
while [ $# -gt 0 ]; do
  case "$1" in
    --images) images="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --vocab) vocab="$2"; shift 2 ;;
    *) echo "bench_generate: unknown argument $1" >&2; exit 2 ;;
  esac
done
bin=build/release/bin/clipes-generate
[ -x "$bin" ] || { echo "bench_generate: build first (cmake --build --preset release)" >&2; exit 2; }
mkdir -p build/bench
if [ ! -f "$model" ]; then
  echo "bench_generate: writing a random ViT-B/16 to $model"
  /usr/bin/python3 scripts/make_tiny_clip.py --arch ViT-B/16 --out "$model"
fi
if [ ! -f "$vocab" ]; then
  vocab=build/bench/synthetic_vocab.txt.gz
  /usr/bin/python3 scripts/make_demo_data.py build/bench/unused --vocab "$vocab" >/dev/null
fi
# The 500x375 photos of the data folder (VOC's most common size).
ids=$(/usr/bin/python3 - "$data" "$images" <<'PY'
import sys, os
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
ids = sorted(f[:-4] for f in os.listdir(os.path.join(root, "JPEGImages")) if f.endswith(".jpg"))
ids = [i for i in ids if Image.open(os.path.join(root, "JPEGImages", i + ".jpg")).size == (500, 375)]
print("\n".join(ids[:n]))
PY
)
[ -n "$ids" ] || { echo "bench_generate: no 500x375 photos in $data/JPEGImages" >&2; exit 2; }
echo "bench_generate: $(echo "$ids" | wc -l) photos of 500x375, model $model, threads ${threads} (0 = all)"
for k in 1 3; do
  labels=build/bench/labels_k$k.txt
  case $k in 1) classes="14" ;; 3) classes="14 8 10" ;; esac
  echo "$ids" | sed "s/\$/ $classes/" > "$labels"
  out=build/bench/out_k$k
  rm -rf "$out"
  /usr/bin/time -v "$bin" --config configs/voc.json --data-root "$data" --labels "$labels" \
      --split "$labels" --model "$model" --vocab "$vocab" --out "$out" --threads "$threads" \
      --no-cams 2> build/bench/log_k$k.txt > /dev/null || { tail build/bench/log_k$k.txt; exit 1; }
  /usr/bin/python3 - "$out/run.json" "build/bench/log_k$k.txt" "$k" <<'PY'
import json, re, sys
run = json.load(open(sys.argv[1]))
log = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
s = run["seconds_per_image"]
cam = s["preprocess"] + s["trunk"] + s["last_block"] + s["caa"]
print(f"K={sys.argv[3]}: {run['counts']['written']} images, {run['images_per_second']:.3f} images/s, "
      f"peak RSS {rss / 1024 / 1024:.2f} GiB, model load {run['model']['load_seconds']:.1f} s")
print("  per image: " + ", ".join(f"{k} {v:.3f} s" for k, v in s.items()))
k = int(sys.argv[3])
ref_cam = 1.4 + 0.3 * (k - 1)   # the authors' code on this machine, 2 threads (issue figures)
ref_total = ref_cam + 0.35      # plus its CRF (pydensecrf), the fast end of 0.35-0.95 s
total = 1 / run["images_per_second"]
print(f"  CAM+CAA (preprocess..CAA) {cam:.3f} s per image = {cam / ref_cam:.2f}x the authors' "
      f"{ref_cam:.1f} s; end to end {total:.3f} s per image = {ref_total / total:.2f}x their "
      f"throughput ({ref_total:.2f} s per image)")
PY
done
