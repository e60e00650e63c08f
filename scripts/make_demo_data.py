#!/usr/bin/env python3
"""Writes the built-in demo of clipes-generate: sample photos that Debian's python3-skimage ships,
with their image-level labels in the custom layout of configs/custom-example.json
(<out>/images/<id>.<ext>, <out>/labels.txt).

With --vocab FILE it also writes a synthetic BPE vocabulary in the format of CLIP's
bpe_simple_vocab_16e6.txt.gz (same number of merges, so token ids fit CLIP's 49408-row
embedding). It exists only so that the demo runs end to end without internet together with a
random test model; its tokens mean nothing.

    /usr/bin/python3 scripts/make_demo_data.py OUT [--vocab FILE]
"""
import argparse
import gzip
import os
import shutil
import sys

# image file in skimage's data folder -> (demo id, labels as class names of custom-example.json)
SAMPLES = [
    ("astronaut.png", "astronaut", ["astronaut"]),
    ("chelsea.png", "chelsea", ["cat"]),
    ("coffee.png", "coffee", ["coffee_cup"]),
    ("rocket.jpg", "rocket", ["rocket"]),
    ("motorcycle_left.png", "motorcycle", ["motorcycle"]),
    ("camera.png", "cameraman", ["person"]),  # a grey ('L') photo
    ("horse.png", "horse", ["horse"]),        # RGBA: the alpha channel is dropped, as Pillow does
]

CLIP_MERGES = 49152 - 256 - 2


def byte_symbols():
    """CLIP's bytes_to_unicode() table, as characters in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def write_synthetic_vocab(path):
    symbols = byte_symbols()
    merges = []
    # Pairs of single symbols, then pairs ending a word, until CLIP's merge count is reached.
    for second_suffix in ("", "</w>"):
        for a in symbols:
            for b in symbols:
                if len(merges) == CLIP_MERGES:
                    break
                merges.append(f"{a} {b}{second_suffix}")
    assert len(merges) == CLIP_MERGES
    tmp = path + ".part"
    with gzip.open(tmp, "wt", encoding="utf-8") as out:
        out.write('"synthetic clipes demo vocabulary (not CLIP\'s)#version: 0.2\n')
        out.write("\n".join(merges) + "\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write images/ and labels.txt into")
    parser.add_argument("--vocab", help="also write a synthetic BPE vocabulary here")
    args = parser.parse_args()
    try:
        import skimage.data
    except ImportError:
        sys.exit("make_demo_data: python3-skimage is missing (scripts/install_deps.sh installs it)")
    source = os.path.dirname(skimage.data.__file__)
    images = os.path.join(args.out, "images")
    os.makedirs(images, exist_ok=True)
    lines = []
    for name, demo_id, labels in SAMPLES:
        ext = os.path.splitext(name)[1]
        target = os.path.join(images, demo_id + ext)
        if ext == ".png":
            # Re-encoded without the sample's ICC profile, which libpng warns about on every read
            # ("iCCP: known incorrect sRGB profile"); the pixels are unchanged.
            from PIL import Image
            with Image.open(os.path.join(source, name)) as picture:
                picture.load()
                picture.info.pop("icc_profile", None)
                picture.save(target)
        else:
            shutil.copyfile(os.path.join(source, name), target)
        lines.append(" ".join([demo_id] + labels))
    with open(os.path.join(args.out, "labels.txt"), "w") as out:
        out.write("# <id> <class> ...: the demo's image-level labels (configs/custom-example.json)\n")
        out.write("\n".join(lines) + "\n")
    if args.vocab:
        write_synthetic_vocab(args.vocab)
    print(f"make_demo_data: {len(SAMPLES)} images and labels.txt in {args.out}")


if __name__ == "__main__":
    main()
