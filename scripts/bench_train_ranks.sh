#!/usr/bin/env bash
# Seconds per training iteration of clipes-train-seg with 1 process against N Gloo ranks on this
# machine's CPU (--nproc N, 1 thread per rank when the single process gets N threads: the same
# cores), for configs/train-tiny.json and the R101 MSC recipe at crop 321, global batch 2 (R101)
# or 4 (tiny). The first iterations (warm-up) are left out of the medians.
# Usage: scripts/bench_train_ranks.sh [N=2] [build dir=build/release]
# Needs ../shared/data/voc-mini (its ground truth stands in for pseudo masks).
set -euo pipefail
cd "$(dirname "$0")/.."
ranks=${1:-2}
bin=${2:-build/release}/bin
voc=${CLIPES_SHARED_DIR:-../shared}/data/voc-mini
[ -d "$voc" ] || { echo "bench_train_ranks: $voc not found" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# median seconds of the log's iterations after the first $2
median() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{statistics.median(r['seconds'] for r in rows[int(sys.argv[2]):]):.3f}")
PY
}

run() {  # name config iterations warmup extra-args...
  local name=$1 config=$2 iterations=$3 warmup=$4
  shift 4
  local common=(train --config "$config" --images "$voc/JPEGImages" --masks "$voc/SegmentationClass"
                --device cpu --set "optim.iterations=$iterations" --set data.workers=1 "$@")
  "$bin/clipes-train-seg" "${common[@]}" --out "$work/$name-1" --threads "$ranks" 2>/dev/null
  "$bin/clipes-train-seg" "${common[@]}" --out "$work/$name-$ranks" --threads 1 --nproc "$ranks" \
    2>/dev/null
  local one many
  one=$(median "$work/$name-1/train_log.jsonl" "$warmup")
  many=$(median "$work/$name-$ranks/train_log.jsonl" "$warmup")
  /usr/bin/python3 -c "print(f'$name: 1 process x $ranks threads {float($one):.3f} s/it, $ranks ranks x 1 thread {float($many):.3f} s/it, ratio {float($one)/float($many):.2f}')"
}

echo "bench_train_ranks: $(nproc) cores, $ranks ranks, Gloo"
run tiny configs/train-tiny.json 30 5
run r101-crop321 configs/train-voc.json 4 1 --set optim.batch_size=2 --set optim.iter_size=1 \
  --set data.crop_size=321
