// The CLIP ViT on the tiny random fixture of scripts/make_tiny_clip.py: sizes read off the
// weights, every vision piece and the text encoder against what Python (torch 1.13's
// nn.MultiheadAttention, CLIP-ES's forward) computed for the same weights, the batched GradCAM
// gradient against one backward per copy, and the loading errors.

#include "clipes/clip/model.h"

#include <ATen/ATen.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "clip_test_util.h"
#include "clipes/core/error.h"
#include "clipes/io/files.h"

namespace clipes::clip {
namespace {

using clipes::io::read_npy_tensor;
using testing::all_close;
using testing::tiny_clip_path;
using testing::tiny_reference;

class TinyClip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::filesystem::exists(clipes::testing::fixture_dir() / "tiny_clip.stamp")) {
      model_ = std::make_unique<ClipModel>(ClipModel::load(tiny_clip_path()));
    }
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override { at::set_num_threads(2); }

  static const ClipModel& model() { return *model_; }
  static std::unique_ptr<ClipModel> model_;
};
std::unique_ptr<ClipModel> TinyClip::model_;

TEST_F(TinyClip, InfersEverySizeFromTheWeights) {
  CLIPES_REQUIRE_TINY_CLIP();
  std::ifstream in(clipes::testing::fixture_dir() / "tiny_clip_arch.json");
  const auto built = nlohmann::json::parse(in);
  const ClipArchitecture& a = model().architecture();
  EXPECT_EQ(a.vision_width, built.at("vision_width").get<std::int64_t>());
  EXPECT_EQ(a.vision_layers, built.at("vision_layers").get<std::int64_t>());
  EXPECT_EQ(a.vision_heads, built.at("vision_heads").get<std::int64_t>());
  EXPECT_EQ(a.vision_patch_size, built.at("vision_patch_size").get<std::int64_t>());
  EXPECT_EQ(a.vision_grid_size, built.at("vision_grid_size").get<std::int64_t>());
  EXPECT_EQ(a.image_resolution, built.at("image_resolution").get<std::int64_t>());
  EXPECT_EQ(a.vision_mlp_width, 4 * a.vision_width);
  EXPECT_EQ(a.text_width, built.at("transformer_width").get<std::int64_t>());
  EXPECT_EQ(a.text_layers, built.at("transformer_layers").get<std::int64_t>());
  EXPECT_EQ(a.text_heads, built.at("transformer_heads").get<std::int64_t>());
  EXPECT_EQ(a.text_mlp_width, 4 * a.text_width);
  EXPECT_EQ(a.context_length, built.at("context_length").get<std::int64_t>());
  EXPECT_EQ(a.vocab_size, built.at("vocab_size").get<std::int64_t>());
  EXPECT_EQ(a.embed_dim, built.at("embed_dim").get<std::int64_t>());
  EXPECT_EQ(model().device(), c10::Device(c10::kCPU));
  EXPECT_EQ(model().dtype(), at::kFloat);

  const std::string text = a.describe();
  EXPECT_NE(text.find("architecture: custom CLIP ViT\n"), std::string::npos) << text;
  EXPECT_NE(text.find("vision_layers: 10 (weights: visual.transformer.resblocks.* count)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("embed_dim: 64 (weights: text_projection columns)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vision_heads: 2 (archive attribute "
                      "visual.transformer.resblocks.0.attn.num_heads)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("activation: quick_gelu (archive module "
                      "visual.transformer.resblocks.0.mlp.gelu (QuickGELU))\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 16) << text;
  EXPECT_EQ(model().checkpoint().format, "TorchScript archive");
  EXPECT_EQ(model().checkpoint().weights, tiny_clip_path());
}

TEST_F(TinyClip, LogitScaleIsExpOfTheStoredValue) {
  CLIPES_REQUIRE_TINY_CLIP();
  EXPECT_NEAR(model().logit_scale().item<double>(), 100.0, 1e-3);
  EXPECT_EQ(model().logit_scale().dim(), 0);
}

TEST_F(TinyClip, PositionalEmbeddingMatchesPythonInterpolation) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor expected = read_npy_tensor(tiny_reference("pos_embedding"));
  // The same bits, or one float16 step (2^-12 at 0.25..0.5) where LibTorch's bicubic rounds
  // differently (2.x).
  EXPECT_TRUE(all_close(model().positional_embedding(5, 9), expected,
                        clipes::testing::parity_bound(0.0, 0.0, 2.5e-4)));
  // Every value went through float16 (spec §2 quirk), the class row included.
  const at::Tensor pos = model().positional_embedding(5, 9);
  EXPECT_TRUE(at::equal(pos, pos.to(at::kHalf).to(at::kFloat)));
  // At the weights' own grid the interpolation is the identity (up to the float16 rounding).
  const std::int64_t grid = model().architecture().vision_grid_size;
  EXPECT_EQ(model().positional_embedding(grid, grid).size(0), grid * grid + 1);
}

TEST_F(TinyClip, VisionTowerMatchesPython) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = model().embed_image(pixels);
  EXPECT_EQ(tokens.sizes(), (std::vector<std::int64_t>{1, 46, 128}));

  const VisionTrunkOutput trunk = model().run_trunk(tokens, 8);
  EXPECT_EQ(trunk.attention.size(), 7u);
  EXPECT_TRUE(all_close(trunk.tokens, read_npy_tensor(tiny_reference("tokens_last_block")),
                        clipes::testing::parity_bound(1e-5, 1e-5, 5e-4)));

  const LastBlockOutput last =
      model().last_block_forward(trunk.tokens, model().last_block_norm(trunk.tokens));
  EXPECT_TRUE(
      all_close(last.image_features, read_npy_tensor(tiny_reference("image_feature")), 1e-5));
  EXPECT_TRUE(all_close(mean_attention(trunk, last.attention),
                        read_npy_tensor(tiny_reference("attn_mean_last8")), 1e-6));

  const VisionTrunkOutput trunk3 = model().run_trunk(tokens, 3);
  EXPECT_EQ(trunk3.attention.size(), 2u);
  EXPECT_TRUE(all_close(mean_attention(trunk3, last.attention),
                        read_npy_tensor(tiny_reference("attn_mean_last3")), 1e-6));

  const ImageEncoding whole = model().encode_image(pixels, 8);
  EXPECT_TRUE(at::equal(whole.image_features, last.image_features));
  EXPECT_TRUE(at::equal(whole.attention_mean, mean_attention(trunk, last.attention)));
  EXPECT_FALSE(whole.image_features.requires_grad());
}

TEST_F(TinyClip, AttentionRowsAreDistributionsAndWindowsClampToTheModel) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = model().embed_image(pixels);
  const std::int64_t layers = model().architecture().vision_layers;

  const VisionTrunkOutput all = model().run_trunk(tokens, 1000);
  EXPECT_EQ(static_cast<std::int64_t>(all.attention.size()), layers - 1);
  const VisionTrunkOutput none = model().run_trunk(tokens, 1);
  EXPECT_TRUE(none.attention.empty());
  EXPECT_TRUE(at::equal(all.tokens, none.tokens));

  const LastBlockOutput last =
      model().last_block_forward(all.tokens, model().last_block_norm(all.tokens));
  const at::Tensor ones = at::ones({1, 46}, at::kFloat);
  EXPECT_TRUE(all_close(last.attention.sum(-1), ones, 1e-5));
  EXPECT_TRUE(all_close(mean_attention(all, last.attention).sum(-1), ones, 1e-5));
  for (const at::Tensor& block : all.attention) EXPECT_TRUE(all_close(block.sum(-1), ones, 1e-5));
  EXPECT_TRUE(at::equal(mean_attention(none, last.attention), last.attention));
  EXPECT_THROW(model().run_trunk(tokens, 0), Error);
}

TEST_F(TinyClip, GradientWithRespectToTheNormedTokensMatchesPythonAutograd) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor direction = read_npy_tensor(tiny_reference("direction"));
  const VisionTrunkOutput trunk = model().run_trunk(model().embed_image(pixels), 8);
  EXPECT_FALSE(trunk.tokens.requires_grad());
  const at::Tensor normed = model().last_block_norm(trunk.tokens);
  EXPECT_TRUE(normed.is_leaf());
  EXPECT_TRUE(normed.requires_grad());
  const LastBlockOutput last = model().last_block_forward(trunk.tokens, normed);
  (last.image_features * direction).sum().backward();
  ASSERT_TRUE(normed.grad().defined());
  EXPECT_TRUE(all_close(normed.grad(), read_npy_tensor(tiny_reference("grad_a")), 1e-5));
}

// The GradCAM use: K class scores s_k = softmax(100 f·Tᵀ)_k, f from copy k, one backward pass
// of Σ_k s_k, against K separate backward passes of one copy each.
TEST_F(TinyClip, BatchedLastBlockGradientEqualsOneBackwardPerCopy) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const VisionTrunkOutput trunk = model().run_trunk(model().embed_image(pixels), 8);
  at::manual_seed(7);
  const std::int64_t classes = 3;
  const at::Tensor text = l2_normalize(at::randn({classes + 4, model().architecture().embed_dim}));
  const auto scores = [&](const at::Tensor& features) {
    return at::softmax(model().logit_scale() * at::matmul(l2_normalize(features), text.t()), -1);
  };

  const at::Tensor batched = model().last_block_norm(trunk.tokens, classes);
  EXPECT_EQ(batched.sizes(), (std::vector<std::int64_t>{classes, 46, 128}));
  const LastBlockOutput out = model().last_block_forward(trunk.tokens, batched);
  const at::Tensor s = scores(out.image_features);
  at::Tensor loss = at::zeros({}, at::kFloat);
  for (std::int64_t k = 0; k < classes; ++k) loss = loss + s[k][k];
  loss.backward();

  for (std::int64_t k = 0; k < classes; ++k) {
    const at::Tensor single = model().last_block_norm(trunk.tokens, 1);
    const LastBlockOutput one = model().last_block_forward(trunk.tokens, single);
    const at::Tensor sk = scores(one.image_features);
    EXPECT_TRUE(all_close(sk[0], s[k].detach(), 1e-6)) << "class " << k;
    sk[0][k].backward();
    EXPECT_GT(single.grad().abs().max().item<double>(), 0.0);
    EXPECT_TRUE(all_close(batched.grad()[k], single.grad()[0], 1e-7)) << "class " << k;
    EXPECT_TRUE(all_close(out.attention[k], one.attention[0], 1e-7));
  }
}

TEST_F(TinyClip, BatchOfImagesEqualsImagesOneByOne) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor first = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor second = first.flip({3}) * 0.5;
  const ImageEncoding both = model().encode_image(at::cat({first, second}, 0), 4);
  for (int i = 0; i < 2; ++i) {
    const ImageEncoding one = model().encode_image(i == 0 ? first : second, 4);
    EXPECT_TRUE(all_close(both.tokens[i], one.tokens[0], 1e-5));
    EXPECT_TRUE(all_close(both.attention_mean[i], one.attention_mean[0], 1e-6));
    EXPECT_TRUE(all_close(both.image_features[i], one.image_features[0], 1e-5));
  }
  EXPECT_GT(testing::max_abs_diff(both.image_features[0], both.image_features[1]), 1e-3);
}

TEST_F(TinyClip, TextEncoderMatchesPython) {
  CLIPES_REQUIRE_TINY_CLIP();
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  const at::Tensor features = model().encode_text(tokens);
  // Python encoded the rows as one batch: the same numbers up to float rounding.
  EXPECT_TRUE(all_close(features, read_npy_tensor(tiny_reference("text_features")), 1e-5));
  // The reference mode encodes each row alone: a row's bits do not depend on its batch.
  for (std::int64_t i = 0; i < tokens.size(0); ++i) {
    EXPECT_TRUE(at::equal(model().encode_text(tokens.slice(0, i, i + 1)),
                          features.slice(0, i, i + 1)))
        << "row " << i;
  }
  // The fast mode (one batch, cut after the batch's last end token; a short row alone is cut
  // after its own) gives the same values up to float rounding.
  const at::Tensor fast = model().encode_text(tokens, TextEncoding::kFast);
  EXPECT_TRUE(all_close(fast, features, 1e-5));
  for (std::int64_t i = 0; i < tokens.size(0); ++i) {
    EXPECT_TRUE(all_close(model().encode_text(tokens.slice(0, i, i + 1), TextEncoding::kFast),
                          features.slice(0, i, i + 1), 1e-5))
        << "row " << i;
  }
  const at::Tensor unit = l2_normalize(features);
  EXPECT_TRUE(all_close(unit.norm(2, {-1}), at::ones({tokens.size(0)}), 1e-6));
  EXPECT_TRUE(all_close(unit * features.norm(2, {-1}, true), features, 1e-5));
}

TEST_F(TinyClip, ReleasingTheTextTowerKeepsTheVisionTower) {
  CLIPES_REQUIRE_TINY_CLIP();
  ClipModel copy = ClipModel::load(tiny_clip_path());
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  const ImageEncoding before = copy.encode_image(pixels, 4);
  ASSERT_TRUE(copy.has_text_tower());
  const auto& a = copy.architecture();
  // token embedding, positional embedding, ln_final, projection, causal mask, and per block
  // 4W² + 2W·M weights (in_proj, out_proj, c_fc, c_proj) and 4W + M + 2W + 2W biases/norms.
  const std::int64_t w = a.text_width, m = a.text_mlp_width, ctx = a.context_length;
  const std::int64_t floats = a.vocab_size * w + ctx * w + 2 * w + w * a.embed_dim + ctx * ctx +
                              a.text_layers * (4 * w * w + 2 * w * m + 9 * w + m);
  EXPECT_EQ(copy.release_text_tower(), floats * 4);
  EXPECT_FALSE(copy.has_text_tower());
  EXPECT_EQ(copy.release_text_tower(), 0);
  try {
    copy.encode_text(tokens);
    FAIL() << "encode_text ran without its weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text tower was released"), std::string::npos) << e.what();
  }
  const ImageEncoding after = copy.encode_image(pixels, 4);
  EXPECT_TRUE(at::equal(after.image_features, before.image_features));
  EXPECT_TRUE(at::equal(after.attention_mean, before.attention_mean));
  EXPECT_TRUE(at::equal(copy.logit_scale(), model().logit_scale()));
}

TEST_F(TinyClip, CausalMaskHidesTokensAfterTheEndToken) {
  CLIPES_REQUIRE_TINY_CLIP();
  for (const TextEncoding encoding : {TextEncoding::kReference, TextEncoding::kFast}) {
    at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens")).slice(0, 1, 2).clone();
    const at::Tensor before = model().encode_text(tokens, encoding);
    tokens[0][60] = 1234;  // after the end token: invisible to it under the causal mask
    EXPECT_TRUE(all_close(model().encode_text(tokens, encoding), before, 0.0));
    tokens[0][1] = 1234;  // before the end token: changes the feature
    EXPECT_GT(testing::max_abs_diff(model().encode_text(tokens, encoding), before), 1e-4);
  }
}

TEST_F(TinyClip, BadInputsAreRefusedWithClearErrors) {
  CLIPES_REQUIRE_TINY_CLIP();
  const auto expect_error = [](const auto& call, const std::string& part) {
    try {
      call();
      ADD_FAILURE() << "no error; expected one containing \"" << part << "\"";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error(
      [&] {
        model().embed_image(at::zeros({1, 3, 40, 32}));
      },
      "multiples of the patch size 16, got Float [1, 3, 40, 32]");
  expect_error([&] { model().embed_image(at::zeros({3, 32, 32})); }, "[B, 3, H, W]");
  expect_error(
      [&] {
        model().encode_text(at::zeros({2, 76}, at::kLong));
      },
      "expected integer tokens [T >= 1, 77], got Long [2, 76]");
  expect_error(
      [&] {
        model().encode_text(at::full({1, 77}, 49408, at::kLong));
      },
      "token ids must lie in [0, 49408), got [49408, 49408]");
  const at::Tensor tokens = model().embed_image(at::zeros({1, 3, 32, 48}));
  expect_error([&] { model().last_block_norm(tokens, 0); }, "cannot make 0 copies");
  expect_error(
      [&] {
        model().last_block_forward(tokens, at::zeros({2, 5, 128}));
      },
      "do not fit normed [2, 5, 128]");
  expect_error(
      [&] {
        model().run_trunk(at::zeros({1, 7, 64}), 8);
      },
      "expected vision tokens [B, N+1, 128], got [1, 7, 64]");
}

// Only where LibTorch has CUDA and a GPU is visible (Debian's libtorch-dev has neither).
TEST_F(TinyClip, CudaRunsMatchTheCpu) {
  CLIPES_REQUIRE_TINY_CLIP();
  if (!at::hasCUDA()) GTEST_SKIP() << "SKIPPED: this LibTorch has no CUDA or no GPU is visible";
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  const ImageEncoding cpu = model().encode_image(pixels);
  const ClipModel f32 = ClipModel::load(tiny_clip_path(), {"cuda", false});
  const ClipModel f16 = ClipModel::load(tiny_clip_path(), {"cuda", true});
  EXPECT_EQ(f32.dtype(), at::kFloat);
  EXPECT_EQ(f16.dtype(), at::kHalf);
  const ImageEncoding gpu = f32.encode_image(pixels);
  EXPECT_TRUE(gpu.image_features.is_cuda());
  EXPECT_TRUE(all_close(gpu.image_features, cpu.image_features, 1e-3));
  EXPECT_TRUE(all_close(gpu.attention_mean, cpu.attention_mean, 1e-4));
  EXPECT_TRUE(all_close(f32.encode_text(tokens), model().encode_text(tokens), 1e-3));
  const ImageEncoding half = f16.encode_image(pixels);
  EXPECT_EQ(half.image_features.scalar_type(), at::kHalf);
  EXPECT_TRUE(all_close(l2_normalize(half.image_features.to(at::kFloat)),
                        l2_normalize(cpu.image_features), 2e-2));
  // The GradCAM path in float16: gradients reach A.
  const VisionTrunkOutput trunk = f16.run_trunk(f16.embed_image(pixels), 8);
  const at::Tensor normed = f16.last_block_norm(trunk.tokens, 2);
  f16.last_block_forward(trunk.tokens, normed).image_features.sum().backward();
  EXPECT_TRUE(normed.grad().defined());
}

// ---- loading ---------------------------------------------------------------------------------

std::string load_error(const std::filesystem::path& file, const ClipLoadOptions& options = {}) {
  try {
    ClipModel::load(file, options);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ClipModelLoad, MissingFileIsNamed) {
  const auto file = clipes::testing::make_temp_dir("clip-missing") / "ViT-B-16.pt";
  EXPECT_EQ(load_error(file), "CLIP model file " + file.string() + " does not exist");
}

TEST(ClipModelLoad, TruncatedArchiveIsRefused) {
  CLIPES_REQUIRE_TINY_CLIP();
  const std::string bytes = io::read_file(tiny_clip_path());
  const auto file = clipes::testing::make_temp_dir("clip-truncated") / "truncated.pt";
  io::write_file_atomic(file, std::string_view(bytes).substr(0, bytes.size() / 2));
  const std::string message = load_error(file);
  EXPECT_NE(message.find("CLIP model file " + file.string() + " is neither a TorchScript archive"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("truncated or not a model file?"), std::string::npos) << message;
}

TEST(ClipModelLoad, RandomBytesAreRefused) {
  const auto file = clipes::testing::make_temp_dir("clip-random") / "random.pt";
  std::mt19937 rng(3);
  std::string bytes(1 << 16, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  io::write_file_atomic(file, bytes);
  const std::string message = load_error(file);
  EXPECT_NE(message.find("is neither a TorchScript archive (torch.jit.save, the format of "
                         "OpenAI's ViT-B-16.pt), a torch.save'd state dict nor a safetensors "
                         "file"),
            std::string::npos)
      << message;
}

TEST(ClipModelLoad, ResNetClipIsRefusedByName) {
  CLIPES_REQUIRE_TINY_CLIP();
  const auto file = clipes::testing::fixture_dir() / "tiny_resnet_clip.pt";
  EXPECT_EQ(load_error(file),
            "CLIP model file " + file.string() +
                " (TorchScript archive): this is a ResNet CLIP (it has visual.attnpool.*, "
                "visual.bn1.*, visual.layer1.*), not a CLIP ViT; clipes runs CLIP ViTs with "
                "OpenAI's blocks: OpenAI's ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px and "
                "open_clip's ViT models of the same design (ViT-B-16, ViT-L-14, ViT-H-14, ...), "
                "with a QuickGELU or GELU MLP");
}

TEST(ClipModelLoad, StateDictGivesTheSameModelAsTheArchive) {
  CLIPES_REQUIRE_TINY_CLIP();
  at::set_num_threads(2);
  const ClipModel archive = ClipModel::load(tiny_clip_path());
  const auto file = clipes::testing::fixture_dir() / "tiny_clip_state_dict.pt";
  // A plain dict says nothing of the activation and heads: they are asked for, not guessed.
  EXPECT_NE(load_error(file).find("the checkpoint does not say how many heads "
                                  "visual.transformer.resblocks.0.attn has (width 128)"),
            std::string::npos)
      << load_error(file);
  ClipLoadOptions options;
  options.vision_heads = 2;
  options.text_heads = 2;
  EXPECT_NE(load_error(file, options).find("does not say which activation its MLPs use"),
            std::string::npos);
  options.activation = "quick_gelu";
  const ClipModel state = ClipModel::load(file, options);
  EXPECT_EQ(state.architecture().vision_heads, archive.architecture().vision_heads);
  EXPECT_EQ(state.architecture().sources.at("activation"), "model_act (--model-act)");
  EXPECT_EQ(state.checkpoint().format, "state dict");
  const at::Tensor tokens = read_npy_tensor(tiny_reference("text_tokens"));
  EXPECT_TRUE(at::equal(state.encode_text(tokens), archive.encode_text(tokens)));
  const at::Tensor pixels = read_npy_tensor(tiny_reference("pixels"));
  EXPECT_TRUE(at::equal(state.encode_image(pixels).image_features,
                        archive.encode_image(pixels).image_features));
}

TEST(ClipModelLoad, OrderedDictStateDictGetsAnExplanation) {
  CLIPES_REQUIRE_TINY_CLIP();
  const auto file = clipes::testing::fixture_dir() / "tiny_clip_ordered_state_dict.pt";
  EXPECT_EQ(load_error(file),
            "CLIP model file " + file.string() +
                " is a torch.save'd collections.OrderedDict (what model.state_dict() returns, "
                "e.g. pytorch_model.bin, open_clip_pytorch_model.bin), which LibTorch 1.13 "
                "cannot unpickle (it reads an OrderedDict as None); convert it to safetensors "
                "with Python: python3 -c \"import torch, safetensors.torch as st; sd = "
                "torch.load('" + file.string() + "', map_location='cpu'); sd = "
                "sd.get('state_dict', sd); st.save_file({k: v.contiguous().clone() for k, v in "
                "sd.items()}, '" +
                (file.parent_path() / "tiny_clip_ordered_state_dict.safetensors").string() +
                "')\"");
}

TEST(ClipModelLoad, DevicesAndPrecisionAreChecked) {
  CLIPES_REQUIRE_TINY_CLIP();
  EXPECT_NE(load_error(tiny_clip_path(), {"tpu", false})
                .find("device must be \"cpu\", \"cuda\" or \"cuda:N\", got \"tpu\""),
            std::string::npos);
  EXPECT_NE(load_error(tiny_clip_path(), {"cpu", true}).find("keep_fp16 needs a CUDA device"),
            std::string::npos);
  if (!at::hasCUDA()) {
    EXPECT_NE(load_error(tiny_clip_path(), {"cuda", false})
                  .find("device \"cuda\" requested but CUDA is not available"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace clipes::clip
