#include "clipes/clip/text_bank.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "clipes/clip/model.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/error.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::clip {
namespace {

using testing::shared_path;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class ReferenceTextBank : public ::testing::Test {
 protected:
  void SetUp() override {
    model_file_ = shared_path("reference/small12_random_fp16.pt");
    vocab_file_ = shared_path("vocab/bpe_simple_vocab_16e6.txt.gz");
    prompts_file_ = shared_path("reference/small12-voc-mini/prompts.json");
    at::set_num_threads(2);
  }
  std::filesystem::path model_file_, vocab_file_, prompts_file_;
};

// The 20 VOC class sentences and 25 background sentences give the reference's embeddings.
TEST_F(ReferenceTextBank, MatchesReferenceTextFeatures) {
  CLIPES_REQUIRE_FILE(model_file_);
  CLIPES_REQUIRE_FILE(vocab_file_);
  CLIPES_REQUIRE_FILE(prompts_file_);
  std::ifstream in(prompts_file_);
  const auto prompts = nlohmann::json::parse(in);
  const auto model = ClipModel::load(model_file_);
  const auto tokenizer = Tokenizer::from_file(vocab_file_);
  const TextBank bank = build_text_bank(model, tokenizer, prompts.at("fg"), prompts.at("bg"));
  const auto fg = io::read_npy_tensor(shared_path("reference/small12-voc-mini/text_features_fg.npy"));
  const auto bg = io::read_npy_tensor(shared_path("reference/small12-voc-mini/text_features_bg.npy"));
  ASSERT_EQ(bank.foreground.sizes(), fg.sizes());
  ASSERT_EQ(bank.background.sizes(), bg.sizes());
  EXPECT_LT(max_abs_diff(bank.foreground, fg), 1e-5);
  EXPECT_LT(max_abs_diff(bank.background, bg), 1e-5);
  EXPECT_LT(max_abs_diff(bank.foreground.norm(2, {1}), at::ones({20})), 1e-6);

  // The fast encoding (one batch cut after the last end token) gives the same unit vectors up to
  // float rounding, in the same order.
  const TextBank fast =
      build_text_bank(model, tokenizer, prompts.at("fg"), prompts.at("bg"), TextEncoding::kFast);
  ASSERT_EQ(fast.foreground.sizes(), fg.sizes());
  ASSERT_EQ(fast.background.sizes(), bg.sizes());
  EXPECT_LT(max_abs_diff(fast.foreground, bank.foreground), 1e-5);
  EXPECT_LT(max_abs_diff(fast.background, bank.background), 1e-5);
  EXPECT_EQ(encode_sentences(model, tokenizer, {}, TextEncoding::kFast).size(0), 0);

  // Per image: the present classes in label order, then every background word.
  const auto matrix = bank.text_matrix({14, 0});
  ASSERT_EQ(matrix.sizes(), (at::IntArrayRef{27, 64}));
  EXPECT_TRUE(at::equal(matrix[0], bank.foreground[14]));
  EXPECT_TRUE(at::equal(matrix[1], bank.foreground[0]));
  EXPECT_TRUE(at::equal(matrix.slice(0, 2), bank.background));
  try {
    bank.text_matrix({20});
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "class index 20 is outside the text bank's 20 classes");
  }

  // A sentence beyond the context length is named in the error.
  const std::string long_prompt = "a clean origami " + std::string(200, 'x') + " " +
                                  [] { std::string s; for (int i = 0; i < 80; ++i) s += "cat "; return s; }();
  try {
    encode_sentences(model, tokenizer, {"a clean origami cat.", long_prompt});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt \"a clean origami xxxx"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace clipes::clip
