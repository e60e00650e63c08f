#include "clipes/seg/predict.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include "clipes/core/error.h"
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
  const PredictSummary s = predict_folder(in, {}, reporter);
  EXPECT_EQ(s.written, 3);
  EXPECT_EQ(s.failed, 1);
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
