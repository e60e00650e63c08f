#!/usr/bin/env bash
# The GPU check in one command, for a machine with an NVIDIA GPU and PyTorch (no internet needed):
# builds clipes against that PyTorch's LibTorch (or takes a prebuilt bundle, see --bundle), runs
# the CUDA tests, then the GPU benchmarks, and writes every figure to one JSON file:
#   - clipes-generate on voc-mini, ViT-B/16 architecture (random weights), --device cuda --fp16:
#     images/s and seconds per stage (run.json), peak GPU memory (nvidia-smi, sampled);
#   - clipes-bench-train: DeepLabV2-R101 MSC at crop 321, batch 10 (10x1 and 5x2 accumulated):
#     seconds per iteration and peak memory of LibTorch's CUDA allocator;
#   - several GPUs: recorded as such (clipes-train-seg is one process today).
#
#   scripts/gpu_check.sh [--out FILE] [--data VOC_MINI] [--vocab BPE.txt.gz] [--jobs N]
#   scripts/gpu_check.sh --bundle          # on a build machine: .gpu-check.tar.xz, prebuilt tools
#                                          # + data for a GPU machine without OpenCV & co.
#
# With .gpu-check.tar.xz in the repository root (git ignores it; 57 MB) the check unpacks it and
# runs the prebuilt tools on the PyTorch there (the same LibTorch version as the build's);
# without it, it builds. Defaults: --out gpu_check.json, --data ../shared/data/voc-mini (else the
# bundle's), --vocab ../shared/vocab/bpe_simple_vocab_16e6.txt.gz (else the bundle's). Budget:
# about 3 min to unpack or to build on 16 cores, 1 min of tests, 3 min of benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=gpu_check.json
data=""
vocab=""
jobs=$(nproc)
bundle=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --vocab) vocab=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --bundle) bundle=.gpu-check.tar.xz; shift ;;
    *) echo "gpu_check: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
log() { echo "gpu_check: $*" >&2; }
first_of() { for f in "$@"; do [ -e "$f" ] && { echo "$f"; return; }; done; echo ""; }
shared_data=$(first_of ../shared/data/voc-mini)
shared_vocab=$(first_of ../shared/vocab/bpe_simple_vocab_16e6.txt.gz)

# --bundle: the tools and test binaries of build/cuda (scripts/build_libtorch2.sh), the shared
# libraries they need beyond glibc, LibTorch and CUDA, voc-mini and the vocabulary, in one
# archive that travels to a GPU machine which has PyTorch but cannot install OpenCV & co.
if [ -n "$bundle" ]; then
  [ -d build/cuda/bin ] || { log "build/cuda is missing: run scripts/build_libtorch2.sh first"; exit 2; }
  data=${data:-$shared_data}; vocab=${vocab:-$shared_vocab}
  [ -n "$data" ] && [ -n "$vocab" ] || { log "voc-mini or the vocabulary is missing: --data, --vocab"; exit 2; }
  stage=$(mktemp -d /tmp/clipes-gpu-bundle.XXXXXX)/gpu-check
  mkdir -p "$stage/bin" "$stage/lib"
  cp build/cuda/bin/clipes-generate build/cuda/bin/clipes-bench-train \
     build/cuda/tests/clipes_clip_tests build/cuda/tests/clipes_seg_tests "$stage/bin/"
  for binary in "$stage"/bin/*; do
    ldd "$binary" | awk '/=> \// {print $3}'
  done | sort -u | grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux)[.-]|/torch/|/nvidia/|libcuda\.so|/cuda' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  cp -r "$data" "$stage/voc-mini"
  cp "$vocab" "$stage/bpe_simple_vocab_16e6.txt.gz"
  tar -C "$(dirname "$stage")" -cf - gpu-check | xz -T"$jobs" -6 > "$bundle.part"
  mv "$bundle.part" "$bundle"
  log "$bundle: $(du -h "$bundle" | cut -f1) ($(ls "$stage/lib" | wc -l) libraries); carry it to the GPU machine"
  rm -rf "$(dirname "$stage")"
  exit 0
fi

command -v nvidia-smi >/dev/null || { log "nvidia-smi is missing: this is no NVIDIA GPU machine"; exit 2; }
python=${PYTHON:-python3}
$python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" ||
  { log "$python has no torch with a visible CUDA GPU"; exit 2; }
torch_version=$($python -c "import torch; print(torch.__version__)")
prefix=$($python -c "import torch; print(torch.utils.cmake_prefix_path)")
torch_lib=$($python -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
log "torch $torch_version, $gpus GPU(s): $gpu_name"
work=$(mktemp -d /tmp/clipes-gpu-check.XXXXXX)
if [ -f .gpu-check.tar.xz ]; then
  tar -C "$work" -xJf .gpu-check.tar.xz
  shared_data=${shared_data:-$work/gpu-check/voc-mini}
  shared_vocab=${shared_vocab:-$work/gpu-check/bpe_simple_vocab_16e6.txt.gz}
fi
data=${data:-$shared_data}; vocab=${vocab:-$shared_vocab}
[ -n "$data" ] && [ -n "$vocab" ] || { log "voc-mini or the vocabulary is missing: --data, --vocab"; exit 2; }
figures=$work/figures
mkdir -p "$figures"
started=$(date +%s)

# 1. Build, or take the bundle made by --bundle.
if [ -d "$work/gpu-check/bin" ]; then
  bin=$work/gpu-check/bin
  export LD_LIBRARY_PATH="$work/gpu-check/lib:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  tests_dir=$bin
  log "using the prebuilt bundle .gpu-check.tar.xz (LibTorch libraries from $torch_lib)"
else
  LIBTORCH_DIR=$prefix cmake --preset cuda > "$work/configure.log" 2>&1 ||
    { tail -30 "$work/configure.log" >&2; log "configure failed (scripts/install_deps.sh lists the packages; offline: --bundle)"; exit 2; }
  cmake --build --preset cuda -j "$jobs" > "$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }
  bin=$root/build/cuda/bin
  tests_dir=$root/build/cuda/tests
fi
echo "$(( $(date +%s) - started ))" > "$figures/build_seconds"

# 2. The CUDA tests: the tiny CLIP on the GPU against the CPU (float32 and float16), and the
#    trainer's device checks.
fixtures=$work/fixtures
$python scripts/make_tiny_clip.py --out-dir "$fixtures" > "$work/fixtures.log" 2>&1
export CLIPES_FIXTURE_DIR=$fixtures
set +e
"$tests_dir/clipes_clip_tests" --gtest_filter='*Cuda*:*Fp16*' > "$work/tests.log" 2>&1
echo $? > "$figures/tests_rc"
"$tests_dir/clipes_seg_tests" --gtest_filter='*Cuda*:*Device*' >> "$work/tests.log" 2>&1
echo $? >> "$figures/tests_rc"
set -e

# 3. clipes-generate on voc-mini with a ViT-B/16-sized random CLIP, float16 on the GPU.
$python scripts/make_tiny_clip.py --arch ViT-B/16 --out "$work/vit_b16.pt" > /dev/null 2>&1
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$work/gpu_memory.csv" &
sampler=$!
set +e
"$bin/clipes-generate" --config configs/voc.json --data-root "$data" --labels "$data/labels.txt" \
  --split "$data/labels.txt" --model "$work/vit_b16.pt" --vocab "$vocab" --out "$work/generate" \
  --device cuda --fp16 > "$work/generate.log" 2>&1
echo $? > "$figures/generate_rc"
set -e
kill "$sampler" 2>/dev/null || true

# 4. Training iterations, R101 MSC, crop 321, batch 10.
set +e
"$bin/clipes-bench-train" --devices cuda --shapes 10x1,5x2 --crop 321 --iterations 5 --warmup 2 \
  > "$work/train.log" 2>&1
echo $? > "$figures/train_rc"
set -e

$python - "$work" "$out" "$torch_version" "$gpu_name" "$gpus" <<'PY'
import json, os, re, sys
work, out, torch_version, gpu_name, gpus = sys.argv[1:6]
def read(name):
    path = os.path.join(work, name)
    return open(path).read() if os.path.exists(path) else ""
fig = lambda name: read(os.path.join("figures", name)).split()
report = {"torch": torch_version, "gpu": gpu_name, "gpus": int(gpus),
          "build_seconds": int(fig("build_seconds")[0]),
          "cuda_tests": {"exit_codes": [int(x) for x in fig("tests_rc")],
                         "summary": [l for l in read("tests.log").splitlines()
                                     if l.startswith(("[  PASSED", "[  FAILED", "[  SKIPPED"))]}}
run_file = os.path.join(work, "generate", "run.json")
gen = {"exit_code": int(fig("generate_rc")[0])}
if os.path.exists(run_file):
    run = json.load(open(run_file))
    gen.update({k: run.get(k) for k in ("images_per_second", "seconds", "counts", "device")})
memory = [int(x) for x in read("gpu_memory.csv").split() if x.isdigit()]
gen["peak_gpu_memory_mib_nvidia_smi"] = max(memory) if memory else None
if gen["exit_code"] != 0:
    gen["log_tail"] = read("generate.log")[-3000:]
report["generate_voc_mini_vit_b16_fp16"] = gen
train = {"exit_code": int(fig("train_rc")[0]), "rows": []}
for line in read("train.log").splitlines():
    m = re.match(r"cuda\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) GiB GPU", line)
    if m:
        train["rows"].append({"batch": int(m[1]), "iter_size": int(m[2]), "seconds_per_iteration":
                              float(m[3]), "images_per_second": float(m[5]), "peak_gpu_gib": float(m[6])})
if train["exit_code"] != 0 or not train["rows"]:
    train["log_tail"] = read("train.log")[-3000:]
report["train_r101_msc_crop321"] = train
report["multi_gpu"] = ("not run: clipes-train-seg is one process (torch.distributed is not built yet)"
                       if int(gpus) > 1 else "not run: one GPU")
with open(out, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
PY
log "done in $(( $(date +%s) - started )) s: $out"
