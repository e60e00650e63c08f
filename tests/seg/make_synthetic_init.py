#!/usr/bin/python3
"""Writes a synthetic ResNet state dict with the key names and shapes of a published init file,
for the tests of scripts/convert_init_weights.py and clipes::seg::load_init_weights.

Usage: make_synthetic_init.py SCHEME OUTPUT [--depth 50|101] [--width W] [--classes C]
                              [--drop KEY,KEY...]
SCHEME:
  deeplab      deeplab-pytorch DeepLabV2 names (layer1.conv1.conv.weight, ...), an OrderedDict
               with num_batches_tracked buffers, zip serialisation (like torch.save(state_dict))
  deeplab-msc  the same inside deeplab-pytorch's MSC wrapper (`base.` prefix), legacy
               (pre-1.6, non-zip) serialisation
  torchvision  torchvision ResNet names (conv1, bn1, layer1.0.conv1, downsample.0, fc.*)
  plain        clipes' own names in a plain dict, zip serialisation (no conversion needed)
Every tensor holds value(name, i) = (h(name) % 997) / 997 + (i % 101) / 1000 in float32, where
h is a polynomial hash of clipes' name for the tensor (the C++ test recomputes it), so a tensor
that lands under the wrong name or in the wrong order is seen. --drop leaves out tensors
(named in clipes' names).
"""

import argparse
import collections
import sys

import torch

BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
BN = ("weight", "bias", "running_mean", "running_var")


def name_hash(name):
    h = 0
    for c in name:
        h = (h * 131 + ord(c)) % 1000003
    return h


def pattern(name, shape):
    n = 1
    for s in shape:
        n *= s
    base = (name_hash(name) % 997) / 997.0
    values = base + (torch.arange(n, dtype=torch.int64) % 101).to(torch.float64) / 1000.0
    return values.to(torch.float32).reshape(shape)


def clipes_tensors(depth, width, classes):
    """(clipes name, shape) in model order."""
    out = [("layer1.conv1.conv.weight", (width, 3, 7, 7))]
    out += [(f"layer1.conv1.bn.{p}", (width,)) for p in BN]
    in_ch = width
    for s, blocks in zip(range(2, 6), BLOCKS[depth]):
        out_ch = width * 4 * 2 ** (s - 2)
        mid = out_ch // 4
        for j in range(1, blocks + 1):
            block_in = in_ch if j == 1 else out_ch
            parts = [("reduce", (mid, block_in, 1, 1)), ("conv3x3", (mid, mid, 3, 3)),
                     ("increase", (out_ch, mid, 1, 1))]
            if j == 1:
                parts.append(("shortcut", (out_ch, block_in, 1, 1)))
            for part, shape in parts:
                prefix = f"layer{s}.block{j}.{part}"
                out.append((f"{prefix}.conv.weight", shape))
                out += [(f"{prefix}.bn.{p}", (shape[0],)) for p in BN]
        in_ch = out_ch
    for i in range(4 if classes > 0 else 0):
        out.append((f"aspp.c{i}.weight", (classes, 32 * width, 3, 3)))
        out.append((f"aspp.c{i}.bias", (classes,)))
    return out


TORCHVISION_PART = {"reduce.conv": "conv1", "reduce.bn": "bn1", "conv3x3.conv": "conv2",
                    "conv3x3.bn": "bn2", "increase.conv": "conv3", "increase.bn": "bn3",
                    "shortcut.conv": "downsample.0", "shortcut.bn": "downsample.1"}


def torchvision_name(name):
    if name.startswith("layer1.conv1.conv."):
        return "conv1." + name[len("layer1.conv1.conv."):]
    if name.startswith("layer1.conv1.bn."):
        return "bn1." + name[len("layer1.conv1.bn."):]
    layer, block, part, kind, param = name.split(".")
    stage = int(layer[len("layer"):]) - 1
    index = int(block[len("block"):]) - 1
    return f"layer{stage}.{index}.{TORCHVISION_PART[part + '.' + kind]}.{param}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scheme", choices=("deeplab", "deeplab-msc", "torchvision", "plain"))
    parser.add_argument("output")
    parser.add_argument("--depth", type=int, default=101, choices=(50, 101))
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--classes", type=int, default=91)
    parser.add_argument("--drop", default="")
    args = parser.parse_args()
    drop = set(filter(None, args.drop.split(",")))
    state = collections.OrderedDict()
    for name, shape in clipes_tensors(args.depth, args.width, args.classes):
        if name in drop:
            continue
        value = pattern(name, shape)
        if args.scheme == "torchvision":
            if name.startswith("aspp."):
                continue
            key = torchvision_name(name)
        elif args.scheme == "deeplab-msc":
            key = "base." + name
        else:
            key = name
        state[key] = value
        if args.scheme != "plain" and key.endswith("running_var"):
            state[key[:-len("running_var")] + "num_batches_tracked"] = torch.tensor(0)
    if args.scheme == "torchvision":
        state["fc.weight"] = torch.zeros(1000, 32 * args.width)
        state["fc.bias"] = torch.zeros(1000)
    if args.scheme == "plain":
        torch.save(dict(state), args.output)
    elif args.scheme == "deeplab-msc":
        torch.save(state, args.output, _use_new_zipfile_serialization=False)
    else:
        torch.save(state, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
