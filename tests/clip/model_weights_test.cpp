// Assembling CLIP weights from named tensors (internal API): sizes inferred as OpenAI's
// build_model does, and an error naming the file and the culprit for every kind of bad file.

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "clip/clip_weights.h"
#include "clipes/core/error.h"
#include "support/test_support.h"

namespace clipes::clip::detail {
namespace {

using clipes::testing::error_of;

// A zero tensor of `shape` without the memory (the assembler only looks at shapes and dtypes).
at::Tensor fake(std::vector<std::int64_t> shape, at::ScalarType dtype = at::kFloat) {
  return at::zeros({}, dtype).expand(shape);
}

// The names and shapes of a CLIP ViT with the given sizes, as in OpenAI's state dicts.
NamedTensors synthetic_clip(std::int64_t width, std::int64_t layers, std::int64_t patch,
                            std::int64_t grid, std::int64_t text_width = 64,
                            std::int64_t text_layers = 3, std::int64_t embed = 32,
                            std::int64_t vocab = 100) {
  NamedTensors n;
  n.info.format = "state dict";
  n.openai_head_rule = true;  // as for OpenAI's archives: heads = width / 64
  n.activation = Declared{static_cast<std::int64_t>(Activation::kQuickGelu), "test"};
  auto& t = n.tensors;
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
  t["token_embedding.weight"] = fake({vocab, text_width});
  t["positional_embedding"] = fake({77, text_width});
  for (std::int64_t i = 0; i < text_layers; ++i) {
    add_block("transformer.resblocks." + std::to_string(i) + ".", text_width);
  }
  t["ln_final.weight"] = fake({text_width});
  t["ln_final.bias"] = fake({text_width});
  t["text_projection"] = fake({text_width, embed}, at::kHalf);
  t["logit_scale"] = at::full({}, 4.6052f);
  t["input_resolution"] = at::full({}, patch * grid, at::kLong);  // release buffers: ignored
  t["context_length"] = at::full({}, 77, at::kLong);
  t["vocab_size"] = at::full({}, vocab, at::kLong);
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

TEST(ClipWeights, OpenClipModelConfigsGiveTheSizesOfEveryVit) {
  struct Case {
    const char* config;
    std::int64_t width, layers, patch, grid, text_width, text_layers, embed;
    std::int64_t heads, text_heads;
    Activation activation;
    const char* name;
  };
  for (const Case& c : {
           Case{"ViT-B-32-quickgelu", 768, 12, 32, 7, 512, 12, 512, 12, 8,
                Activation::kQuickGelu, "ViT-B/32"},
           Case{"ViT-B-16", 768, 12, 16, 14, 512, 12, 512, 12, 8, Activation::kGelu, "ViT-B/16"},
           Case{"ViT-L-14", 1024, 24, 14, 16, 768, 12, 768, 16, 12, Activation::kGelu,
                "ViT-L/14"},
           Case{"ViT-L-14-336-quickgelu", 1024, 24, 14, 24, 768, 12, 768, 16, 12,
                Activation::kQuickGelu, "ViT-L/14@336px"},
           // open_clip's ViT-H/14: head width 80, so 16 heads of 80, MLP 5120.
           Case{"ViT-H-14", 1280, 32, 14, 16, 1024, 24, 1024, 16, 16, Activation::kGelu,
                "custom CLIP ViT"},
       }) {
    NamedTensors named = synthetic_clip(c.width, c.layers, c.patch, c.grid, c.text_width,
                                        c.text_layers, c.embed, 49408);
    named.openai_head_rule = false;
    named.activation = Declared{};
    apply_open_clip_model_config(c.config, &named);
    const ClipArchitecture a = assemble_clip_weights(named, "m.safetensors").arch;
    EXPECT_EQ(a.vision_heads, c.heads) << c.config;
    EXPECT_EQ(a.text_heads, c.text_heads) << c.config;
    EXPECT_EQ(a.activation, c.activation) << c.config;
    EXPECT_EQ(a.vision_mlp_width, 4 * c.width) << c.config;
    EXPECT_EQ(a.image_resolution, c.patch * c.grid) << c.config;
    EXPECT_EQ(a.describe().rfind(std::string("architecture: ") + c.name + "\n", 0), 0u)
        << a.describe();
    EXPECT_EQ(a.sources.at("vision_heads"),
              fmt::format("open_clip model config {}: vision_cfg.width / {}", c.config,
                          c.width == 1280 ? "vision_cfg.head_width"
                                          : "64 (head_width absent: open_clip's default)"));
  }
  // The config must fit the weights: ViT-B-16's sizes on ViT-B/32 weights.
  NamedTensors b32 = synthetic_clip(768, 12, 32, 7, 512, 12, 512, 49408);
  b32.activation = Declared{};
  apply_open_clip_model_config("ViT-B-16", &b32);
  EXPECT_EQ(assembly_error(b32),
            "CLIP model file m.pt (state dict): open_clip model config ViT-B-16: "
            "vision_cfg.patch_size says vision_patch_size 16, but the weights have 32 "
            "(visual.conv1.weight kernel)");
  EXPECT_NE(error_of([&] { apply_open_clip_model_config("ViT-X-99", &b32); })
                .find("model config \"ViT-X-99\" is neither an open_clip model name clipes "
                      "knows (ViT-B-32, ViT-B-32-quickgelu, ViT-B-16,"),
            std::string::npos);
}

TEST(ClipWeights, HeadCountOfTheArchiveWinsOverTheWidthRule) {
  NamedTensors named = synthetic_clip(128, 2, 16, 2);
  ClipArchitecture a = assemble_clip_weights(named, "m.pt").arch;
  EXPECT_EQ(a.vision_heads, 2);
  EXPECT_EQ(a.sources.at("vision_heads"), "OpenAI's build_model rule: width 128 / 64");
  named.num_heads["visual.transformer.resblocks.0.attn"] = 4;
  a = assemble_clip_weights(named, "m.pt").arch;
  EXPECT_EQ(a.vision_heads, 4);
  EXPECT_EQ(a.sources.at("vision_heads"),
            "archive attribute visual.transformer.resblocks.0.attn.num_heads");
  named.num_heads["visual.transformer.resblocks.0.attn"] = 3;
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): archive attribute "
            "visual.transformer.resblocks.0.attn.num_heads gives "
            "visual.transformer.resblocks.0.attn 3 heads, which do not divide its width 128");
  NamedTensors odd = synthetic_clip(96, 2, 16, 2);
  EXPECT_EQ(assembly_error(odd),
            "CLIP model file m.pt (state dict): the checkpoint does not say how many heads "
            "visual.transformer.resblocks.0.attn has (width 96): give the head counts "
            "(--model-heads VISION,TEXT, or model_heads in the config) or the open_clip model "
            "config (--model-config NAME|FILE)");
}

TEST(ClipWeights, HeadsAndActivationAreNeverGuessed) {
  NamedTensors named = synthetic_clip(128, 2, 16, 2);
  named.openai_head_rule = false;  // a state dict: nothing says
  EXPECT_NE(assembly_error(named).find("the checkpoint does not say how many heads "
                                       "visual.transformer.resblocks.0.attn has (width 128)"),
            std::string::npos);
  named.declared["vision_heads"] = Declared{4, "config.json: vision_config.num_attention_heads"};
  EXPECT_NE(assembly_error(named).find("how many heads transformer.resblocks.0.attn has"),
            std::string::npos);
  named.declared["text_heads"] = Declared{2, "model_heads (--model-heads)"};
  const ClipArchitecture a = assemble_clip_weights(named, "m.pt").arch;
  EXPECT_EQ(a.vision_heads, 4);
  EXPECT_EQ(a.text_heads, 2);
  EXPECT_EQ(a.sources.at("text_heads"), "model_heads (--model-heads)");
  // A declared count contradicting the archive's attribute.
  named.num_heads["visual.transformer.resblocks.0.attn"] = 2;
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): config.json: "
            "vision_config.num_attention_heads says vision_heads 4, but the archive's "
            "visual.transformer.resblocks.0.attn.num_heads is 2");
  named.num_heads.clear();
  named.activation = Declared{};
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): the checkpoint does not say which activation "
            "its MLPs use: give it (--model-act quick_gelu|gelu, or model_act in the config; "
            "OpenAI's CLIP uses quick_gelu, open_clip's LAION models gelu) or the open_clip "
            "model config (--model-config NAME|FILE)");
}

TEST(ClipWeights, DeclaredSizesMustMatchTheWeights) {
  NamedTensors named = synthetic_clip(128, 2, 16, 2);
  named.declared["vision_layers"] = Declared{3, "config.json: vision_config.num_hidden_layers"};
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): config.json: vision_config.num_hidden_layers "
            "says vision_layers 3, but the weights have 2 (visual.transformer.resblocks.* count)");
  named.declared["vision_layers"] = Declared{2, "config.json: vision_config.num_hidden_layers"};
  named.declared["image_resolution"] = Declared{224, "config.json: vision_config.image_size"};
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): config.json: vision_config.image_size says "
            "image_resolution 224, but the weights have 32 (patch size × "
            "visual.positional_embedding grid)");
  named.declared.erase("image_resolution");
  const ClipArchitecture a = assemble_clip_weights(named, "m.pt").arch;
  EXPECT_EQ(a.sources.at("vision_layers"), "config.json: vision_config.num_hidden_layers");
  EXPECT_EQ(a.sources.at("vision_width"), "weights: visual.conv1.weight rows");
  const std::string text = a.describe();
  EXPECT_NE(text.find("vision_layers: 2 (config.json: vision_config.num_hidden_layers)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("activation: quick_gelu (test)\n"), std::string::npos) << text;
}

TEST(ClipWeights, UnknownParametersAndUnsupportedHeadsAreRefused) {
  NamedTensors extra = synthetic_clip(64, 2, 16, 2);
  extra.tensors["visual.transformer.resblocks.0.ls_1.gamma"] = fake({64});
  EXPECT_EQ(assembly_error(extra).rfind(
                "CLIP model file m.pt (state dict): unexpected parameter "
                "visual.transformer.resblocks.0.ls_1.gamma: not part of a CLIP ViT as clipes "
                "runs it (clipes runs CLIP ViTs",
                0),
            0u)
      << assembly_error(extra);
  for (const auto& [name, what] : std::vector<std::pair<std::string, std::string>>{
           {"visual.attn_pool.query", "an attentional pooler"},
           {"text_decoder.resblocks.0.attn.in_proj_weight", "a CoCa text decoder"},
           {"visual.trunk.attn_pool.latent", "SigLIP's MAP head"},
           {"logit_bias", "a SigLIP logit bias"}}) {
    NamedTensors head = synthetic_clip(64, 2, 16, 2);
    head.tensors[name] = fake({4});
    const std::string message = assembly_error(head);
    EXPECT_NE(message.find(what), std::string::npos) << message;
    EXPECT_NE(message.find("which clipes does not support: clipes runs CLIP ViTs with OpenAI's "
                           "blocks"),
              std::string::npos)
        << message;
  }
}

TEST(ClipWeights, MissingParametersAreListed) {
  NamedTensors named = synthetic_clip(64, 2, 16, 2);
  named.tensors.erase("visual.proj");
  named.tensors.erase("ln_final.bias");
  EXPECT_EQ(assembly_error(named),
            "CLIP model file m.pt (state dict): not a CLIP ViT: missing visual.proj, "
            "ln_final.bias");
  NamedTensors text_only;
  text_only.info.format = "state dict";
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
