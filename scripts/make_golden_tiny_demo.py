#!/usr/bin/python3
"""Makes tests/data/tiny-demo, the golden data that lets a clone without ../shared check clipes
against the authors' code: a trimmed copy of ../shared/reference/tiny-demo (what CLIP-ES computes
with scripts/make_tiny_clip.py --seed 0 on the demo photos) and an excerpt of CLIP's vocabulary.

    /usr/bin/python3 scripts/make_golden_tiny_demo.py \
        --reference ../shared/reference/tiny-demo \
        --vocab ../shared/vocab/bpe_simple_vocab_16e6.txt.gz \
        --config configs/voc.json --out tests/data/tiny-demo

Per image <id> it writes <id>.npz (compressed: `keys` int64 [K], `initial` float32 [K,h,w] the
GradCAM before CAA as the reference computed it, `cams` float16 [K,H,W] the refined CAMs rounded
to nearest-even float16, as the authors' code stores them) and <id>.png (the authors' pseudo mask).

vocab_excerpt.txt.gz is CLIP's vocabulary file with every merge that cannot apply to the
config's sentences replaced by the inert line "∅ ∅" (U+2205 is outside CLIP's byte alphabet, so
such a merge never fires). Line numbers, hence merge ranks and token ids, are those of the real
file, so the excerpt tokenizes the config's sentences exactly as the whole vocabulary does: BPE
applies, step by step, the lowest-ranked merge among the word's adjacent pairs; every merge it
applies forms a symbol that is a substring of a word of the sentence, and the excerpt keeps every
merge whose symbol is a substring of the config's text (lower-cased), so the merge chosen at each
step is still there and still the lowest. The config must be ASCII (its bytes are then CLIP's
symbols themselves). The 1.3 MB vocabulary is not the project's to ship; the excerpt is ~0.1 MB.
"""
import argparse
import gzip
import json
import os
import shutil

import numpy as np

INERT = "\u2205 \u2205"


def write_vocab_excerpt(vocab_gz, config_file, out_file):
    with open(config_file, encoding="utf-8") as f:
        text = f.read()
    if not text.isascii():
        raise SystemExit(f"{config_file}: not ASCII; the excerpt's substring rule needs ASCII text")
    text = text.lower()
    with gzip.open(vocab_gz, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    header, merges = lines[0], lines[1:49152 - 256 - 2 + 1]
    kept, out = 0, [header]
    for line in merges:
        symbol = line.replace(" ", "")
        if symbol.endswith("</w>"):
            symbol = symbol[: -len("</w>")]
        if symbol in text:
            out.append(line)
            kept += 1
        else:
            out.append(INERT)
    tmp = out_file + ".part"
    # mtime=0: the same inputs give the same bytes.
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(out) + "\n").encode("utf-8"))
    os.replace(tmp, out_file)
    return kept, len(merges)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="../shared/reference/tiny-demo")
    parser.add_argument("--vocab", required=True, help="CLIP's bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--config", required=True, help="the config whose sentences are tokenized")
    parser.add_argument("--out", required=True, help="tests/data/tiny-demo")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    shutil.copyfile(os.path.join(args.reference, "labels.txt"), os.path.join(args.out, "labels.txt"))
    with open(os.path.join(args.reference, "labels.txt")) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    for image_id in ids:
        src = os.path.join(args.reference, image_id)
        cams = np.load(os.path.join(src, "attn_highres.npy"))
        np.savez_compressed(os.path.join(args.out, image_id + ".npz"),
                            keys=np.load(os.path.join(src, "keys.npy")).astype(np.int64),
                            initial=np.load(os.path.join(src, "grayscale_cam.npy")).astype(np.float32),
                            cams=cams.astype(np.float16))
        shutil.copyfile(os.path.join(src, "pseudo_mask.png"), os.path.join(args.out, image_id + ".png"))
    kept, total = write_vocab_excerpt(args.vocab, args.config, os.path.join(args.out, "vocab_excerpt.txt.gz"))
    print(json.dumps({"images": ids, "merges_kept": kept, "merges": total}))


if __name__ == "__main__":
    main()
