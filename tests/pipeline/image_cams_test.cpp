// The CLIP stage against the authors' code: for every voc-mini image, from the JPEG to the
// refined CAMs, with the random release-format CLIP of ../shared/reference.

#include "clipes/pipeline/image_cams.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "clipes/clip/model.h"
#include "clipes/clip/preprocess.h"
#include "clipes/clip/text_bank.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/data/image.h"
#include "clipes/io/npy_tensor.h"
#include "support/test_support.h"

namespace clipes::pipeline {
namespace {

using testing::shared_path;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(ImageCams, EqualTheReferenceOnEveryVocMiniImage) {
  const auto model_file = shared_path("reference/small12_random_fp16.pt");
  const auto vocab_file = shared_path("vocab/bpe_simple_vocab_16e6.txt.gz");
  const auto labels_file = shared_path("data/voc-mini/labels.txt");
  CLIPES_REQUIRE_FILE(model_file);
  CLIPES_REQUIRE_FILE(vocab_file);
  CLIPES_REQUIRE_FILE(labels_file);
  at::set_num_threads(2);
  const auto model = clip::ClipModel::load(model_file);
  const auto tokenizer = clip::Tokenizer::from_file(vocab_file);
  std::ifstream prompts_in(shared_path("reference/small12-voc-mini/prompts.json"));
  const auto prompts = nlohmann::json::parse(prompts_in);
  const auto bank = clip::build_text_bank(model, tokenizer, prompts.at("fg"), prompts.at("bg"));

  std::ifstream labels_in(labels_file);
  std::string line;
  int images = 0;
  double worst_initial = 0, worst_refined = 0, worst_probs = 0;
  while (std::getline(labels_in, line)) {
    std::istringstream fields(line);
    std::string id;
    fields >> id;
    std::vector<int> labels;
    for (int label = 0; fields >> label;) labels.push_back(label);
    const auto dir = shared_path("reference/small12-voc-mini/" + id);
    const auto keys = io::read_npy(dir / "keys.npy").to_int64();
    ASSERT_EQ(keys, std::vector<std::int64_t>(labels.begin(), labels.end())) << id;

    const auto image = data::load_image(shared_path("data/voc-mini/JPEGImages/" + id + ".jpg"));
    const auto pixels = clip::preprocess_for_clip(image.decoded);
    const auto cams = compute_image_cams(model, pixels, bank.text_matrix(labels),
                                         static_cast<std::int64_t>(labels.size()),
                                         image.rgb.cols, image.rgb.rows, cam::CamConfig{},
                                         cam::CaaConfig{});
    const auto initial = io::read_npy_tensor(dir / "grayscale_cam.npy");
    const auto refined = io::read_npy_tensor(dir / "attn_highres.npy");
    const auto probs = io::read_npy_tensor(dir / "probs.npy");
    ASSERT_EQ(cams.initial.sizes(), initial.sizes()) << id;
    ASSERT_EQ(cams.refined.sizes(), refined.sizes()) << id;
    // The bounds: initial CAMs to 1e-5, refined CAMs to 1e-4.
    EXPECT_LT(max_abs_diff(cams.initial, initial), 1e-5) << id;
    EXPECT_LT(max_abs_diff(cams.refined, refined), 1e-4) << id;
    // Every image has the same softmax rows (each row of probs.npy is one class's pass).
    EXPECT_LT(max_abs_diff(cams.probs, probs[0]), 1e-5) << id;
    worst_initial = std::max(worst_initial, max_abs_diff(cams.initial, initial));
    worst_refined = std::max(worst_refined, max_abs_diff(cams.refined, refined));
    worst_probs = std::max(worst_probs, max_abs_diff(cams.probs, probs[0]));
    ++images;
  }
  EXPECT_EQ(images, 20);
  std::cout << "worst |diff| over " << images << " images: initial " << worst_initial
            << ", refined " << worst_refined << ", probs " << worst_probs << "\n";
}

}  // namespace
}  // namespace clipes::pipeline
