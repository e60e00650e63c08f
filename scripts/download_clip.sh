#!/usr/bin/env bash
# Fetches a CLIP checkpoint and CLIP's BPE vocabulary into a folder (default: models/) and checks
# their sha256. Needs internet (curl or wget); run it on a machine that has it and copy models/
# over if the target machine is offline.
#
#   scripts/download_clip.sh [--dir models] [--arch ViT-B/16|ViT-B/32|ViT-L/14|ViT-L/14@336px]
#       OpenAI's release file (TorchScript archive), sha256 published by OpenAI (clip/clip.py)
#   scripts/download_clip.sh --open-clip laion/CLIP-ViT-B-16-laion2B-s34B-b88K [--sha256 HASH]
#       open_clip's checkpoint from the Hugging Face hub: open_clip_model.safetensors and
#       open_clip_config.json into models/CLIP-ViT-B-16-laion2B-s34B-b88K/
#   scripts/download_clip.sh --hf openai/clip-vit-base-patch16 [--sha256 HASH]
#       transformers' CLIPModel from the hub: config.json and model.safetensors into
#       models/clip-vit-base-patch16/
#   Hub files: HASH is the weights file's sha256 as the hub's file page shows it (Git LFS); without
#   it the first download's sha256 is written to the folder's SHA256SUMS and later runs check it.
#
# Afterwards: clipes-generate --config configs/voc.json --model models/ViT-B-16.pt \
#                             --vocab models/bpe_simple_vocab_16e6.txt.gz ...
#   (or --model models/CLIP-ViT-B-16-laion2B-s34B-b88K, --model models/clip-vit-base-patch16)
set -euo pipefail

dir=models
arch="ViT-B/16"
hub_repo=""
hub_kind=""
hub_sha=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --open-clip) hub_kind=open_clip; hub_repo="$2"; shift 2 ;;
    --hf) hub_kind=hf; hub_repo="$2"; shift 2 ;;
    --sha256) hub_sha="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "download_clip: unknown argument $1" >&2; exit 2 ;;
  esac
done

# OpenAI publishes each model under its own sha256 (the same list as clip/clip.py's _MODELS).
case "$arch" in
  ViT-B/16) model_sha=5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f; model_name=ViT-B-16.pt ;;
  ViT-B/32) model_sha=40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af; model_name=ViT-B-32.pt ;;
  ViT-L/14) model_sha=b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836; model_name=ViT-L-14.pt ;;
  ViT-L/14@336px) model_sha=3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02; model_name=ViT-L-14-336px.pt ;;
  *) echo "download_clip: unknown --arch $arch (ViT-B/16, ViT-B/32, ViT-L/14 or ViT-L/14@336px)" >&2; exit 2 ;;
esac
model_url="https://openaipublic.azureedge.net/clip/models/${model_sha}/${model_name}"
vocab_name=bpe_simple_vocab_16e6.txt.gz
vocab_sha=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
vocab_url="https://github.com/openai/CLIP/raw/main/clip/${vocab_name}"

fetch() {  # fetch URL FILE: download to FILE.part, then rename
  local url="$1" file="$2"
  echo "download_clip: fetching $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$file.part" "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --tries=3 -O "$file.part" "$url"
  else
    echo "download_clip: neither curl nor wget is installed" >&2; exit 1
  fi
  mv "$file.part" "$file"
}

verified() {  # verified FILE SHA256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

get() {  # get URL FILE SHA256
  local url="$1" file="$2" sha="$3"
  if verified "$file" "$sha"; then
    echo "download_clip: $file is present and its sha256 matches"
    return
  fi
  fetch "$url" "$file"
  if ! verified "$file" "$sha"; then
    echo "download_clip: $file has sha256 $(sha256sum "$file" | cut -d' ' -f1), expected $sha;" \
         "removing it (a broken or changed download)" >&2
    rm -f "$file"
    exit 1
  fi
  echo "download_clip: $file OK (sha256 $sha)"
}

# A hub checkpoint: the weights checked against --sha256, else against the SHA256SUMS the first
# download wrote; the small config file is fetched as it is.
get_hub() {  # get_hub REPO WEIGHTS CONFIG
  local repo="$1" weights="$2" config="$3"
  local folder="$dir/${repo##*/}" base="https://huggingface.co/$repo/resolve/main"
  mkdir -p "$folder"
  local sha="$hub_sha"
  if [ -z "$sha" ] && [ -f "$folder/SHA256SUMS" ]; then
    sha="$(awk -v f="$weights" '$2 == f {print $1}' "$folder/SHA256SUMS")"
  fi
  if [ -n "$sha" ]; then
    get "$base/$weights" "$folder/$weights" "$sha"
  else
    fetch "$base/$weights" "$folder/$weights"
    sha="$(sha256sum "$folder/$weights" | cut -d' ' -f1)"
    echo "$sha  $weights" > "$folder/SHA256SUMS"
    echo "download_clip: $folder/$weights has sha256 $sha (no published hash given: compare it" \
         "with the SHA256 on https://huggingface.co/$repo/blob/main/$weights; recorded in" \
         "$folder/SHA256SUMS for later runs)"
  fi
  fetch "$base/$config" "$folder/$config"
}

mkdir -p "$dir"
case "$hub_kind" in
  open_clip) get_hub "$hub_repo" open_clip_model.safetensors open_clip_config.json ;;
  hf) get_hub "$hub_repo" model.safetensors config.json ;;
  *) get "$model_url" "$dir/$model_name" "$model_sha" ;;
esac
get "$vocab_url" "$dir/$vocab_name" "$vocab_sha"
