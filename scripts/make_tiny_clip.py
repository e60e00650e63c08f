#!/usr/bin/python3
"""Random-weight CLIP ViT models in OpenAI's release format, and what Python computes with them.

Run with Debian's interpreter (/usr/bin/python3, python3-torch 1.13), never a pyenv one.

    make_tiny_clip.py --out-dir DIR [--seed 0]
        The test fixtures of clipes (a few seconds): in DIR
          tiny_clip.pt             a small CLIP ViT, TorchScript archive of the whole model, fp16
                                   conv/linear/attention weights like OpenAI's ViT-B-16.pt
          tiny_clip_state_dict.pt  the same weights as a torch.save'd plain dict
          tiny_clip_ordered_state_dict.pt  ... as torch.save(model.state_dict()) writes them
                                   (an OrderedDict, which LibTorch 1.13 cannot read)
          tiny_resnet_clip.pt      a ResNet-style CLIP (visual.layer1..., visual.attnpool...), which
                                   clipes must refuse with a clear error
          tiny_clip_traced_cuda.pt the same weights as a torch.jit.trace'd archive whose storages
                                   say they were saved on 'cuda:0' (like OpenAI's ViT-B-16.pt)
          tiny_clip_open_clip/     ... as open_clip on the hub has them: open_clip_model.safetensors
                                   (OpenAI's names) + open_clip_config.json
          tiny_clip_hf/            ... as transformers has them: config.json + model.safetensors
                                   (CLIPModel names, separate q/k/v projections)
          tiny_clip_hf_bin/        a smaller model as config.json + pytorch_model.bin (a plain dict)
          tiny_clip_bad/           broken variants for the error paths (a missing key, an
                                   unknown key, an attentional pooler, transformers'
                                   OrderedDict pytorch_model.bin)
          tiny_gelu_clip/          another model with GELU MLPs (open_clip's LAION models), as
                                   open_clip safetensors, and tiny_gelu_reference/ its outputs
          tiny_clip_arch.json      the sizes the model was built with
          tiny_clip_reference/     .npy outputs computed here the way CLIP-ES computes them
          tiny_clip.stamp          written last: the set is complete

    make_tiny_clip.py --arch ViT-B/16 --out FILE [--seed 0]
        One model file with the real sizes of ViT-B/16 (or ViT-B/32, ViT-L/14) and random
        weights: for benchmarks (the weights mean nothing).

The modules below restate the ViT parts of OpenAI's clip/model.py (same parameter names and
module structure, nn.MultiheadAttention inside each block) and its convert_weights; the
reference outputs restate CLIP-ES's forward (positional-embedding interpolation rounded through
float16, blocks 1..L-1 without gradients keeping head-averaged attention, the last block with
ln_1's output as GradCAM target, mean of the patch tokens after ln_post).
"""

import argparse
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ARCHS = {
    # name: embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
    #       context_length, vocab_size, transformer_width, transformer_heads, transformer_layers
    "tiny": dict(embed_dim=64, image_resolution=112, vision_layers=10, vision_width=128,
                 vision_patch_size=16, context_length=77, vocab_size=49408,
                 transformer_width=128, transformer_heads=2, transformer_layers=2),
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                     vision_patch_size=32, context_length=77, vocab_size=49408,
                     transformer_width=512, transformer_heads=8, transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                     vision_patch_size=16, context_length=77, vocab_size=49408,
                     transformer_width=512, transformer_heads=8, transformer_layers=12),
    "ViT-L/14": dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024,
                     vision_patch_size=14, context_length=77, vocab_size=49408,
                     transformer_width=768, transformer_heads=12, transformer_layers=12),
}


# ---- OpenAI clip/model.py, ViT parts ---------------------------------------------------------

class LayerNorm(nn.LayerNorm):
    """Subclass torch's LayerNorm to handle fp16 (computes in fp32). (OpenAI calls
    super().forward, which TorchScript cannot compile; F.layer_norm is what it runs.)"""

    def forward(self, x: torch.Tensor):
        orig_type = x.dtype
        ret = F.layer_norm(x.to(torch.float32), self.normalized_shape, self.weight, self.bias,
                           self.eps)
        return ret.to(orig_type)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor):
        return x * torch.sigmoid(1.702 * x)


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format by hand (the package is not in Debian 12): 8-byte little-endian
    header size, JSON header {name: {dtype, shape, data_offsets}}, padded with spaces to 8 bytes,
    then the raw little-endian tensors in header order."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64"}
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 \
            else t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in chunks:
            f.write(raw)
    os.replace(tmp, path)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model: int, n_head: int, attn_mask: torch.Tensor = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = LayerNorm(d_model)
        self.attn_mask = attn_mask

    def attention(self, x: torch.Tensor):
        mask = self.attn_mask
        if mask is not None:
            mask = mask.to(dtype=x.dtype, device=x.device)
        return self.attn(x, x, x, need_weights=False, attn_mask=mask)[0]

    def forward(self, x: torch.Tensor):
        x = x + self.attention(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, attn_mask: torch.Tensor = None):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask)
                                         for _ in range(layers)])

    def forward(self, x: torch.Tensor):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution: int, patch_size: int, width: int, layers: int,
                 heads: int, output_dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(in_channels=3, out_channels=width, kernel_size=patch_size,
                               stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        x = x.permute(0, 2, 1)
        x = torch.cat([self.class_embedding.to(x.dtype) +
                       torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device),
                       x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        x = x.permute(1, 0, 2)
        x = self.transformer(x)
        x = x.permute(1, 0, 2)
        x = self.ln_post(x[:, 0, :])
        return x @ self.proj


class CLIP(nn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width,
                 vision_patch_size, context_length, vocab_size, transformer_width,
                 transformer_heads, transformer_layers):
        super().__init__()
        vision_heads = vision_width // 64
        self.visual = VisionTransformer(input_resolution=image_resolution,
                                        patch_size=vision_patch_size, width=vision_width,
                                        layers=vision_layers, heads=vision_heads,
                                        output_dim=embed_dim)
        self.transformer = Transformer(width=transformer_width, layers=transformer_layers,
                                       heads=transformer_heads,
                                       attn_mask=build_attention_mask(context_length))
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        # The release archives carry these three as buffers.
        self.register_buffer("input_resolution", torch.tensor(image_resolution))
        self.register_buffer("context_length", torch.tensor(context_length))
        self.register_buffer("vocab_size", torch.tensor(vocab_size))
        self.initialize_parameters()

    def initialize_parameters(self):
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (self.transformer.width ** -0.5) * ((2 * self.transformer.layers) ** -0.5)
        attn_std = self.transformer.width ** -0.5
        fc_std = (2 * self.transformer.width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.transformer.width ** -0.5)

    def encode_image(self, image):
        return self.visual(image.to(self.visual.conv1.weight.dtype))

    def encode_text(self, text):
        dtype = self.visual.conv1.weight.dtype
        x = self.token_embedding(text).to(dtype)
        x = x + self.positional_embedding.to(dtype)
        x = x.permute(1, 0, 2)
        x = self.transformer(x)
        x = x.permute(1, 0, 2)
        x = self.ln_final(x).to(dtype)
        x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection
        return x

    def forward(self, image, text):
        image_features = self.encode_image(image)
        text_features = self.encode_text(text)
        image_features = image_features / image_features.norm(p=2, dim=1, keepdim=True)
        text_features = text_features / text_features.norm(p=2, dim=1, keepdim=True)
        logit_scale = self.logit_scale.exp()
        logits_per_image = logit_scale * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def build_attention_mask(context_length: int):
    """Causal mask of the text transformer: -inf above the diagonal."""
    mask = torch.empty(context_length, context_length)
    mask.fill_(float("-inf"))
    mask.triu_(1)
    return mask


def convert_weights(model: nn.Module):
    """OpenAI's convert_weights: conv, linear and attention weights, text_projection and proj
    to fp16; everything else (LayerNorm, embeddings, class token, logit scale) stays fp32."""

    def _convert_weights_to_fp16(layer):
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            layer.weight.data = layer.weight.data.half()
            if layer.bias is not None:
                layer.bias.data = layer.bias.data.half()
        if isinstance(layer, nn.MultiheadAttention):
            for attr in [*[f"{s}_proj_weight" for s in ["in", "q", "k", "v"]], "in_proj_bias",
                         "bias_k", "bias_v"]:
                tensor = getattr(layer, attr)
                if tensor is not None:
                    tensor.data = tensor.data.half()
        for name in ["text_projection", "proj"]:
            if hasattr(layer, name):
                attr = getattr(layer, name)
                if attr is not None:
                    attr.data = attr.data.half()

    model.apply(_convert_weights_to_fp16)


def make_clip(arch: dict, seed: int) -> CLIP:
    """A CLIP with OpenAI's initialisation, then every LayerNorm and bias perturbed (so a port
    that drops a bias or swaps weight and bias cannot pass), logit scale ln(100) as released."""
    torch.manual_seed(seed)
    model = CLIP(**arch)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("ln_") or "visual.ln_" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.02 * torch.randn_like(p))
        model.logit_scale.fill_(math.log(100.0))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    convert_weights(model)
    return model


def use_gelu(model: CLIP):
    """open_clip's default (LAION) blocks: nn.GELU (erf) in place of QuickGELU."""
    for block in [*model.visual.transformer.resblocks, *model.transformer.resblocks]:
        block.mlp.gelu = nn.GELU()


def state_for_files(model: CLIP):
    """The parameters a checkpoint holds (no release buffers)."""
    return {k: v for k, v in model.state_dict().items()
            if k not in ("input_resolution", "context_length", "vocab_size")}


def open_clip_config(arch: dict, quick_gelu: bool):
    """open_clip_config.json as the hub has it beside open_clip_model.safetensors."""
    model_cfg = {"embed_dim": arch["embed_dim"],
                 "vision_cfg": {"image_size": arch["image_resolution"],
                                "layers": arch["vision_layers"], "width": arch["vision_width"],
                                "patch_size": arch["vision_patch_size"]},
                 "text_cfg": {"context_length": arch["context_length"],
                              "vocab_size": arch["vocab_size"],
                              "width": arch["transformer_width"],
                              "heads": arch["transformer_heads"],
                              "layers": arch["transformer_layers"]}}
    if quick_gelu:
        model_cfg["quick_gelu"] = True
    return {"model_cfg": model_cfg,
            "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                               "std": [0.26862954, 0.26130258, 0.27577711]}}


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1)
    os.replace(path + ".tmp", path)


def save_open_clip(model: CLIP, arch: dict, folder: str, quick_gelu: bool, extra=None):
    os.makedirs(folder, exist_ok=True)
    state = state_for_files(model)
    state.update(extra or {})
    write_safetensors(os.path.join(folder, "open_clip_model.safetensors"), state,
                      {"format": "pt"})
    write_json(os.path.join(folder, "open_clip_config.json"), open_clip_config(arch, quick_gelu))


def transformers_state(model: CLIP):
    """The state dict under transformers' CLIPModel names (what its
    convert_clip_original_pytorch_to_hf.py produces): q/k/v split out of in_proj, projections
    as Linear weights (transposed)."""
    sd = model.state_dict()
    out = {}
    for tower, prefix, hf in (("vision", "visual.transformer.resblocks.", "vision_model"),
                              ("text", "transformer.resblocks.", "text_model")):
        layers = len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})
        for i in range(layers):
            p, q = f"{prefix}{i}.", f"{hf}.encoder.layers.{i}."
            for kind in ("weight", "bias"):
                for name, part in zip("qkv", sd[f"{p}attn.in_proj_{kind}"].chunk(3, dim=0)):
                    out[f"{q}self_attn.{name}_proj.{kind}"] = part.clone()
                out[f"{q}self_attn.out_proj.{kind}"] = sd[f"{p}attn.out_proj.{kind}"]
                out[f"{q}layer_norm1.{kind}"] = sd[f"{p}ln_1.{kind}"]
                out[f"{q}layer_norm2.{kind}"] = sd[f"{p}ln_2.{kind}"]
                out[f"{q}mlp.fc1.{kind}"] = sd[f"{p}mlp.c_fc.{kind}"]
                out[f"{q}mlp.fc2.{kind}"] = sd[f"{p}mlp.c_proj.{kind}"]
    out["vision_model.embeddings.patch_embedding.weight"] = sd["visual.conv1.weight"]
    out["vision_model.embeddings.class_embedding"] = sd["visual.class_embedding"]
    out["vision_model.embeddings.position_embedding.weight"] = sd["visual.positional_embedding"]
    out["vision_model.embeddings.position_ids"] = \
        torch.arange(sd["visual.positional_embedding"].shape[0]).unsqueeze(0)
    for kind in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{kind}"] = sd[f"visual.ln_pre.{kind}"]
        out[f"vision_model.post_layernorm.{kind}"] = sd[f"visual.ln_post.{kind}"]
        out[f"text_model.final_layer_norm.{kind}"] = sd[f"ln_final.{kind}"]
    out["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    out["text_model.embeddings.token_embedding.weight"] = sd["token_embedding.weight"]
    out["text_model.embeddings.position_embedding.weight"] = sd["positional_embedding"]
    out["text_model.embeddings.position_ids"] = \
        torch.arange(sd["positional_embedding"].shape[0]).unsqueeze(0)
    out["text_projection.weight"] = sd["text_projection"].t().contiguous()
    out["logit_scale"] = sd["logit_scale"]
    return out


def transformers_config(arch: dict, act: str):
    return {"architectures": ["CLIPModel"], "model_type": "clip",
            "projection_dim": arch["embed_dim"], "logit_scale_init_value": 2.6592,
            "torch_dtype": "float32",
            "text_config": {"hidden_size": arch["transformer_width"],
                            "intermediate_size": 4 * arch["transformer_width"],
                            "num_attention_heads": arch["transformer_heads"],
                            "num_hidden_layers": arch["transformer_layers"],
                            "max_position_embeddings": arch["context_length"],
                            "vocab_size": arch["vocab_size"], "hidden_act": act,
                            "layer_norm_eps": 1e-05, "model_type": "clip_text_model"},
            "vision_config": {"hidden_size": arch["vision_width"],
                              "intermediate_size": 4 * arch["vision_width"],
                              "num_attention_heads": arch["vision_width"] // 64,
                              "num_hidden_layers": arch["vision_layers"],
                              "image_size": arch["image_resolution"],
                              "patch_size": arch["vision_patch_size"], "hidden_act": act,
                              "layer_norm_eps": 1e-05, "model_type": "clip_vision_model"}}


def save_transformers(model: CLIP, arch: dict, folder: str, drop=(), bin_as=None):
    """config.json + model.safetensors; with bin_as (dict or OrderedDict), pytorch_model.bin
    instead, torch.save'd as that type (transformers saves an OrderedDict)."""
    os.makedirs(folder, exist_ok=True)
    state = {k: v for k, v in transformers_state(model).items() if k not in drop}
    if bin_as is None:
        write_safetensors(os.path.join(folder, "model.safetensors"), state, {"format": "pt"})
    else:
        path = os.path.join(folder, "pytorch_model.bin")
        torch.save(bin_as((k, v.clone()) for k, v in state.items()), path + ".tmp")
        os.replace(path + ".tmp", path)
    write_json(os.path.join(folder, "config.json"), transformers_config(arch, "quick_gelu"))


def save_traced_cuda(model: CLIP, arch: dict, path: str):
    """torch.jit.trace of the whole model, as OpenAI's release files are, with every storage's
    location rewritten to 'cuda:0' (OpenAI traced and saved on a GPU): the pickles' persistent
    ids ('storage', type, key, location, numel) get 'cuda:0' for 'cpu'. The trace runs a float32
    copy (no float16 convolution on the CPU), then the release's float16 tensors are put back."""
    import pickletools
    import zipfile
    model32 = CLIP(**arch)
    model32.load_state_dict(model.state_dict())
    model32.float().eval()
    image = torch.zeros(1, 3, arch["image_resolution"], arch["image_resolution"])
    text = torch.zeros(1, arch["context_length"], dtype=torch.int64)
    traced = torch.jit.trace(model32, (image, text), check_trace=False)
    release = model.state_dict()
    with torch.no_grad():
        for name, p in traced.named_parameters():
            p.data = release[name].clone()
    tmp = path + ".cpu.tmp"
    torch.jit.save(traced, tmp)

    def to_cuda(pickle_bytes):
        out, last, count = bytearray(), 0, 0
        for op, arg, pos in pickletools.genops(pickle_bytes):
            if op.name == "BINUNICODE" and arg == "cpu":
                out += pickle_bytes[last:pos] + b"X" + (6).to_bytes(4, "little") + b"cuda:0"
                last = pos + 1 + 4 + 3
                count += 1
        return bytes(out + pickle_bytes[last:]), count

    rewritten = 0
    with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(path + ".tmp", "w",
                                                      zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith(".pkl"):
                data, count = to_cuda(data)
                rewritten += count
            dst.writestr(info, data)
    os.remove(tmp)
    assert rewritten > 0, "no storage location found to rewrite"
    # It must now need map_location on a machine without CUDA, and load with it.
    if not torch.cuda.is_available():
        try:
            torch.jit.load(path + ".tmp")
            raise AssertionError("the rewritten archive loads without map_location")
        except RuntimeError:
            pass
    loaded = torch.jit.load(path + ".tmp", map_location="cpu")
    for name, t in loaded.state_dict().items():
        assert torch.equal(t, model.state_dict()[name]), name
    os.replace(path + ".tmp", path)


def save_release(model: CLIP, path: str):
    """TorchScript archive of the whole model, as OpenAI's release files are."""
    scripted = torch.jit.script(model)
    tmp = path + ".tmp"
    torch.jit.save(scripted, tmp)
    os.replace(tmp, path)


# ---- ResNet-style CLIP: only its names matter (clipes must refuse it) ------------------------

class _Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn1(self.conv1(x))


class _AttentionPool2d(nn.Module):
    def __init__(self, c, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(5, c) / c ** 0.5)
        self.k_proj = nn.Linear(c, c)
        self.q_proj = nn.Linear(c, c)
        self.v_proj = nn.Linear(c, c)
        self.c_proj = nn.Linear(c, out)

    def forward(self, x):
        return self.c_proj(x.mean(dim=(2, 3)))


class _ModifiedResNet(nn.Module):
    def __init__(self, c=32, out=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.layer1 = nn.Sequential(_Bottleneck(c))
        self.attnpool = _AttentionPool2d(c, out)

    def forward(self, x):
        return self.attnpool(self.layer1(self.bn1(self.conv1(x))))


class _ResNetClip(nn.Module):
    def __init__(self, arch):
        super().__init__()
        self.visual = _ModifiedResNet(32, arch["embed_dim"])
        width = arch["transformer_width"]
        self.transformer = Transformer(width, 1, width // 64)
        self.token_embedding = nn.Embedding(arch["vocab_size"], width)
        self.positional_embedding = nn.Parameter(torch.zeros(arch["context_length"], width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, arch["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.ones([]))

    def forward(self, image):
        return self.visual(image)


# ---- CLIP-ES's forward, the oracle of the C++ port --------------------------------------------

def upsample_pos_emb(emb, new_size):
    """CLIP-ES: class row kept, the grid rows resized bilinearly, everything rounded to fp16."""
    first = emb[:1, :]
    emb = emb[1:, :]
    n, d = emb.size(0), emb.size(1)
    size = int(np.sqrt(n))
    assert size * size == n
    emb = emb.permute(1, 0)
    emb = emb.view(1, d, size, size).contiguous()
    emb = F.interpolate(emb, size=new_size, mode="bilinear", align_corners=False)
    emb = emb.view(d, -1).contiguous()
    emb = emb.permute(1, 0)
    emb = torch.cat([first, emb], 0)
    return emb.half()


def block_with_weights(block, x):
    y = block.ln_1(x)
    out, weights = block.attn(y, y, y, need_weights=True, attn_mask=None)
    x = x + out
    x = x + block.mlp(block.ln_2(x))
    return x, weights


def clip_es_vision(model32: CLIP, pixels, direction, attn_blocks):
    """Returns tokens entering the last block, mean attention of the last `attn_blocks` blocks,
    the (unnormalised) image feature and d(feature . direction)/dA for A = ln_1(X)."""
    visual = model32.visual
    patch = visual.conv1.weight.shape[-1]
    h, w = pixels.shape[2] // patch, pixels.shape[3] // patch
    pos = upsample_pos_emb(visual.positional_embedding, (h, w))
    with torch.no_grad():
        x = visual.conv1(pixels)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([visual.class_embedding.to(x.dtype) +
                       torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype), x], dim=1)
        x = x + pos.to(x.dtype)
        x = visual.ln_pre(x)
        x = x.permute(1, 0, 2)
        weights = []
        blocks = list(visual.transformer.resblocks)
        for block in blocks[:-1]:
            x, wgt = block_with_weights(block, x)
            weights.append(wgt)
    tokens = x
    last = blocks[-1]
    a = last.ln_1(tokens).detach().requires_grad_(True)
    out, wgt = last.attn(a, a, a, need_weights=True, attn_mask=None)
    weights.append(wgt)
    y = tokens + out
    y = y + last.mlp(last.ln_2(y))
    y = y.permute(1, 0, 2)
    y = visual.ln_post(y)
    y = torch.mean(y[:, 1:, :], dim=1)
    feature = y @ visual.proj
    (feature * direction).sum().backward()
    attn_mean = torch.mean(torch.stack(weights, dim=0)[-attn_blocks:], dim=0)
    return tokens.permute(1, 0, 2), attn_mean, feature.detach(), a.grad.permute(1, 0, 2)


def save_npy(folder, name, tensor):
    array = tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor
    tmp = os.path.join(folder, name + ".tmp.npy")
    np.save(tmp, np.ascontiguousarray(array))
    os.replace(tmp, os.path.join(folder, name + ".npy"))


def write_fixtures(out_dir: str, seed: int):
    os.makedirs(out_dir, exist_ok=True)
    stamp = os.path.join(out_dir, "tiny_clip.stamp")
    if os.path.exists(stamp):
        os.remove(stamp)
    arch = ARCHS["tiny"]
    model = make_clip(arch, seed)
    save_release(model, os.path.join(out_dir, "tiny_clip.pt"))
    # LibTorch 1.13 reads a torch.save'd plain dict but not the OrderedDict that
    # model.state_dict() returns: one file of each, the second for the error path.
    # The OrderedDict file only has to be refused: a smaller model (vocabulary of 1000) will do.
    small = dict(arch, vocab_size=1000, vision_layers=2)
    for name, state in (("tiny_clip_state_dict.pt", dict(model.state_dict())),
                        ("tiny_clip_ordered_state_dict.pt", make_clip(small, seed).state_dict())):
        torch.save(state, os.path.join(out_dir, name + ".tmp"))
        os.replace(os.path.join(out_dir, name + ".tmp"), os.path.join(out_dir, name))

    save_traced_cuda(model, arch, os.path.join(out_dir, "tiny_clip_traced_cuda.pt"))
    save_open_clip(model, arch, os.path.join(out_dir, "tiny_clip_open_clip"), quick_gelu=True)
    save_transformers(model, arch, os.path.join(out_dir, "tiny_clip_hf"))
    # The broken variants only have to be refused: a smaller model will do.
    bad, small_model = os.path.join(out_dir, "tiny_clip_bad"), make_clip(small, seed)
    save_transformers(small_model, small, os.path.join(bad, "hf_missing_key"),
                      drop=("vision_model.post_layernorm.weight",))
    save_open_clip(small_model, small, os.path.join(bad, "unknown_key"), quick_gelu=True,
                   extra={"visual.transformer.resblocks.1.ls_1.gamma": torch.ones(128)})
    save_open_clip(small_model, small, os.path.join(bad, "attn_pool"), quick_gelu=True,
                   extra={"visual.attn_pool.query": torch.zeros(256, 64)})
    # transformers' pytorch_model.bin: readable as a plain dict, refused as the OrderedDict
    # transformers writes.
    save_transformers(small_model, small, os.path.join(out_dir, "tiny_clip_hf_bin"), bin_as=dict)
    save_transformers(small_model, small, os.path.join(bad, "hf_ordered_bin"), bin_as=OrderedDict)

    resnet = _ResNetClip(small).eval()
    resnet_path = os.path.join(out_dir, "tiny_resnet_clip.pt")
    torch.jit.save(torch.jit.script(resnet), resnet_path + ".tmp")
    os.replace(resnet_path + ".tmp", resnet_path)

    described = dict(arch)
    described["vision_heads"] = arch["vision_width"] // 64
    described["vision_grid_size"] = arch["image_resolution"] // arch["vision_patch_size"]
    with open(os.path.join(out_dir, "tiny_clip_arch.json.tmp"), "w") as f:
        json.dump(described, f, indent=1)
    os.replace(os.path.join(out_dir, "tiny_clip_arch.json.tmp"),
               os.path.join(out_dir, "tiny_clip_arch.json"))

    # What CLIP-ES computes on CPU: clip.load(..., jit=False) rebuilds the model from the
    # archive's weights and calls model.float().
    model32 = CLIP(**arch)
    model32.load_state_dict(model.state_dict())
    model32.float().eval()
    for p in model32.parameters():
        p.requires_grad_(False)

    ref = os.path.join(out_dir, "tiny_clip_reference")
    os.makedirs(ref, exist_ok=True)
    gen = torch.Generator().manual_seed(seed + 1)
    patch = arch["vision_patch_size"]
    # 5 x 9 patches: one side smaller and one larger than the 7 x 7 grid of the weights.
    pixels = torch.randn(1, 3, 5 * patch, 9 * patch, generator=gen)
    direction = torch.randn(1, arch["embed_dim"], generator=gen)
    save_npy(ref, "pixels", pixels)
    save_npy(ref, "direction", direction)
    torch.set_num_threads(2)
    for attn_blocks in (8, 3):
        tokens, attn_mean, feature, grad_a = clip_es_vision(model32, pixels, direction,
                                                            attn_blocks)
        save_npy(ref, f"attn_mean_last{attn_blocks}", attn_mean)
    save_npy(ref, "tokens_last_block", tokens)
    save_npy(ref, "image_feature", feature)
    save_npy(ref, "grad_a", grad_a)
    h, w = pixels.shape[2] // patch, pixels.shape[3] // patch
    save_npy(ref, "pos_embedding", upsample_pos_emb(model32.visual.positional_embedding,
                                                   (h, w)).float())

    # Text: random token rows start, words, end (the largest id), zero padding.
    rows = []
    for length in (2, 5, 9, arch["context_length"]):
        words = torch.randint(1, arch["vocab_size"] - 2, (length - 2,), generator=gen)
        row = torch.zeros(arch["context_length"], dtype=torch.int64)
        row[0] = arch["vocab_size"] - 2
        row[1:length - 1] = words
        row[length - 1] = arch["vocab_size"] - 1
        rows.append(row)
    text = torch.stack(rows)
    with torch.no_grad():
        text_features = model32.encode_text(text)
    save_npy(ref, "text_tokens", text)
    save_npy(ref, "text_features", text_features)

    # GELU: another random model (seed + 2) as open_clip's LAION checkpoints have it, and what
    # CLIP-ES computes with it on the same inputs.
    gelu = make_clip(arch, seed + 2)
    save_open_clip(gelu, arch, os.path.join(out_dir, "tiny_gelu_clip"), quick_gelu=False)
    gelu32 = CLIP(**arch)
    gelu32.load_state_dict(gelu.state_dict())
    use_gelu(gelu32)
    gelu32.float().eval()
    for p in gelu32.parameters():
        p.requires_grad_(False)
    gelu_ref = os.path.join(out_dir, "tiny_gelu_reference")
    os.makedirs(gelu_ref, exist_ok=True)
    _, _, feature, _ = clip_es_vision(gelu32, pixels, direction, 8)
    save_npy(gelu_ref, "image_feature", feature)
    with torch.no_grad():
        save_npy(gelu_ref, "text_features", gelu32.encode_text(text))

    with open(stamp, "w") as f:
        f.write(f"seed {seed}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", help="write the test fixtures into this folder")
    parser.add_argument("--arch", choices=sorted(ARCHS), help="write one model of these sizes")
    parser.add_argument("--out", help="the model file to write with --arch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out_dir:
        write_fixtures(args.out_dir, args.seed)
    elif args.arch and args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_release(make_clip(ARCHS[args.arch], args.seed), args.out)
        print(f"make_tiny_clip: wrote {args.arch} with random weights (seed {args.seed}) "
              f"to {args.out}")
    else:
        parser.error("give --out-dir DIR, or --arch NAME --out FILE")


if __name__ == "__main__":
    sys.exit(main())
