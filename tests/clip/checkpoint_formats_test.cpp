// The checkpoint formats of scripts/make_tiny_clip.py's fixtures: the same random weights as
// OpenAI's scripted archive, a traced archive with CUDA-tagged storages, a torch.save'd dict,
// open_clip's safetensors + open_clip_config.json and transformers' config.json +
// model.safetensors give the same features and CAMs; GELU models compute what Python does; and
// every contradiction, missing or unknown key is an error naming it.

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "clip_test_util.h"
#include "clipes/cam/cam_config.h"
#include "clipes/clip/model.h"
#include "clipes/core/error.h"
#include "clipes/pipeline/image_cams.h"

namespace clipes::clip {
namespace {

namespace fs = std::filesystem;
using clipes::io::read_npy_tensor;
using clipes::testing::error_of;
using clipes::testing::fixture_dir;
using testing::max_abs_diff;
using testing::tiny_reference;

struct Format {
  std::string label;
  fs::path path;
  ClipLoadOptions options;
  std::string format;
};

std::vector<Format> formats() {
  const fs::path f = fixture_dir();
  ClipLoadOptions state_dict;
  state_dict.activation = "quick_gelu";
  state_dict.vision_heads = 2;
  state_dict.text_heads = 2;
  const std::string hf = "transformers CLIPModel (config.json + model.safetensors)";
  return {
      {"traced archive, storages on cuda:0",
       f / "tiny_clip_traced_cuda.pt",
       {},
       "TorchScript archive"},
      {"torch.save'd dict + options", f / "tiny_clip_state_dict.pt", state_dict, "state dict"},
      {"open_clip folder", f / "tiny_clip_open_clip", {}, "open_clip safetensors"},
      {"open_clip safetensors file",
       f / "tiny_clip_open_clip/open_clip_model.safetensors",
       {},
       "open_clip safetensors"},
      {"transformers folder", f / "tiny_clip_hf", {}, hf},
      {"transformers model.safetensors", f / "tiny_clip_hf/model.safetensors", {}, hf},
  };
}

// Everything the pipeline takes from the model on the fixture's image and prompts.
struct Outputs {
  at::Tensor image_features, attention_mean, text_features, initial_cams, refined_cams, probs;
};

Outputs run(const ClipModel& model) {
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  Outputs o;
  const ImageEncoding image = model.encode_image(pixels, 8);
  o.image_features = image.image_features;
  o.attention_mean = image.attention_mean;
  o.text_features = model.encode_text(tokens);
  // Two classes and two background prompts out of the four token rows.
  const auto cams = pipeline::compute_image_cams(
      model, pixels, l2_normalize(o.text_features), 2, static_cast<int>(pixels.size(3)),
      static_cast<int>(pixels.size(2)), cam::CamConfig{}, cam::CaaConfig{});
  o.initial_cams = cams.initial;
  o.refined_cams = cams.refined;
  o.probs = cams.probs;
  return o;
}

std::vector<std::int64_t> sizes(const ClipArchitecture& a) {
  return {a.vision_width,     a.vision_layers,     a.vision_heads,
          a.vision_mlp_width, a.vision_patch_size, a.vision_grid_size,
          a.image_resolution, a.text_width,        a.text_layers,
          a.text_heads,       a.text_mlp_width,    a.context_length,
          a.vocab_size,       a.embed_dim,         static_cast<std::int64_t>(a.activation)};
}

TEST(CheckpointFormats, SameWeightsGiveTheSameFeaturesAndCamsInEveryFormat) {
  CLIPES_REQUIRE_TINY_CLIP();
  at::set_num_threads(2);
  const ClipModel archive = ClipModel::load(testing::tiny_clip_path());
  const Outputs expected = run(archive);
  for (const Format& f : formats()) {
    SCOPED_TRACE(f.label);
    const ClipModel model = ClipModel::load(f.path, f.options);
    EXPECT_EQ(model.checkpoint().format, f.format);
    EXPECT_EQ(sizes(model.architecture()), sizes(archive.architecture()));
    const Outputs got = run(model);
    const std::pair<const char*, double> diffs[] = {
        {"image features", max_abs_diff(got.image_features, expected.image_features)},
        {"attention", max_abs_diff(got.attention_mean, expected.attention_mean)},
        {"text features", max_abs_diff(got.text_features, expected.text_features)},
        {"initial CAMs", max_abs_diff(got.initial_cams, expected.initial_cams)},
        {"refined CAMs", max_abs_diff(got.refined_cams, expected.refined_cams)},
        {"probs", max_abs_diff(got.probs, expected.probs)},
    };
    std::string line = f.label + ": max |d| vs the scripted archive:";
    for (const auto& [what, d] : diffs) {
      line += fmt::format(" {} {:g};", what, d);
      EXPECT_LE(d, 1e-6) << what;
    }
    std::cout << line << "\n";
  }
}

TEST(CheckpointFormats, DryRunSourcesSayWhereEachSizeCameFrom) {
  CLIPES_REQUIRE_TINY_CLIP();
  const ClipModel traced = ClipModel::load(fixture_dir() / "tiny_clip_traced_cuda.pt");
  // A traced archive keeps no num_heads attribute: OpenAI's rule for its own archives.
  EXPECT_EQ(traced.architecture().sources.at("vision_heads"),
            "OpenAI's build_model rule: width 128 / 64");
  EXPECT_EQ(traced.architecture().sources.at("activation"),
            "archive module visual.transformer.resblocks.0.mlp.gelu (QuickGELU)");
  const ClipModel hf = ClipModel::load(fixture_dir() / "tiny_clip_hf");
  const auto& s = hf.architecture().sources;
  EXPECT_EQ(s.at("vision_heads"), "config.json: vision_config.num_attention_heads");
  EXPECT_EQ(s.at("embed_dim"), "config.json: projection_dim");
  EXPECT_EQ(s.at("activation"), "config.json: text_config.hidden_act");
  EXPECT_EQ(s.at("vision_grid_size"), "weights: visual.positional_embedding rows");
  EXPECT_EQ(hf.checkpoint().config, fixture_dir() / "tiny_clip_hf/config.json");
  EXPECT_EQ(hf.checkpoint().weights, fixture_dir() / "tiny_clip_hf/model.safetensors");
  const ClipModel oc = ClipModel::load(fixture_dir() / "tiny_clip_open_clip");
  EXPECT_EQ(oc.architecture().sources.at("text_heads"),
            "open_clip_config.json: model_cfg.text_cfg.heads");
  EXPECT_EQ(oc.architecture().sources.at("activation"),
            "open_clip_config.json: model_cfg.quick_gelu");
}

TEST(CheckpointFormats, GeluModelMatchesPython) {
  CLIPES_REQUIRE_TINY_CLIP();
  at::set_num_threads(2);
  const ClipModel model = ClipModel::load(fixture_dir() / "tiny_gelu_clip");
  EXPECT_EQ(model.architecture().activation, Activation::kGelu);
  EXPECT_EQ(model.architecture().sources.at("activation"),
            "open_clip_config.json: model_cfg.quick_gelu (absent: open_clip's GELU)");
  const auto reference = [](const char* name) {
    return read_npy_tensor(fixture_dir() / "tiny_gelu_reference" / (std::string(name) + ".npy"));
  };
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  EXPECT_TRUE(testing::all_close(model.encode_image(pixels, 8).image_features,
                                 reference("image_feature"), 1e-5));
  EXPECT_TRUE(testing::all_close(model.encode_text(tokens), reference("text_features"), 1e-5));
  // QuickGELU on the same weights is measurably different: the test can tell them apart.
  ClipLoadOptions quick;
  quick.activation = "quick_gelu";
  EXPECT_EQ(error_of([&] { ClipModel::load(fixture_dir() / "tiny_gelu_clip", quick); }),
            "CLIP model file " +
                (fixture_dir() / "tiny_gelu_clip/open_clip_model.safetensors").string() +
                " (open_clip safetensors): open_clip_config.json: model_cfg.quick_gelu (absent: "
                "open_clip's GELU) says activation gelu, but model_act (--model-act) says "
                "quick_gelu");
}

// A copy of the transformers fixture whose config.json `edit` changes.
fs::path edited_transformers(const std::string& name,
                             const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = clipes::testing::make_temp_dir(name);
  fs::copy_file(fixture_dir() / "tiny_clip_hf/model.safetensors", dir / "model.safetensors");
  std::ifstream in(fixture_dir() / "tiny_clip_hf/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  edit(config);
  std::ofstream(dir / "config.json") << config.dump(1);
  return dir;
}

TEST(CheckpointFormats, ConfigContradictingTheWeightsIsAnErrorNamingTheField) {
  CLIPES_REQUIRE_TINY_CLIP();
  const auto error = [](const fs::path& dir) { return error_of([&] { ClipModel::load(dir); }); };
  const std::string hf = " (transformers CLIPModel (config.json + model.safetensors)): ";
  fs::path dir = edited_transformers(
      "hf-heads", [](auto& c) { c["vision_config"]["num_attention_heads"] = 3; });
  EXPECT_EQ(error(dir), "CLIP model file " + (dir / "model.safetensors").string() + hf +
                            "config.json: vision_config.num_attention_heads gives "
                            "visual.transformer.resblocks.0.attn 3 heads, which do not divide "
                            "its width 128");
  dir = edited_transformers("hf-layers",
                            [](auto& c) { c["vision_config"]["num_hidden_layers"] = 12; });
  EXPECT_EQ(error(dir), "CLIP model file " + (dir / "model.safetensors").string() + hf +
                            "config.json: vision_config.num_hidden_layers says vision_layers "
                            "12, but the weights have 10 (visual.transformer.resblocks.* count)");
  dir = edited_transformers("hf-act", [](auto& c) { c["vision_config"]["hidden_act"] = "gelu"; });
  EXPECT_EQ(error(dir), "transformers config " + (dir / "config.json").string() +
                            ": config.json: vision_config.hidden_act is \"gelu\" but "
                            "config.json: text_config.hidden_act is \"quick_gelu\"; clipes runs "
                            "one activation in both towers");
  dir = edited_transformers("hf-relu", [](auto& c) { c["text_config"]["hidden_act"] = "relu"; });
  EXPECT_EQ(error(dir), "transformers config " + (dir / "config.json").string() +
                            ": text_config.hidden_act is \"relu\"; clipes runs \"quick_gelu\" or "
                            "\"gelu\"");
  dir = edited_transformers("hf-siglip", [](auto& c) { c["model_type"] = "siglip"; });
  EXPECT_NE(error(dir).find("model_type is \"siglip\"; clipes reads transformers' CLIPModel"),
            std::string::npos);
  dir = edited_transformers("hf-type", [](auto& c) { c["projection_dim"] = "64"; });
  EXPECT_EQ(error(dir), "config.json: projection_dim must be a positive integer, got \"64\"");
  // Flags may not contradict the checkpoint either: the archive's QuickGELU modules.
  ClipLoadOptions gelu;
  gelu.activation = "gelu";
  const fs::path traced = fixture_dir() / "tiny_clip_traced_cuda.pt";
  EXPECT_EQ(error_of([&] { ClipModel::load(traced, gelu); }),
            "CLIP model file " + traced.string() +
                " (TorchScript archive): archive module visual.transformer.resblocks.0.mlp.gelu "
                "(QuickGELU) says activation quick_gelu, but model_act (--model-act) says gelu");
  ClipLoadOptions heads;
  heads.vision_heads = 4;
  heads.text_heads = 2;
  EXPECT_EQ(error_of([&] { ClipModel::load(fixture_dir() / "tiny_clip_hf", heads); }),
            "CLIP model file " + (fixture_dir() / "tiny_clip_hf/model.safetensors").string() + hf +
                "config.json: vision_config.num_attention_heads says vision_heads 2, but "
                "model_heads (--model-heads) says 4");
}

TEST(CheckpointFormats, MissingUnknownAndUnsupportedKeysAreNamed) {
  CLIPES_REQUIRE_TINY_CLIP();
  const fs::path bad = fixture_dir() / "tiny_clip_bad";
  EXPECT_EQ(error_of([&] { ClipModel::load(bad / "hf_missing_key"); }),
            "CLIP model file " + (bad / "hf_missing_key/model.safetensors").string() +
                " (transformers CLIPModel (config.json + model.safetensors)): not a CLIP ViT: "
                "missing vision_model.post_layernorm.weight (visual.ln_post.weight)");
  const std::string unknown = error_of([&] { ClipModel::load(bad / "unknown_key"); });
  EXPECT_EQ(unknown.rfind("CLIP model file " +
                              (bad / "unknown_key/open_clip_model.safetensors").string() +
                              " (open_clip safetensors): unexpected parameter "
                              "visual.transformer.resblocks.1.ls_1.gamma: not part of a CLIP "
                              "ViT as clipes runs it",
                          0),
            0u)
      << unknown;
  const std::string pooler = error_of([&] { ClipModel::load(bad / "attn_pool"); });
  EXPECT_NE(pooler.find("it has an attentional pooler (open_clip attentional_pool, CoCa) "
                        "(visual.attn_pool.*), which clipes does not support"),
            std::string::npos)
      << pooler;
}

TEST(CheckpointFormats, TransformersPytorchModelBinLoadsWhenLibTorchCanReadIt) {
  CLIPES_REQUIRE_TINY_CLIP();
  const ClipModel model = ClipModel::load(fixture_dir() / "tiny_clip_hf_bin");
  EXPECT_EQ(model.checkpoint().format, "transformers CLIPModel (config.json + pytorch_model.bin)");
  EXPECT_EQ(model.architecture().vocab_size, 1000);
  EXPECT_EQ(model.architecture().vision_layers, 2);
  // transformers itself saves an OrderedDict: refused with the line that converts it.
  const fs::path bin = fixture_dir() / "tiny_clip_bad/hf_ordered_bin/pytorch_model.bin";
  const std::string message = error_of([&] { ClipModel::load(bin.parent_path()); });
  EXPECT_NE(message.find("CLIP model file " + bin.string() +
                         " is a torch.save'd collections.OrderedDict"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("st.save_file({k: v.contiguous().clone() for k, v in sd.items()}, '" +
                         (bin.parent_path() / "model.safetensors").string() + "')\""),
            std::string::npos)
      << message;
}

TEST(CheckpointFormats, WhatIsNotACheckpointIsExplained) {
  CLIPES_REQUIRE_TINY_CLIP();
  // transformers' weights without their config.json.
  const fs::path alone = clipes::testing::make_temp_dir("hf-alone");
  fs::copy_file(fixture_dir() / "tiny_clip_hf/model.safetensors", alone / "model.safetensors");
  EXPECT_NE(error_of([&] { ClipModel::load(alone / "model.safetensors"); })
                .find("has transformers' CLIPModel names (vision_model.*, text_model.*) but "
                      "there is no " +
                      (alone / "config.json").string() + " beside it"),
            std::string::npos);
  const fs::path empty = clipes::testing::make_temp_dir("empty-model-folder");
  EXPECT_EQ(error_of([&] { ClipModel::load(empty); }),
            "CLIP model folder " + empty.string() +
                " holds none of the checkpoints clipes reads: config.json with "
                "model.safetensors or pytorch_model.bin (transformers), "
                "open_clip_model.safetensors or open_clip_pytorch_model.bin (open_clip)");
  // open_clip safetensors with no config beside it: the activation is asked for.
  const fs::path bare = clipes::testing::make_temp_dir("open-clip-bare");
  fs::copy_file(fixture_dir() / "tiny_clip_open_clip/open_clip_model.safetensors",
                bare / "weights.safetensors");
  const std::string asked = error_of([&] { ClipModel::load(bare / "weights.safetensors"); });
  EXPECT_NE(asked.find("(safetensors (OpenAI / open_clip names)): the checkpoint does not say "
                       "how many heads"),
            std::string::npos)
      << asked;
  ClipLoadOptions named;
  named.model_config = (fixture_dir() / "tiny_clip_open_clip/open_clip_config.json").string();
  EXPECT_EQ(ClipModel::load(bare / "weights.safetensors", named).architecture().text_heads, 2);
  // torch.save's format before PyTorch 1.6: refused with the conversion line.
  const fs::path legacy = bare / "legacy.pt";
  std::ofstream(legacy, std::ios::binary) << std::string("\x80\x02\x8a\x0a", 4) << "pickle";
  const std::string message = error_of([&] { ClipModel::load(legacy); });
  EXPECT_NE(message.find("a torch.save file in the format before PyTorch 1.6"), std::string::npos)
      << message;
  EXPECT_NE(message.find("python3 -c \"import torch, safetensors.torch as st; sd = torch.load('" +
                         legacy.string() + "', map_location='cpu')"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("'" + (bare / "legacy.safetensors").string() + "')\""), std::string::npos)
      << message;
}

}  // namespace
}  // namespace clipes::clip
