#include "clipes/seg/predict.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "clipes/core/error.h"
#include "clipes/crf/dense_crf.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "clipes/seg/checkpoint.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/seg_data.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

namespace fs = std::filesystem;

// Two colour regions split by a slanted edge, and noisy probabilities of three classes: the left
// region is class 0, the right one class 2; class 1 never is. The probabilities put the edge
// kShift pixels too far right (a band of the right region labelled 0) and flip every 7th pixel
// (in raster order) to the wrong region's class, each wrong label at 0.6 against 0.3.
struct NoisyTwoRegions {
  static constexpr int kHeight = 40;
  static constexpr int kWidth = 56;
  static constexpr int kShift = 4;
  cv::Mat bgr;          // CV_8UC3
  cv::Mat truth;        // CV_8UC1: 0 or 2
  at::Tensor p;         // [3, H, W]
  int band_pixels = 0;  // right-region pixels labelled 0 by the shifted edge
  int salt_pixels = 0;  // pixels flipped outside the band
};

NoisyTwoRegions make_noisy_two_regions(bool colour_edge) {
  NoisyTwoRegions d;
  const int h = NoisyTwoRegions::kHeight;
  const int w = NoisyTwoRegions::kWidth;
  d.bgr.create(h, w, CV_8UC3);
  d.truth.create(h, w, CV_8UC1);
  d.p = at::empty({3, h, w});
  auto p = d.p.accessor<float, 3>();
  for (int y = 0; y < h; ++y) {
    const int edge = 22 + y / 4;  // x < edge: left region
    for (int x = 0; x < w; ++x) {
      const bool left = x < edge;
      const int jitter = (x * 7 + y * 13) % 5 - 2;  // ±2 grey levels of texture
      const cv::Vec3b colour = !colour_edge ? cv::Vec3b(120, 120, 120)
                               : left       ? cv::Vec3b(40, 160, 60)
                                            : cv::Vec3b(200, 60, 150);
      for (int c = 0; c < 3; ++c) {
        d.bgr.at<cv::Vec3b>(y, x)[c] = static_cast<std::uint8_t>(colour[c] + jitter);
      }
      const int truth = left ? 0 : 2;
      d.truth.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(truth);
      int said = x < edge + NoisyTwoRegions::kShift ? 0 : 2;
      if (said != truth) {
        ++d.band_pixels;
      } else if ((y * w + x) % 7 == 3) {
        said = 2 - said;
        ++d.salt_pixels;
      }
      p[0][y][x] = said == 0 ? 0.6f : 0.3f;
      p[1][y][x] = 0.1f;
      p[2][y][x] = said == 2 ? 0.6f : 0.3f;
    }
  }
  return d;
}

int wrong_pixels(const cv::Mat& labels, const cv::Mat& truth) {
  return cv::countNonZero(labels != truth);
}

TEST(RefineWithCrf, DefaultsAreDeepLabsParametersAndOff) {
  const PredictConfig config;
  EXPECT_FALSE(config.crf);
  EXPECT_EQ(config.crf_config.iterations, 10);
  EXPECT_EQ(config.crf_config.pos_weight, 3.0f);
  EXPECT_EQ(config.crf_config.pos_std, 1.0f);
  EXPECT_EQ(config.crf_config.bilateral_weight, 4.0f);
  EXPECT_EQ(config.crf_config.bilateral_std, 67.0f);
  EXPECT_EQ(config.crf_config.bilateral_rgb_std, 3.0f);
  EXPECT_EQ(config.crf_config.image, crf::CrfImageMode::kRgb);
}

TEST(RefineWithCrf, SnapsLabelsToTheColourEdgeAndRemovesNoise) {
  const NoisyTwoRegions d = make_noisy_two_regions(/*colour_edge=*/true);
  // Without the CRF, exactly the shifted band and the flipped pixels are wrong.
  const cv::Mat plain = labels_from_probabilities(d.p);
  ASSERT_EQ(d.band_pixels, NoisyTwoRegions::kHeight * NoisyTwoRegions::kShift);
  ASSERT_GT(d.salt_pixels, 250);
  EXPECT_EQ(wrong_pixels(plain, d.truth), d.band_pixels + d.salt_pixels);

  crf::CrfWorkspace workspace;
  const at::Tensor q = refine_with_crf(d.p, d.bgr, crf::CrfConfig{}, &workspace);
  ASSERT_EQ(q.sizes(), d.p.sizes());
  EXPECT_TRUE(at::allclose(q.sum(0), at::ones({NoisyTwoRegions::kHeight, NoisyTwoRegions::kWidth}),
                           1e-4, 1e-4));
  const cv::Mat refined = labels_from_probabilities(q);
  EXPECT_EQ(wrong_pixels(refined, d.truth), 0);

  // The band is repaired by the bilateral kernel, which follows the colours: the position
  // kernel alone removes the isolated flips but keeps the band, and over an image without the
  // colour edge the CRF cannot know where the regions meet (it smooths them together).
  crf::CrfConfig position_only;
  position_only.bilateral_weight = 0;
  const int smoothed = wrong_pixels(
      labels_from_probabilities(refine_with_crf(d.p, d.bgr, position_only, &workspace)), d.truth);
  EXPECT_GE(smoothed, d.band_pixels);
  EXPECT_LT(smoothed, d.band_pixels + d.salt_pixels / 10);
  const NoisyTwoRegions grey = make_noisy_two_regions(/*colour_edge=*/false);
  const cv::Mat blind =
      labels_from_probabilities(refine_with_crf(grey.p, grey.bgr, {}, &workspace));
  EXPECT_GT(wrong_pixels(blind, grey.truth), d.band_pixels + d.salt_pixels);

  // A reused workspace gives the same marginals.
  EXPECT_TRUE(at::equal(refine_with_crf(d.p, d.bgr, {}, &workspace), q));
}

TEST(RefineWithCrf, IsTheDenseCrfOnMinusLogProbabilitiesAndTheRgbImage) {
  const NoisyTwoRegions d = make_noisy_two_regions(true);
  at::Tensor p = d.p.clone();
  p[1][5][7] = 0.0f;  // clipped at 1e-5 in the unary
  crf::CrfConfig config;
  config.iterations = 3;
  config.bilateral_rgb_std = 20.0f;
  const at::Tensor unary = -at::log(p.clamp(1e-5, 1.0));
  cv::Mat rgb;
  cv::cvtColor(d.bgr, rgb, cv::COLOR_BGR2RGB);
  const std::vector<float> expected = crf::dense_crf(
      {unary.data_ptr<float>(), 3, NoisyTwoRegions::kHeight, NoisyTwoRegions::kWidth}, rgb, config);
  const at::Tensor q = refine_with_crf(p, d.bgr, config);
  ASSERT_EQ(q.numel(), static_cast<std::int64_t>(expected.size()));
  EXPECT_TRUE(
      at::allclose(q, at::from_blob(const_cast<float*>(expected.data()), q.sizes()), 1e-6, 1e-7));
  // No iterations: Q = softmax(−U) = the (renormalised) probabilities.
  config.iterations = 0;
  EXPECT_TRUE(at::allclose(refine_with_crf(d.p, d.bgr, config), d.p, 1e-6, 1e-6));
}

TEST(RefineWithCrf, MismatchedInputsAreClearErrors) {
  const NoisyTwoRegions d = make_noisy_two_regions(true);
  try {
    refine_with_crf(d.p, d.bgr(cv::Rect(0, 0, 50, 40)).clone(), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected an 8-bit BGR image of 56x40 (the "
                                         "probabilities' width x height), got 50x40"),
              std::string::npos)
        << e.what();
  }
  try {
    refine_with_crf(d.p.to(at::kDouble), d.bgr, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected probabilities [C>=2,H,W] float32 on the CPU, "
                                         "got [3, 40, 56] Double"),
              std::string::npos)
        << e.what();
  }
}

class Predict : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = clipes::testing::make_temp_dir("seg_predict");
    config_ = testing::tiny_train_config();
    config_.model.msc = true;
    config_.input.std = {57.4f, 57.1f, 58.4f};
    model_ = DeepLab(config_.model, 3);
    {
      at::manual_seed(11);      // LibTorch seeds its default generator at random otherwise
      at::NoGradGuard no_grad;  // a classifier with some spread, so that argmax varies
      for (auto& p : model_->named_parameters()) {
        if (p.key().find("aspp") != std::string::npos) p.value().normal_(0, 0.5);
      }
    }
    CheckpointState state;
    state.config = config_;
    save_checkpoint(dir_ / "model.pt", *model_, nullptr, state);
    testing::write_synthetic_dataset(dir_ / "data", 3, 37, 45, 5);
  }
  fs::path dir_;
  TrainConfig config_;
  DeepLab model_{nullptr};
};

TEST_F(Predict, ProbabilitiesAreTheSoftmaxOfTheUpsampledLogits) {
  Segmenter segmenter(dir_ / "model.pt", "cpu");
  const cv::Mat bgr = read_image_bgr(dir_ / "data" / "images" / "img0.png");
  const at::Tensor p = segmenter.probabilities(bgr, {});
  ASSERT_EQ(p.sizes(), (std::vector<std::int64_t>{4, 37, 45}));
  EXPECT_TRUE(at::allclose(p.sum(0), at::ones({37, 45}), 1e-5, 1e-5));
  at::NoGradGuard no_grad;
  const at::Tensor x = image_to_input(bgr, config_.input).unsqueeze(0);
  const at::Tensor logits = at::upsample_bilinear2d(model_->forward(x), {37, 45}, false);
  EXPECT_TRUE(at::allclose(p, at::softmax(logits[0], 0), 1e-5, 1e-6));

  // Scales: the mean of the logits of each scaled input, resized back.
  PredictConfig two;
  two.scales = {0.5, 1.0};
  const at::Tensor half = at::upsample_bilinear2d(x, {18, 22}, false, 0.5, 0.5);
  const at::Tensor mean =
      (logits + at::upsample_bilinear2d(model_->forward(half), {37, 45}, false)) / 2;
  EXPECT_TRUE(at::allclose(segmenter.probabilities(bgr, two), at::softmax(mean[0], 0), 1e-5, 1e-6));
}

TEST_F(Predict, FlipAveragesTheLogitsOfTheMirroredImageMirroredBack) {
  Segmenter segmenter(dir_ / "model.pt", "cpu");
  const cv::Mat bgr = read_image_bgr(dir_ / "data" / "images" / "img1.png");
  PredictConfig cfg;
  cfg.flip = true;
  const at::Tensor p = segmenter.probabilities(bgr, cfg);
  at::NoGradGuard no_grad;
  const at::Tensor x = image_to_input(bgr, config_.input).unsqueeze(0);
  const at::Tensor a = at::upsample_bilinear2d(model_->forward(x), {37, 45}, false);
  const at::Tensor b =
      at::upsample_bilinear2d(model_->forward(x.flip({3})), {37, 45}, false).flip({3});
  EXPECT_TRUE(at::allclose(p, at::softmax(((a + b) / 2)[0], 0), 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(p, at::softmax(a[0], 0), 1e-3, 1e-3));  // the flip did something
}

TEST_F(Predict, WritesPaletteMasksThatReadBackAsClassIds) {
  io::write_file_atomic(dir_ / "data" / "images" / "broken.jpg", "not a jpeg");
  NullReporter reporter;
  PredictInputs in;
  in.checkpoint = dir_ / "model.pt";
  in.images = dir_ / "data" / "images";
  in.out = dir_ / "pred";
  in.device = "cpu";
  // A broken image is found before the first prediction: listed, nothing written.
  const std::string e = clipes::testing::error_of([&] { predict_folder(in, {}, reporter); });
  EXPECT_NE(e.find("images to predict (4; nothing was written): 1 problem\n  "), std::string::npos)
      << e;
  EXPECT_NE(e.find("broken.jpg: not a JPEG or PNG image"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(in.out));
  fs::remove(dir_ / "data" / "images" / "broken.jpg");
  const PredictSummary s = predict_folder(in, {}, reporter);
  EXPECT_EQ(s.written, 3);
  EXPECT_TRUE(s.failures.empty());
  Segmenter segmenter(in.checkpoint, "cpu");
  std::set<int> classes;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "img" + std::to_string(i);
    const cv::Mat written = io::read_png_u8(in.out / (id + ".png"));
    const cv::Mat expected = labels_from_probabilities(
        segmenter.probabilities(read_image_bgr(in.images / (id + ".png")), {}));
    ASSERT_EQ(written.size(), cv::Size(45, 37));
    EXPECT_EQ(cv::countNonZero(written != expected), 0) << id;
    for (int y = 0; y < written.rows; ++y) {
      for (int x = 0; x < written.cols; ++x) classes.insert(written.at<std::uint8_t>(y, x));
    }
  }
  EXPECT_GE(classes.size(), 2u);
  EXPECT_LE(*classes.rbegin(), 3);
  EXPECT_FALSE(fs::exists(in.out / "broken.png"));
  // The file is a palette PNG (colour type 3 in the IHDR chunk) with the VOC colours.
  EXPECT_EQ(io::read_file(in.out / "img0.png")[25], 3);
}

TEST_F(Predict, ShardsSplitTheImagesBetweenProcesses) {
  NullReporter reporter;
  PredictInputs in;
  in.checkpoint = dir_ / "model.pt";
  in.images = dir_ / "data" / "images";
  in.device = "cpu";
  std::set<std::string> seen;
  std::int64_t written = 0;
  for (int rank = 0; rank < 2; ++rank) {
    in.shard = {rank, 2};
    in.out = dir_ / ("pred_shard" + std::to_string(rank));
    written += predict_folder(in, {}, reporter).written;
    for (const auto& entry : fs::directory_iterator(in.out)) {
      const std::string id = entry.path().stem().string();
      EXPECT_EQ(data::shard_of(id, 2), rank) << id;
      EXPECT_TRUE(seen.insert(id).second) << id << " predicted by two shards";
    }
  }
  EXPECT_EQ(written, 3);
  EXPECT_EQ(seen, (std::set<std::string>{"img0", "img1", "img2"}));
  in.shard = {2, 2};
  EXPECT_EQ(clipes::testing::error_of([&] { predict_folder(in, {}, reporter); }),
            "invalid shard 2/2: expected 0 <= I < N");
}

TEST_F(Predict, WithCrfWritesTheArgmaxOfTheRefinedProbabilities) {
  NullReporter reporter;
  PredictInputs in;
  in.checkpoint = dir_ / "model.pt";
  in.images = dir_ / "data" / "images";
  in.out = dir_ / "pred_crf";
  in.device = "cpu";
  PredictConfig config;
  config.crf = true;
  config.scales = {0.75, 1.0};
  const PredictSummary s = predict_folder(in, config, reporter);
  EXPECT_EQ(s.written, 3);
  EXPECT_TRUE(s.failures.empty());
  Segmenter segmenter(in.checkpoint, "cpu");
  int changed = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "img" + std::to_string(i);
    const cv::Mat written = io::read_png_u8(in.out / (id + ".png"));
    ASSERT_EQ(written.size(), cv::Size(45, 37));
    const cv::Mat bgr = read_image_bgr(in.images / (id + ".png"));
    const at::Tensor p = segmenter.probabilities(bgr, config);
    const cv::Mat expected = labels_from_probabilities(refine_with_crf(p, bgr, {}));
    EXPECT_EQ(cv::countNonZero(written != expected), 0) << id;
    changed += cv::countNonZero(written != labels_from_probabilities(p));
  }
  EXPECT_GT(changed, 0);  // the CRF changed some labels of this random model
  EXPECT_EQ(io::read_file(in.out / "img0.png")[25], 3);  // palette PNG

  config.crf_config.iterations = -1;
  try {
    predict_folder(in, config, reporter);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("predict: crf.iterations must be >= 0, got -1"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Predict, LabelsAreTheArgmax) {
  const at::Tensor p = at::tensor({0.1f, 0.7f, 0.6f, 0.2f, 0.3f, 0.1f}).view({3, 1, 2});
  const cv::Mat l = labels_from_probabilities(p);
  EXPECT_EQ(l.at<std::uint8_t>(0, 0), 1);  // (0.1, 0.6, 0.3)
  EXPECT_EQ(l.at<std::uint8_t>(0, 1), 0);  // (0.7, 0.2, 0.1)
}

TEST_F(Predict, NotACheckpointIsAClearError) {
  io::write_file_atomic(dir_ / "junk.pt", "junk");
  try {
    Segmenter s(dir_ / "junk.pt", "cpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a LibTorch archive"), std::string::npos)
        << e.what();
  }
  try {
    Segmenter s(dir_ / "none.pt", "cpu");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none.pt does not exist"), std::string::npos);
  }
}

}  // namespace
}  // namespace clipes::seg
