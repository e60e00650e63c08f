#include "clipes/seg/trainer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <random>
#include <opencv2/core.hpp>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "clipes/seg/checkpoint.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/predict.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

namespace fs = std::filesystem;

TrainInputs inputs_for(const fs::path& data, const fs::path& out) {
  TrainInputs in;
  in.data.images = data / "images";
  in.data.masks = data / "masks";
  in.out = out;
  in.device = "cpu";
  return in;
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::map<std::string, at::Tensor> weights_of(const fs::path& file) {
  CheckpointReader reader(file, "cpu");
  DeepLab model(reader.state().config.model);
  reader.load_model(*model);
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : model->named_buffers()) out[b.key()] = b.value().detach().clone();
  return out;
}

using clipes::testing::error_of;

TEST(Trainer, SmallModelOverfitsFourSyntheticImages) {
  // 96 px images: at output stride 8, smaller ones cap the full-resolution accuracy near 95 %
  // (the logits are 12 x 12 here) however well the network fits its training labels.
  const fs::path dir = clipes::testing::make_temp_dir("seg_trainer_overfit");
  testing::write_synthetic_dataset(dir / "data", 4, 96, 96, 11);
  TrainConfig c;
  c.model.num_classes = 4;
  c.model.depth = 50;
  c.model.width = 8;
  c.model.msc = false;
  c.input.std = {57.4f, 57.1f, 58.4f};
  c.data.scales = {1.0};
  c.data.crop_size = 96;
  c.data.flip = false;
  c.data.workers = 2;
  c.optim.lr = 0.01;
  c.optim.batch_size = 4;
  c.optim.iter_size = 1;
  c.optim.iterations = 60;  // the bound
  c.seed = 1;               // (seeds 0, 1, 2 reach 0.964, 0.974, 0.972)
  c.log_every = 20;
  NullReporter reporter;
  const TrainResult r = train_segmentation(c, inputs_for(dir / "data", dir / "out"), reporter);
  ASSERT_TRUE(r.finished);
  EXPECT_EQ(r.iteration, 60);
  Segmenter segmenter(r.final_model, "cpu");
  std::int64_t right = 0;
  std::int64_t total = 0;
  for (int i = 0; i < 4; ++i) {
    const std::string id = "img" + std::to_string(i);
    const cv::Mat bgr = read_image_bgr(dir / "data" / "images" / (id + ".png"));
    const cv::Mat truth = io::read_png_u8(dir / "data" / "masks" / (id + ".png"));
    const cv::Mat predicted = labels_from_probabilities(segmenter.probabilities(bgr, {}));
    right += cv::countNonZero(predicted == truth);
    total += truth.total();
  }
  const double accuracy = static_cast<double>(right) / static_cast<double>(total);
  EXPECT_GE(accuracy, 0.95);
  // Log: one JSON line per iteration, the loss going down; the plot is written.
  const auto log = lines_of(r.log);
  ASSERT_EQ(log.size(), 60u);
  EXPECT_EQ(log[0].rfind("{\"iteration\": 1, \"loss\": ", 0), 0u) << log[0];
  EXPECT_NE(log[59].find("\"lr\": "), std::string::npos);
  EXPECT_NE(log[59].find("\"seconds\": "), std::string::npos);
  const CheckpointReader final_file(r.final_model, "cpu");
  const auto& history = final_file.state().history;
  ASSERT_EQ(history.size(), 60u);
  EXPECT_LT(history.back().loss, history.front().loss / 4);
  EXPECT_DOUBLE_EQ(history.front().lr, 0.01);
  EXPECT_NEAR(history[30].lr, 0.01 * std::pow(0.5, 0.9), 1e-12);
  EXPECT_FALSE(final_file.has_optimizer());
  EXPECT_EQ(r.plot, dir / "out" / "loss.png");
  EXPECT_EQ(io::read_file(r.plot).substr(1, 3), "PNG");
}

TEST(Trainer, StoppedAndResumedRunEndsWithTheSameWeights) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_trainer_resume");
  testing::write_synthetic_dataset(dir / "data", 5, 40, 44, 12, /*confidence=*/true);
  TrainConfig c = testing::tiny_train_config();
  c.model.msc = true;
  c.optim.iter_size = 2;
  c.optim.iterations = 6;
  c.checkpoint_every = 2;
  c.data.workers = 2;
  c.data.prefetch = 3;
  NullReporter reporter;
  TrainInputs whole = inputs_for(dir / "data", dir / "whole");
  whole.data.confidence = dir / "data" / "confidence";
  const TrainResult a = train_segmentation(c, whole, reporter);
  ASSERT_TRUE(a.finished);

  TrainInputs parts = inputs_for(dir / "data", dir / "parts");
  parts.data.confidence = dir / "data" / "confidence";
  parts.stop_after = 4;
  const TrainResult b1 = train_segmentation(c, parts, reporter);
  EXPECT_FALSE(b1.finished);
  EXPECT_EQ(b1.iteration, 4);
  EXPECT_FALSE(fs::exists(dir / "parts" / "model_final.pt"));
  // An interrupted run may have logged steps after its last checkpoint: resume drops them.
  {
    std::ofstream log(b1.log, std::ios::app);
    log << "{\"iteration\": 5, \"loss\": 9.0, \"lr\": 0, \"seconds\": 0}\n";
  }
  parts.stop_after = 0;
  parts.resume = true;
  TrainConfig other_workers = c;
  other_workers.data.workers = 0;  // loading threads do not change results
  const TrainResult b2 = train_segmentation(other_workers, parts, reporter);
  EXPECT_TRUE(b2.finished);
  EXPECT_EQ(b2.start_iteration, 4);

  const auto wa = weights_of(a.final_model);
  const auto wb = weights_of(b2.final_model);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(at::equal(t, wb.at(name))) << name;
  // ... and the same losses, step by step.
  const auto la = lines_of(a.log);
  const auto lb = lines_of(b2.log);
  ASSERT_EQ(la.size(), 6u);
  ASSERT_EQ(lb.size(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(la[i].substr(0, la[i].find("\"seconds\"")),
              lb[i].substr(0, lb[i].find("\"seconds\"")));
  }
  // Another change to the config is refused on resume.
  TrainConfig changed = c;
  changed.optim.lr = 0.5;
  EXPECT_NE(error_of([&] {
              train_segmentation(changed, parts, reporter);
            }).find("the config differs from the one"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train_segmentation(changed, parts, reporter); }).find("optim.lr"),
            std::string::npos);
}

// Raises `stop` when the training reaches iteration `at`, as a SIGINT handler would mid-iteration.
class StopAt final : public Reporter {
 public:
  StopAt(std::int64_t at, std::atomic<bool>* stop) : at_(at), stop_(stop) {}
  void log(LogLevel, std::string_view) override {}
  void progress(std::string_view, std::int64_t done, std::int64_t) override {
    if (done == at_) stop_->store(true);
  }

 private:
  std::int64_t at_;
  std::atomic<bool>* stop_;
};

TEST(Trainer, AStopRequestKeepsTheWorkAndResumeEndsBitForBit) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_trainer_stop");
  testing::write_synthetic_dataset(dir / "data", 5, 40, 44, 21, /*confidence=*/true);
  TrainConfig c = testing::tiny_train_config();
  c.optim.iterations = 7;
  c.checkpoint_every = 3;
  c.data.workers = 2;
  NullReporter quiet;
  TrainInputs whole = inputs_for(dir / "data", dir / "whole");
  whole.data.confidence = dir / "data" / "confidence";
  const TrainResult a = train_segmentation(c, whole, quiet);
  ASSERT_TRUE(a.finished);

  // Interrupted at a random iteration (not a checkpoint multiple as a rule): finished, saved.
  const std::int64_t at = 1 + static_cast<std::int64_t>(std::random_device{}() % 6);
  SCOPED_TRACE("interrupted at iteration " + std::to_string(at));
  std::atomic<bool> stop{false};
  StopAt reporter(at, &stop);
  TrainInputs parts = inputs_for(dir / "data", dir / "parts");
  parts.data.confidence = dir / "data" / "confidence";
  parts.stop = &stop;
  const TrainResult b1 = train_segmentation(c, parts, reporter);
  EXPECT_TRUE(b1.interrupted);
  EXPECT_FALSE(b1.finished);
  EXPECT_EQ(b1.iteration, at);
  EXPECT_EQ(CheckpointReader(b1.checkpoint, "cpu").state().iteration, at);
  EXPECT_EQ(lines_of(b1.log).size(), static_cast<std::size_t>(at));
  for (const auto& entry : fs::directory_iterator(dir / "parts")) {
    EXPECT_FALSE(io::is_atomic_temporary(entry.path())) << entry.path();
  }

  stop = false;
  parts.resume = true;
  const TrainResult b2 = train_segmentation(c, parts, quiet);
  EXPECT_TRUE(b2.finished);
  EXPECT_FALSE(b2.interrupted);
  EXPECT_EQ(b2.start_iteration, at);
  const auto wa = weights_of(a.final_model);
  const auto wb = weights_of(b2.final_model);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(at::equal(t, wb.at(name))) << name;
}

TEST(Trainer, RefusesToOverwriteOrResumeNothing) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_trainer_refuse");
  testing::write_synthetic_dataset(dir / "data", 2, 24, 24, 13);
  TrainConfig c = testing::tiny_train_config();
  c.optim.iterations = 1;
  NullReporter reporter;
  TrainInputs in = inputs_for(dir / "data", dir / "out");
  in.resume = true;
  EXPECT_NE(error_of([&] { train_segmentation(c, in, reporter); }).find("no checkpoint"),
            std::string::npos);
  in.resume = false;
  train_segmentation(c, in, reporter);
  EXPECT_NE(error_of([&] {
              train_segmentation(c, in, reporter);
            }).find("already holds a checkpoint: pass --resume"),
            std::string::npos);
}

TEST(Trainer, BadMasksStopTrainingWithTheFileNamed) {
  const fs::path dir = clipes::testing::make_temp_dir("seg_trainer_bad_mask");
  testing::write_synthetic_dataset(dir / "data", 2, 24, 24, 14);
  cv::Mat mask = io::read_png_u8(dir / "data" / "masks" / "img1.png");
  mask.at<std::uint8_t>(2, 3) = 40;
  io::write_png_indexed(dir / "data" / "masks" / "img1.png", mask, io::voc_palette());
  TrainConfig c = testing::tiny_train_config();
  c.data.workers = 2;
  NullReporter reporter;
  const std::string e =
      error_of([&] { train_segmentation(c, inputs_for(dir / "data", dir / "out"), reporter); });
  EXPECT_NE(e.find("training data (2 images; nothing was written): 1 problem\n  "),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("img1.png: value 40 at (x=3, y=2) is beyond the 4 classes"), std::string::npos)
      << e;
  EXPECT_FALSE(fs::exists(dir / "out"));  // found before iteration 1: nothing written
}

TEST(Trainer, CudaWithoutAGpuIsAClearError) {
  if (resolve_device("") != "cpu") GTEST_SKIP() << "a GPU is present";
  EXPECT_NE(error_of([] { resolve_device("cuda"); }).find("sees no CUDA GPU"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_device("tpu"); }).find("cpu, cuda or cuda:N"), std::string::npos);
}

}  // namespace
}  // namespace clipes::seg
