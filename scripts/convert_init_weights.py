#!/usr/bin/python3
"""Converts initial ResNet weights for clipes-train-seg into an archive LibTorch reads.

Usage: /usr/bin/python3 scripts/convert_init_weights.py INPUT.pth OUTPUT.pth

INPUT is whatever `torch.load` reads (legacy or zip serialisation, an OrderedDict state dict,
or a dict holding one under "state_dict" / "model"). Two key schemes are recognised:

* deeplab-pytorch (kazuto1011/deeplab-pytorch) DeepLabV2 / MSC files, Caffe layout: the
  COCO-pretrained init converted from DeepLab's init.caffemodel (deeplabv1_resnet101-coco...),
  its trained MSC models (deeplabv2_resnet101_msc-...), and ImageNet ResNets converted to the
  same names. Keys, after the prefixes `module.`, `base.`, `scale.`/`Scale.` are stripped:
      layer1.conv1.{conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var}
      layer{2..5}.block{j}.{reduce,conv3x3,increase,shortcut}.{conv.weight, bn.*}
      aspp.c{i}.{weight,bias}   (older releases: aspp.stages.c{i}.*)
  These are clipes' own names (include/clipes/seg/deeplab.h): the mapping is the identity.
* torchvision ResNet (PyTorch layout, stride in the 3x3 conv): needs model.layout "pytorch".
      conv1.weight, bn1.*                  -> layer1.conv1.conv.weight, layer1.conv1.bn.*
      layer{s}.{k}.conv{1,2,3}.weight      -> layer{s+1}.block{k+1}.{reduce,conv3x3,increase}.conv.weight
      layer{s}.{k}.bn{1,2,3}.*             -> layer{s+1}.block{k+1}.{reduce,conv3x3,increase}.bn.*
      layer{s}.{k}.downsample.0.weight     -> layer{s+1}.block{k+1}.shortcut.conv.weight
      layer{s}.{k}.downsample.1.*          -> layer{s+1}.block{k+1}.shortcut.bn.*
      fc.*                                 -> dropped (ImageNet classifier)

`num_batches_tracked` buffers are dropped. Anything else is an error that lists the keys it
does not know. OUTPUT (written atomically) is a torch.save zip archive:
    {"format": "clipes-seg-init-1", "layout": "caffe" | "pytorch", "source": INPUT's name,
     "state_dict": {clipes name: float32 tensor}}
which clipes::seg::load_init_weights reads (and checks tensor by tensor against the model).
"""

import argparse
import os
import re
import sys
import tempfile

import torch

FORMAT = "clipes-seg-init-1"
PREFIXES = ("module.", "base.", "scale.", "Scale.")

DEEPLAB_KEY = re.compile(
    r"^(layer1\.conv1\.(conv\.weight|bn\.(weight|bias|running_mean|running_var))"
    r"|layer[2-5]\.block[0-9]+\.(reduce|conv3x3|increase|shortcut)\."
    r"(conv\.weight|bn\.(weight|bias|running_mean|running_var))"
    r"|aspp\.c[0-9]+\.(weight|bias))$")
TORCHVISION_KEY = re.compile(r"^layer([1-4])\.([0-9]+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$")
TORCHVISION_PARTS = {"conv1": ("reduce", "conv"), "bn1": ("reduce", "bn"),
                     "conv2": ("conv3x3", "conv"), "bn2": ("conv3x3", "bn"),
                     "conv3": ("increase", "conv"), "bn3": ("increase", "bn"),
                     "downsample.0": ("shortcut", "conv"), "downsample.1": ("shortcut", "bn")}


class ConversionError(Exception):
    pass


def unwrap(obj):
    """The state dict inside what torch.load returned."""
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        return obj
    raise ConversionError(f"expected a state dict, found {type(obj).__name__}")


def strip_prefixes(name):
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                changed = True
    return name


def map_deeplab(name):
    name = name.replace("aspp.stages.", "aspp.")
    return name if DEEPLAB_KEY.match(name) else None


def map_torchvision(name):
    if name.startswith("fc."):
        return ""  # dropped
    if name == "conv1.weight":
        return "layer1.conv1.conv.weight"
    if name.startswith("bn1."):
        return "layer1.conv1.bn." + name[len("bn1."):]
    m = TORCHVISION_KEY.match(name)
    if not m:
        return None
    stage, block, part, rest = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
    module, kind = TORCHVISION_PARTS[part]
    return f"layer{stage + 1}.block{block + 1}.{module}.{kind}.{rest}"


def detect_scheme(names):
    deeplab = sum(1 for n in names if map_deeplab(n))
    torchvision = sum(1 for n in names if map_torchvision(n))
    if deeplab > 0 and deeplab >= torchvision:
        return "deeplab"
    if torchvision > 0 and any(n.startswith("layer1.0.") for n in names):
        return "torchvision"
    sample = ", ".join(sorted(names)[:12])
    raise ConversionError(
        "unknown key scheme: expected deeplab-pytorch names (layer1.conv1.conv.weight, "
        "layer2.block1.reduce.conv.weight, ...) or torchvision names (conv1.weight, "
        f"layer1.0.conv1.weight, ...); the file has: {sample}")


def convert(state):
    tensors = {}
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            continue
        name = strip_prefixes(key)
        if name.endswith("num_batches_tracked"):
            continue
        tensors[name] = value
    if not tensors:
        raise ConversionError("the file holds no tensors")
    scheme = detect_scheme(tensors)
    mapper = map_deeplab if scheme == "deeplab" else map_torchvision
    out, unknown, dropped = {}, [], []
    for name, value in tensors.items():
        target = mapper(name)
        if target is None:
            unknown.append(name)
        elif target == "":
            dropped.append(name)
        elif target in out:
            raise ConversionError(f"two tensors map to {target}")
        else:
            out[target] = value.detach().to(torch.float32).contiguous().clone()
    if unknown:
        raise ConversionError(f"{len(unknown)} {scheme} keys not understood: "
                              + ", ".join(sorted(unknown)[:20]))
    layout = "caffe" if scheme == "deeplab" else "pytorch"
    return out, layout, scheme, dropped


def describe(state):
    blocks = [len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in range(2, 6)]
    depth = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}.get(tuple(blocks), "?")
    width = state["layer1.conv1.conv.weight"].shape[0] if "layer1.conv1.conv.weight" in state else "?"
    classes = state["aspp.c0.weight"].shape[0] if "aspp.c0.weight" in state else None
    text = f"ResNet-{depth} (blocks {blocks}, width {width})"
    return text + (f", ASPP with {classes} classes" if classes is not None else ", no ASPP")


def save_atomic(obj, path):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        torch.save(obj, tmp, _use_new_zipfile_serialization=True)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="weights file torch.load reads")
    parser.add_argument("output", help="archive for clipes-train-seg --init")
    args = parser.parse_args(argv)
    try:
        try:
            loaded = torch.load(args.input, map_location="cpu")
        except Exception as e:  # noqa: BLE001 - any unpickling failure is reported the same way
            raise ConversionError(f"torch.load cannot read it ({e})")
        state, layout, scheme, dropped = convert(unwrap(loaded))
    except ConversionError as e:
        print(f"convert_init_weights: {args.input}: {e}", file=sys.stderr)
        return 1
    save_atomic({"format": FORMAT, "layout": layout, "source": os.path.basename(args.input),
                 "state_dict": state}, args.output)
    note = f"; dropped {len(dropped)} ({', '.join(sorted(dropped))})" if dropped else ""
    print(f"convert_init_weights: {args.input} ({scheme} names) -> {args.output}: "
          f"{len(state)} tensors, {describe(state)}, layout {layout}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
