#!/usr/bin/python3
"""Writes the fixtures of tests/data/image_test.cpp and tests/clip/preprocess_test.cpp: what
Pillow computes, so that the C++ tests check bit-exactness without Python at test time.

Run with Debian's Python (python3-pil, python3-numpy), from the repository root:
    /usr/bin/python3 scripts/make_resize_fixtures.py
It rewrites (deterministically, seeded):
  tests/data/image/resize_cases.npz  Image.resize on raw 1-4 channel images: `cases` int32 [N, 6]
      rows (in_w, in_h, channels, out_w, out_h, filter: 0 nearest, 1 bicubic), `in_<i>` uint8
      [in_h, in_w, C], `out_<i>` uint8 [out_h, out_w, C].
  tests/data/image/files/*           small JPEG/PNG files in every mode clipes reads (and a few it
      must reject), and tests/data/image/expected.npz with, per file stem (dots -> '_'):
      `<stem>__rgb` Image.open(f).convert("RGB"); `<stem>__up` resized with Image.BICUBIC to the
      CLIP size (sides rounded up to multiples of 16) then converted to RGB; `<stem>__down`
      resized to (max(1, 2w // 5), max(1, h // 3)) then converted; `<stem>__clip` (some files)
      the CLIP input [1, 3, H', W'] float32: (x / 255 - mean) / std in float32 as torchvision does.
"""

import io
import math
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "image")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def pattern(rs, h, w, c):
    """Gradients, a hard 0/255 checker (overshoot and clipping) and noise, in patches."""
    y, x = np.mgrid[0:h, 0:w]
    grad = np.stack([(x * 255 // max(w - 1, 1) + 40 * k) % 256 for k in range(c)], -1)
    grad = (grad + (y * 97 // max(h - 1, 1))[..., None]) % 256
    checker = np.repeat((((x // 2 + y // 3) % 2) * 255)[..., None], c, -1)
    noise = rs.randint(0, 256, (h, w, c))
    pick = rs.randint(0, 3, (h // 4 + 1, w // 4 + 1))
    pick = np.repeat(np.repeat(pick, 4, 0), 4, 1)[:h, :w, None]
    return np.where(pick == 0, grad, np.where(pick == 1, checker, noise)).astype(np.uint8)


def pil_from(a):
    c = a.shape[2]
    if c == 1:
        return Image.fromarray(a[..., 0], "L")
    if c == 2:  # "La" is resampled as it is ("LA" would be premultiplied first)
        return Image.merge("La", [Image.fromarray(a[..., i], "L") for i in range(2)])
    if c == 3:
        return Image.fromarray(a, "RGB")
    # "CMYK": four channels resampled independently ("RGBA" would be premultiplied first)
    return Image.frombytes("CMYK", (a.shape[1], a.shape[0]), a.tobytes())


def nearest_by_product(in_size, out_size):
    step = in_size / out_size
    return [int(step * 0.5 + i * step) for i in range(out_size)]


def nearest_by_sum(in_size, out_size):
    step, pos, out = in_size / out_size, in_size / out_size * 0.5, []
    for _ in range(out_size):
        out.append(int(pos))
        pos += step
    return out


def resize_cases():
    rs = np.random.RandomState(20230611)
    cases = [  # (in_w, in_h, C, out_w, out_h, filter)
        (125, 94, 3, 128, 96, 1),  # a VOC photo's ratio, quartered
        (50, 37, 3, 64, 48, 1), (50, 37, 1, 64, 48, 1),
        (3, 2, 3, 17, 11, 1), (7, 5, 1, 16, 16, 1), (1, 1, 3, 5, 3, 1), (1, 1, 1, 1, 7, 1),
        (64, 48, 3, 16, 16, 1), (97, 31, 1, 13, 7, 1), (200, 3, 3, 7, 2, 1),
        (256, 1, 1, 3, 1, 1), (1, 300, 1, 1, 4, 1), (300, 2, 3, 1, 1, 1), (1000, 2, 1, 3, 2, 1),
        (31, 17, 3, 32, 32, 1), (33, 65, 1, 48, 80, 1),
        (40, 30, 3, 40, 45, 1), (40, 30, 3, 25, 30, 1), (40, 30, 1, 40, 7, 1),
        (2, 2, 3, 200, 3, 1), (1, 2, 1, 3, 300, 1), (1, 9, 3, 1, 16, 1), (17, 1, 1, 32, 1, 1),
        (16, 16, 3, 16, 16, 1), (45, 29, 2, 37, 61, 1), (45, 29, 4, 37, 61, 1),
        (23, 41, 4, 9, 100, 1), (60, 60, 2, 11, 13, 1),
        (13, 9, 1, 40, 25, 0), (40, 25, 3, 13, 9, 0), (7, 3, 3, 7, 11, 0), (5, 1, 2, 12, 1, 0),
    ]
    # Nearest-neighbour sizes where Pillow's step-by-step position differs from a product.
    found = 0
    for n_in in range(3, 400):
        for n_out in (n_in * 3 - 1, 97, 250, 333):
            if found < 4 and nearest_by_sum(n_in, n_out) != nearest_by_product(n_in, n_out):
                cases.append((n_in, 1, 1, n_out, 1, 0))
                found += 1
    assert found == 4, "no nearest-neighbour case where accumulation matters"
    for _ in range(30):
        c = int(rs.choice([1, 1, 3, 3, 2, 4]))
        w, h = int(rs.randint(1, 48)), int(rs.randint(1, 48))
        ow, oh = int(rs.randint(1, 64)), int(rs.randint(1, 64))
        cases.append((w, h, c, ow, oh, 1))
    arrays = {"cases": np.array(cases, dtype=np.int32)}
    for i, (w, h, c, ow, oh, f) in enumerate(cases):
        a = pattern(rs, h, w, c)
        im = pil_from(a)
        r = np.array(im.resize((ow, oh), Image.NEAREST if f == 0 else Image.BICUBIC))
        arrays[f"in_{i}"] = a
        arrays[f"out_{i}"] = r.reshape(oh, ow, c)
    np.savez_compressed(os.path.join(OUT, "resize_cases.npz"), **arrays)
    return len(cases)


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def raw_png(w, h, depth, color_type, rows, extra=b""):
    """A PNG written by hand, for layouts Pillow does not write (filter 0 on every row)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    data = zlib.compress(b"".join(b"\x00" + r for r in rows))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def pack_bits(values, depth):
    per_byte = 8 // depth
    out = bytearray()
    for i in range(0, len(values), per_byte):
        byte = 0
        for j, v in enumerate(values[i:i + per_byte]):
            byte |= int(v) << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def write_files():
    rs = np.random.RandomState(7)
    folder = os.path.join(OUT, "files")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    w, h = 37, 23
    y, x = np.mgrid[0:h, 0:w]
    smooth = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], -1).astype(np.uint8)
    busy = pattern(rs, h, w, 3)
    alpha = np.where((x + y) % 5 == 0, 0, np.where((x * y) % 7 == 0, 255, (x * 7 + y * 11) % 256))
    alpha = alpha.astype(np.uint8)
    files = {}

    def save(name, im, **kw):
        path = os.path.join(folder, name)
        im.save(path, **kw)
        files[name] = path

    save("grey.jpg", Image.fromarray(busy[..., 0], "L"), quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90": neither Pillow nor clipes applies it
    save("colour.jpg", Image.fromarray(busy, "RGB"), quality=85, exif=exif.tobytes())
    save("progressive.jpg", Image.fromarray(smooth, "RGB"), quality=80, progressive=True,
         subsampling=0)
    save("grey.png", Image.fromarray(busy[..., 1], "L"))
    save("bilevel.png", Image.fromarray(busy[..., 2] > 127).convert("1"))
    la = Image.merge("LA", [Image.fromarray(busy[..., 0]), Image.fromarray(alpha)])
    save("grey_alpha.png", la)
    save("rgb.png", Image.fromarray(busy, "RGB"))
    save("rgba.png", Image.fromarray(np.dstack([busy, alpha]), "RGBA"))
    save("rgb_trns.png", Image.fromarray(smooth, "RGB"), transparency=(0, 0, 0))
    pal = Image.fromarray(busy, "RGB").quantize(colors=200, method=Image.Quantize.MEDIANCUT)
    save("palette.png", pal)
    pal16 = Image.fromarray(smooth, "RGB").quantize(colors=16)
    save("palette4.png", pal16, bits=4)
    # Hand-written layouts: 2-bit grey; 16-bit RGB (Pillow keeps the high bytes); an 8-bit palette of 5 entries whose indices go past it
    # (Pillow shows the grey ramp there); 16-bit grey and a CMYK JPEG (both rejected).
    g2 = (busy[..., 0] >> 6).astype(np.uint8)
    rows = [pack_bits(r, 2) for r in g2]
    with open(os.path.join(folder, "grey2.png"), "wb") as f:
        f.write(raw_png(w, h, 2, 0, rows))
    files["grey2.png"] = os.path.join(folder, "grey2.png")
    idx = (busy[..., 1] // 24).astype(np.uint8)  # 0..10
    plte = png_chunk(b"PLTE", bytes([200, 10, 10, 10, 200, 10, 10, 10, 200, 250, 250, 0, 0, 90, 90]))
    with open(os.path.join(folder, "palette_short.png"), "wb") as f:
        f.write(raw_png(w, h, 8, 3, [bytes(r) for r in idx], plte))
    files["palette_short.png"] = os.path.join(folder, "palette_short.png")
    rgb16 = (busy.astype(">u2") * 251 + np.uint16(17)).astype(">u2")  # low bytes vary too
    with open(os.path.join(folder, "rgb16.png"), "wb") as f:
        f.write(raw_png(w, h, 16, 2, [r.tobytes() for r in rgb16]))
    files["rgb16.png"] = os.path.join(folder, "rgb16.png")
    g16 = (busy[..., 0].astype(">u2") * 257)
    with open(os.path.join(folder, "grey16.png"), "wb") as f:
        f.write(raw_png(w, h, 16, 0, [r.tobytes() for r in g16]))
    Image.frombytes("CMYK", (w, h), np.dstack([busy, alpha]).tobytes()).save(
        os.path.join(folder, "cmyk.jpg"), quality=90)
    return files


def clip_input(rgb):
    t = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    t = (t - MEAN) / STD
    return np.ascontiguousarray(t.transpose(2, 0, 1)[None])


def expected(files):
    arrays = {}
    modes = {}
    for name, path in sorted(files.items()):
        stem = name.replace(".", "_")
        im = Image.open(path)
        modes[name] = im.mode
        w, h = im.size
        up = (math.ceil(w / 16) * 16, math.ceil(h / 16) * 16)
        down = (max(1, 2 * w // 5), max(1, h // 3))
        arrays[f"{stem}__rgb"] = np.array(im.convert("RGB"))
        up_rgb = im.resize(up, Image.BICUBIC).convert("RGB")
        arrays[f"{stem}__up"] = np.array(up_rgb)
        arrays[f"{stem}__down"] = np.array(im.resize(down, Image.BICUBIC).convert("RGB"))
        if name in ("grey.jpg", "colour.jpg", "rgba.png", "palette.png"):
            arrays[f"{stem}__clip"] = clip_input(up_rgb)
    np.savez_compressed(os.path.join(OUT, "expected.npz"), **arrays)
    return modes


def main():
    if not PIL.__version__.startswith("9."):
        print(f"warning: fixtures were designed with Pillow 9.x, this is {PIL.__version__}",
              file=sys.stderr)
    os.makedirs(OUT, exist_ok=True)
    n = resize_cases()
    modes = expected(write_files())
    print(f"Pillow {PIL.__version__}: {n} resize cases; files and modes: {modes}")


if __name__ == "__main__":
    main()
