// Assembling CLIP weights from named tensors (internal API): sizes inferred as OpenAI's
// build_model does, and an error naming the file and the culprit for every kind of bad file.

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "clip/clip_weights.h"
#include "clipes/core/error.h"

namespace clipes::clip::detail {
namespace {

// A zero tensor of `shape` without the memory (the assembler only looks at shapes and dtypes).
at::Tensor fake(std::vector<std::int64_t> shape, at::ScalarType dtype = at::kFloat) {
  return at::zeros({}, dtype).expand(shape);
}

// The names and shapes of a CLIP ViT with the given sizes, as in OpenAI's state dicts.
NamedTensors synthetic_clip(std::int64_t width, std::int64_t layers, std::int64_t patch,
                            std::int64_t grid) {
  NamedTensors n;
  n.format = "state dict";
  auto& t = n.tensors;
  const std::int64_t text_width = 64;
  const std::int64_t embed = 32;
  const auto add_block = [&](const std::string& p, std::int64_t w) {
    t[p + "ln_1.weight"] = fake({w});
    t[p + "ln_1.bias"] = fake({w});
    t[p + "attn.in_proj_weight"] = fake({3 * w, w}, at::kHalf);
    t[p + "attn.in_proj_bias"] = fake({3 * w}, at::kHalf);
    t[p + "attn.out_proj.weight"] = fake({w, w}, at::kHalf);
    t[p + "attn.out_proj.bias"] = fake({w}, at::kHalf);
    t[p + "ln_2.weight"] = fake({w});
    t[p + "ln_2.bias"] = fake({w});
    t[p + "mlp.c_fc.weight"] = fake({4 * w, w}, at::kHalf);
    t[p + "mlp.c_fc.bias"] = fake({4 * w}, at::kHalf);
    t[p + "mlp.c_proj.weight"] = fake({w, 4 * w}, at::kHalf);
    t[p + "mlp.c_proj.bias"] = fake({w}, at::kHalf);
  };
  t["visual.conv1.weight"] = fake({width, 3, patch, patch}, at::kHalf);
  t["visual.class_embedding"] = fake({width});
  t["visual.positional_embedding"] = fake({grid * grid + 1, width});
  t["visual.ln_pre.weight"] = fake({width});
  t["visual.ln_pre.bias"] = fake({width});
  for (std::int64_t i = 0; i < layers; ++i) {
    add_block("visual.transformer.resblocks." + std::to_string(i) + ".", width);
  }
  t["visual.ln_post.weight"] = fake({width});
  t["visual.ln_post.bias"] = fake({width});
  t["visual.proj"] = fake({width, embed}, at::kHalf);
  t["token_embedding.weight"] = fake({100, text_width});
  t["positional_embedding"] = fake({77, text_width});
  for (std::int64_t i = 0; i < 3; ++i) {
    add_block("transformer.resblocks." + std::to_string(i) + ".", text_width);
  }
  t["ln_final.weight"] = fake({text_width});
  t["ln_final.bias"] = fake({text_width});
  t["text_projection"] = fake({text_width, embed}, at::kHalf);
  t["logit_scale"] = at::full({}, 4.6052f);
  t["input_resolution"] = at::full({}, patch * grid, at::kLong);  // release buffers: ignored
  t["context_length"] = at::full({}, 77, at::kLong);
  t["vocab_size"] = at::full({}, 100, at::kLong);
  return n;
}

std::string assembly_error(const NamedTensors& named) {
  try {
    assemble_clip_weights(named, "m.pt");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ClipWeights, InfersTheSizesOfTheReleaseModels) {
  struct Case {
    std::int64_t width, layers, patch, grid, heads;
  };
  // ViT-B/16, ViT-B/32, ViT-L/14 (vision sizes; heads = width / 64 as OpenAI's build_model).
  for (const Case c :
       {Case{768, 12, 16, 14, 12}, Case{768, 12, 32, 7, 12}, Case{1024, 24, 14, 16, 16}}) {
    const ClipWeights w =
        assemble_clip_weights(synthetic_clip(c.width, c.layers, c.patch, c.grid), "m.pt");
    EXPECT_EQ(w.arch.vision_width, c.width);
    EXPECT_EQ(w.arch.vision_layers, c.layers);
    EXPECT_EQ(w.arch.vision_heads, c.heads);
    EXPECT_EQ(w.arch.vision_patch_size, c.patch);
    EXPECT_EQ(w.arch.vision_grid_size, c.grid);
    EXPECT_EQ(w.arch.image_resolution, 224);
    EXPECT_EQ(w.arch.vision_mlp_width, 4 * c.width);
    EXPECT_EQ(w.arch.text_width, 64);
    EXPECT_EQ(w.arch.text_layers, 3);
    EXPECT_EQ(w.arch.text_heads, 1);
    EXPECT_EQ(w.arch.context_length, 77);
    EXPECT_EQ(w.arch.vocab_size, 100);
    EXPECT_EQ(w.arch.embed_dim, 32);
    EXPECT_EQ(static_cast<std::int64_t>(w.vision_blocks.size()), c.layers);
  }
  const auto b16 = assemble_clip_weights(synthetic_clip(768, 12, 16, 14), "m.pt");
  EXPECT_EQ(b16.arch.describe().substr(0, 24), "architecture: ViT-B/16\nv");
  const auto b32 = assemble_clip_weights(synthetic_clip(768, 12, 32, 7), "m.pt");
  EXPECT_EQ(b32.arch.describe().substr(0, 23), "architecture: ViT-B/32\n");
  const auto l14 = assemble_clip_weights(synthetic_clip(1024, 24, 14, 16), "m.pt");
  EXPECT_EQ(l14.arch.describe().substr(0, 23), "architecture: ViT-L/14\n");
}

TEST(ClipWeights, HeadCountOfTheArchiveWinsOverTheWidthRule) {
  NamedTensors named = synthetic_clip(128, 2, 16, 2);
  EXPECT_EQ(assemble_clip_weights(named, "m.pt").arch.vision_heads, 2);
  named.num_heads["visual.transformer.resblocks.0.attn"] = 4;
  EXPECT_EQ(assemble_clip_weights(named, "m.pt").arch.vision_heads, 4);
  named.num_heads["visual.transformer.resblocks.0.attn"] = 3;
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): visual.transformer.resblocks.0.attn has 3 "
            "heads, which do not divide its width 128");
  NamedTensors odd = synthetic_clip(96, 2, 16, 2);
  EXPECT_EQ(assembly_error(odd),
            "CLIP model file m.pt (state dict): cannot tell the head count of "
            "visual.transformer.resblocks.0.attn: width 96 is not a multiple of 64 and the file "
            "does not say");
}

TEST(ClipWeights, MissingParametersAreListed) {
  NamedTensors named = synthetic_clip(64, 2, 16, 2);
  named.tensors.erase("visual.proj");
  named.tensors.erase("ln_final.bias");
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): not a CLIP ViT: missing visual.proj, "
            "ln_final.bias");
  NamedTensors text_only;
  text_only.format = "state dict";
  text_only.tensors["token_embedding.weight"] = fake({4, 4});
  EXPECT_EQ(assembly_error(text_only),
            "CLIP model file m.pt (state dict): not a CLIP model: it has no visual.* parameters "
            "(1 tensors, e.g. token_embedding.weight)");
}

TEST(ClipWeights, BlockParametersAreCheckedOneByOne) {
  NamedTensors gap = synthetic_clip(64, 3, 16, 2);
  for (const char* s :
       {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
        "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
        "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}) {
    gap.tensors.erase(std::string("visual.transformer.resblocks.1.") + s);
  }
  EXPECT_EQ(assembly_error(gap),
            "CLIP model file m.pt (state dict): visual.transformer.resblocks.* blocks are "
            "numbered up to 2 but only 2 are present");

  NamedTensors partial = synthetic_clip(64, 2, 16, 2);
  partial.tensors.erase("transformer.resblocks.2.mlp.c_proj.bias");
  EXPECT_EQ(assembly_error(partial),
            "CLIP model file m.pt (state dict): missing transformer.resblocks.2.mlp.c_proj.bias");

  NamedTensors misshapen = synthetic_clip(64, 2, 16, 2);
  misshapen.tensors["visual.transformer.resblocks.1.attn.in_proj_weight"] = fake({64, 64});
  EXPECT_EQ(assembly_error(misshapen),
            "CLIP model file m.pt (state dict): visual.transformer.resblocks.1.attn."
            "in_proj_weight has shape [64, 64], expected [192, 64]");

  NamedTensors integer = synthetic_clip(64, 2, 16, 2);
  integer.tensors["visual.ln_post.bias"] = at::zeros({64}, at::kLong);
  EXPECT_EQ(assembly_error(integer),
            "CLIP model file m.pt (state dict): visual.ln_post.bias has dtype Long, expected a "
            "floating-point type");
}

TEST(ClipWeights, GridMustBeSquare) {
  NamedTensors named = synthetic_clip(64, 2, 16, 3);
  named.tensors["visual.positional_embedding"] = fake({12, 64});
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): visual.positional_embedding has 12 rows, "
            "expected grid² + 1 for a square patch grid");
}

TEST(ClipWeights, PlacedWeightsAreFrozenAndInTheAskedPrecision) {
  NamedTensors named = synthetic_clip(64, 2, 16, 2);
  for (auto& [name, t] : named.tensors) t.set_requires_grad(at::isFloatingType(t.scalar_type()));
  const ClipWeights stored = assemble_clip_weights(named, "m.pt");
  const ClipWeights f32 = place_clip_weights(stored, c10::Device(c10::kCPU), false);
  const ClipWeights f16 = place_clip_weights(stored, c10::Device(c10::kCPU), true);
  const auto check_block = [](const BlockWeights& b, at::ScalarType linear) {
    for (const at::Tensor* t :
         {&b.in_proj_weight, &b.in_proj_bias, &b.out_proj_weight, &b.out_proj_bias, &b.c_fc_weight,
          &b.c_fc_bias, &b.c_proj_weight, &b.c_proj_bias}) {
      EXPECT_EQ(t->scalar_type(), linear);
      EXPECT_FALSE(t->requires_grad());
      EXPECT_TRUE(t->is_contiguous());
    }
    for (const at::Tensor* t : {&b.ln_1_weight, &b.ln_1_bias, &b.ln_2_weight, &b.ln_2_bias}) {
      EXPECT_EQ(t->scalar_type(), at::kFloat);
      EXPECT_FALSE(t->requires_grad());
    }
  };
  for (const auto& b : f32.vision_blocks) check_block(b, at::kFloat);
  for (const auto& b : f32.text_blocks) check_block(b, at::kFloat);
  for (const auto& b : f16.vision_blocks) check_block(b, at::kHalf);
  EXPECT_EQ(f32.conv1_weight.scalar_type(), at::kFloat);
  EXPECT_EQ(f16.conv1_weight.scalar_type(), at::kHalf);
  EXPECT_EQ(f16.visual_proj.scalar_type(), at::kHalf);
  EXPECT_EQ(f16.text_projection.scalar_type(), at::kHalf);
  EXPECT_EQ(f16.vision_positional_embedding.scalar_type(), at::kFloat);
  EXPECT_EQ(f16.token_embedding.scalar_type(), at::kFloat);
  for (const at::Tensor* t : {&f32.conv1_weight, &f32.class_embedding, &f32.visual_proj,
                              &f32.token_embedding, &f32.text_projection, &f32.logit_scale}) {
    EXPECT_FALSE(t->requires_grad());
  }
}

}  // namespace
}  // namespace clipes::clip::detail
