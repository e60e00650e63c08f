// Parity with the authors' code: ../shared/reference holds a random CLIP ViT in OpenAI's
// release format (small12_random_fp16.pt) and what CLIP-ES computed with it on voc-mini (fp32,
// CPU, 2 threads, OpenBLAS's Haswell kernels). The port runs the reference's operators on the
// same shapes in the same order: on those kernels (the test main arranges them) it gives the
// same bits; on others, the same numbers to 1e-5.

#include <ATen/ATen.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "clip_test_util.h"
#include "clipes/cam/gradcam.h"
#include "clipes/clip/model.h"

namespace clipes::clip {
namespace {

using clipes::io::read_npy_tensor;
using clipes::testing::shared_path;
using testing::all_close;

// 0 on the reference's BLAS kernels, else 1e-5 (other kernels round the products differently).
double tolerance() { return clipes::testing::parity_bound(0.0, 1e-5, 5e-4); }

std::filesystem::path reference(const std::string& relative) {
  return shared_path("reference/small12-voc-mini/" + relative);
}

class ReferenceClip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto file = shared_path("reference/small12_random_fp16.pt");
    if (std::filesystem::exists(file)) model_ = std::make_unique<ClipModel>(ClipModel::load(file));
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override { at::set_num_threads(2); }
  static const ClipModel& model() { return *model_; }

  // Rows of tokens from prompts.json ("fg_tokens" or "bg_tokens").
  static at::Tensor prompt_tokens(const std::string& key) {
    std::ifstream in(reference("prompts.json"));
    const auto rows =
        nlohmann::json::parse(in).at(key).get<std::vector<std::vector<std::int64_t>>>();
    at::Tensor tokens = at::empty({static_cast<std::int64_t>(rows.size()), 77}, at::kLong);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].size(), 77u);
      for (std::size_t j = 0; j < 77; ++j) tokens[i][j] = rows[i][j];
    }
    return tokens;
  }

  static std::unique_ptr<ClipModel> model_;
};
std::unique_ptr<ClipModel> ReferenceClip::model_;

TEST_F(ReferenceClip, ArchitectureIsReadOffTheReleaseFormatFile) {
  CLIPES_REQUIRE_FILE(shared_path("reference/small12_random_fp16.pt"));
  const ClipArchitecture& a = model().architecture();
  EXPECT_EQ(a.vision_width, 128);
  EXPECT_EQ(a.vision_layers, 12);
  EXPECT_EQ(a.vision_heads, 2);
  EXPECT_EQ(a.vision_patch_size, 16);
  EXPECT_EQ(a.vision_grid_size, 14);
  EXPECT_EQ(a.image_resolution, 224);
  EXPECT_EQ(a.text_width, 128);
  EXPECT_EQ(a.text_layers, 2);
  EXPECT_EQ(a.text_heads, 2);
  EXPECT_EQ(a.embed_dim, 64);
  EXPECT_EQ(a.context_length, 77);
  EXPECT_EQ(a.vocab_size, 49408);
}

TEST_F(ReferenceClip, TextFeaturesOfAll45PromptsMatch) {
  CLIPES_REQUIRE_FILE(shared_path("reference/small12_random_fp16.pt"));
  CLIPES_REQUIRE_FILE(reference("prompts.json"));
  for (const std::string set : {"fg", "bg"}) {
    const at::Tensor tokens = prompt_tokens(set + "_tokens");
    const at::Tensor expected = read_npy_tensor(reference("text_features_" + set + ".npy"));
    EXPECT_EQ(tokens.size(0), set == "fg" ? 20 : 25);
    // The reference's zeroshot_classifier normalises, averages the one template, normalises.
    const at::Tensor features = l2_normalize(l2_normalize(model().encode_text(tokens)));
    EXPECT_TRUE(all_close(features, expected, tolerance())) << set;
  }
}

class ReferenceImage : public ReferenceClip, public ::testing::WithParamInterface<const char*> {};

TEST_P(ReferenceImage, TokensAttentionAndScoresMatch) {
  CLIPES_REQUIRE_FILE(shared_path("reference/small12_random_fp16.pt"));
  const std::string id = GetParam();
  CLIPES_REQUIRE_FILE(reference(id + "/input.npy"));
  const at::Tensor pixels = read_npy_tensor(reference(id + "/input.npy"));

  const VisionTrunkOutput trunk = model().run_trunk(model().embed_image(pixels), 8);
  // The dump is sequence-first [N+1, 1, D].
  const at::Tensor expected_tokens =
      read_npy_tensor(reference(id + "/image_features.npy")).permute({1, 0, 2});
  EXPECT_TRUE(all_close(trunk.tokens, expected_tokens, tolerance())) << id;

  const at::Tensor normed = model().last_block_norm(trunk.tokens);
  const LastBlockOutput last = model().last_block_forward(trunk.tokens, normed);
  const at::Tensor attention = mean_attention(trunk, last.attention)[0].slice(0, 1).slice(1, 1);
  EXPECT_TRUE(all_close(attention, read_npy_tensor(reference(id + "/attn_avg.npy")), tolerance()))
      << id;

  // probs = softmax(logit_scale · f·[present classes; 25 background]ᵀ) validates ln_post, the
  // patch-token mean and proj: every row of probs.npy holds these scores.
  const at::Tensor keys = read_npy_tensor(reference(id + "/keys.npy"));
  const at::Tensor fg = l2_normalize(l2_normalize(model().encode_text(prompt_tokens("fg_tokens"))));
  const at::Tensor bg = l2_normalize(l2_normalize(model().encode_text(prompt_tokens("bg_tokens"))));
  const at::Tensor text = at::cat({fg.index_select(0, keys), bg}, 0);
  const at::Tensor probs = cam::class_probabilities(last.image_features.detach(), text,
                                                    model().logit_scale().item<double>());
  const at::Tensor expected_probs = read_npy_tensor(reference(id + "/probs.npy"));
  for (std::int64_t k = 0; k < expected_probs.size(0); ++k) {
    EXPECT_TRUE(all_close(probs, expected_probs[k], tolerance())) << id << " row " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(VocMini, ReferenceImage,
                         ::testing::Values("2007_000032", "2008_003333", "2009_000177",
                                           "2010_005830", "2011_002770"));

}  // namespace
}  // namespace clipes::clip
