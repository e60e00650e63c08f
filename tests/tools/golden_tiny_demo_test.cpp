// The golden test that needs no ../shared: clipes-generate in its reference mode on the seven demo
// photos (scripts/make_demo_data.py, from python3-skimage) with the project's tiny test model
// (scripts/make_tiny_clip.py --seed 0, made at build time), against what the authors' code
// computed for the same inputs (tests/data/tiny-demo, made by scripts/make_golden_tiny_demo.py
// from ../shared/reference/tiny-demo): the same keys, the same initial CAMs to the bit, the same
// refined CAMs to the bit of their float16 storage, the same pseudo mask on every pixel.

#include <ATen/ATen.h>

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "clipes/clip/tokenizer.h"
#include "clipes/io/npy.h"
#include "clipes/io/npy_tensor.h"
#include "clipes/io/png.h"
#include "clipes/pipeline/generate_config.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

fs::path golden() { return testing::source_dir() / "tests/data/tiny-demo"; }
fs::path demo_photos() { return testing::fixture_dir() / "demo"; }
fs::path tiny_model() { return testing::fixture_dir() / "tiny_clip.pt"; }

std::vector<std::string> golden_ids() {
  std::vector<std::string> ids;
  std::ifstream in(golden() / "labels.txt");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) ids.push_back(line.substr(0, line.find(' ')));
  }
  return ids;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class GoldenTinyDemo : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_ready()) return;
    out_ = testing::make_temp_dir("golden-tiny-demo");
    rc_ = testing::run_command(
        fmt::format("{} --config {} --data-root {} --set dataset.layout=custom "
                    "--set dataset.images=images --set 'dataset.image_ext=.jpg|.png' "
                    "--set dataset.split= --labels {} --model {} "
                    "--vocab {} --out {} --threads 2 --cam-dtype float32 "
                    "--set crf.image=reference --set caa.explicit_power=true",
                    (testing::bin_dir() / "clipes-generate").string(),
                    (testing::source_dir() / "configs/voc.json").string(), demo_photos().string(),
                    (golden() / "labels.txt").string(), tiny_model().string(),
                    (golden() / "vocab_excerpt.txt.gz").string(), out_.string()),
        &log_);
  }
  static bool fixtures_ready() {
    return fs::exists(tiny_model()) && fs::exists(demo_photos() / "labels.txt");
  }
  static fs::path out_;
  static int rc_;
  static std::string log_;
};
fs::path GoldenTinyDemo::out_;
int GoldenTinyDemo::rc_ = -1;
std::string GoldenTinyDemo::log_;

#define CLIPES_REQUIRE_GOLDEN_FIXTURES()                                                       \
  do {                                                                                         \
    if (!fixtures_ready()) {                                                                   \
      GTEST_SKIP() << "SKIPPED: the build made no tiny CLIP or demo photos (/usr/bin/python3 " \
                      "with torch, numpy and skimage is missing: scripts/install_deps.sh)";    \
    }                                                                                          \
  } while (0)

TEST_F(GoldenTinyDemo, ReproducesTheAuthorsCamsAndMasksExactly) {
  CLIPES_REQUIRE_GOLDEN_FIXTURES();
  ASSERT_EQ(rc_, 0) << log_;
  // Bit for bit on the numerics the reference was computed on (LibTorch 1.13, OpenBLAS Haswell);
  // elsewhere the last bits of the matrix products differ, and so may a pixel whose confidence
  // sits on μ.
  const bool exact = testing::on_reference_blas();
  const auto ids = golden_ids();
  ASSERT_EQ(ids.size(), 7u);
  double worst_initial = 0, worst_cams = 0;
  std::int64_t differing_pixels = 0, pixels = 0;
  for (const auto& id : ids) {
    const auto expected = io::read_npz(golden() / (id + ".npz"));
    const auto npz = io::read_npz(out_ / "cams" / (id + ".npz"));
    EXPECT_EQ(io::npz_member(npz, "keys", id).to_int64(), io::npz_member(expected, "keys", id).to_int64())
        << id;
    const auto initial = io::to_tensor(io::npz_member(npz, "initial", id));
    const auto cams = io::to_tensor(io::npz_member(npz, "cams", id));
    const auto ref_initial = io::to_tensor(io::npz_member(expected, "initial", id));
    const auto ref_cams = io::to_tensor(io::npz_member(expected, "cams", id));
    ASSERT_EQ(cams.scalar_type(), at::kFloat) << id;
    ASSERT_EQ(ref_cams.scalar_type(), at::kHalf) << id;
    ASSERT_EQ(initial.sizes(), ref_initial.sizes()) << id;
    ASSERT_EQ(cams.sizes(), ref_cams.sizes()) << id;
    // The authors store float16: our float32 CAMs rounded to nearest even must be those numbers.
    const double d_initial = max_abs_diff(initial, ref_initial);
    const double d_cams = max_abs_diff(cams.to(at::kHalf), ref_cams);
    worst_initial = std::max(worst_initial, d_initial);
    worst_cams = std::max(worst_cams, d_cams);
    EXPECT_LE(d_initial, testing::parity_bound(0.0, 1e-5, 5e-5)) << id;
    EXPECT_LE(d_cams, testing::parity_bound(0.0, 1e-3, 1e-3)) << id;

    const cv::Mat mask = io::read_png_u8(out_ / "masks" / (id + ".png"));
    const cv::Mat ref_mask = io::read_png_u8(golden() / (id + ".png"));
    ASSERT_EQ(mask.size(), ref_mask.size()) << id;
    const int differing = cv::countNonZero(mask != ref_mask);
    EXPECT_LE(differing, exact ? 0 : static_cast<int>(mask.total() / 1000)) << id;
    differing_pixels += differing;
    pixels += static_cast<std::int64_t>(mask.total());
  }
  std::cout << fmt::format("tiny-demo ({}): initial CAMs max |d| {:.3g}, refined CAMs (float16) "
                           "max |d| {:.3g}, masks differ on {} of {} pixels\n",
                           testing::blas_description(), worst_initial, worst_cams, differing_pixels,
                           pixels);
}

// The golden data's vocabulary excerpt tokenizes every sentence of configs/voc.json as CLIP's
// whole vocabulary does (which only ../shared has).
TEST(GoldenTinyDemoVocabulary, ExcerptTokenizesTheConfigLikeTheWholeVocabulary) {
  const auto full_file = testing::shared_path("vocab/bpe_simple_vocab_16e6.txt.gz");
  CLIPES_REQUIRE_FILE(full_file);
  const auto full = clip::Tokenizer::from_file(full_file);
  const auto excerpt = clip::Tokenizer::from_file(golden() / "vocab_excerpt.txt.gz");
  EXPECT_EQ(excerpt.vocab_size(), full.vocab_size());
  const auto config = pipeline::load_generate_config(testing::source_dir() / "configs/voc.json");
  const auto texts = pipeline::build_prompt_texts(config);
  ASSERT_EQ(texts.foreground.size(), 20u);
  std::size_t multi_token_words = 0;
  for (const auto* group : {&texts.foreground, &texts.background}) {
    for (const auto& sentence : *group) {
      const auto ids = full.tokenize(sentence);
      EXPECT_EQ(excerpt.tokenize(sentence), ids) << sentence;
      multi_token_words += static_cast<std::size_t>(std::count_if(
          ids.begin(), ids.end(), [](std::int64_t id) { return id >= 512 && id < 49406; }));
    }
  }
  EXPECT_GT(multi_token_words, 0u);  // merges are exercised, not only single bytes
  // A word outside the config falls apart into other tokens: the excerpt is not the vocabulary.
  EXPECT_NE(excerpt.encode("zebra"), full.encode("zebra"));
}

}  // namespace
}  // namespace clipes
