// End-to-end runs of the clipes-train-seg binary on tiny synthetic data.

#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/core.hpp>

#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTinyConfig = R"({
  "model": {"num_classes": 4, "depth": 50, "width": 4, "msc": true},
  "input": {"std": [57.4, 57.1, 58.4]},
  "data": {"scales": [0.75, 1.0], "crop_size": 33, "workers": 2},
  "optim": {"lr": 0.001, "batch_size": 2, "iter_size": 2, "iterations": 4},
  "checkpoint_every": 2,
  "log_every": 1
})";

class TrainSegTool : public ::testing::Test {
 protected:
  void SetUp() override {
    tool_ = clipes::testing::bin_dir() / "clipes-train-seg";
    CLIPES_REQUIRE_FILE(tool_);
    dir_ = clipes::testing::make_temp_dir("seg_tool");
    testing::write_synthetic_dataset(dir_ / "data", 3, 36, 40, 21, /*confidence=*/true);
    io::write_file_atomic(dir_ / "tiny.json", kTinyConfig);
  }
  int run(const std::string& args, std::string* output) {
    return clipes::testing::run_command(tool_.string() + " " + args, output);
  }
  std::string train_args(const fs::path& out) {
    const fs::path d = dir_ / "data";
    return "train --config " + (dir_ / "tiny.json").string() + " --images " +
           (d / "images").string() + " --masks " + (d / "masks").string() + " --confidence " +
           (d / "confidence").string() + " --out " + out.string() + " --device cpu --threads 1";
  }
  fs::path tool_;
  fs::path dir_;
};

TEST_F(TrainSegTool, TrainsResumesAndPredicts) {
  std::string output;
  ASSERT_EQ(run(train_args(dir_ / "run") + " --stop-after 2", &output), 0) << output;
  EXPECT_NE(output.find("iteration 2/4: loss "), std::string::npos) << output;
  EXPECT_NE(output.find(", lr "), std::string::npos) << output;
  EXPECT_NE(output.find("ETA"), std::string::npos) << output;
  EXPECT_NE(output.find("no initial weights"), std::string::npos) << output;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(dir_ / "run" / "model_final.pt"));
  ASSERT_EQ(run(train_args(dir_ / "run"), &output), 2);
  EXPECT_NE(output.find("already holds a checkpoint"), std::string::npos) << output;
  ASSERT_EQ(run(train_args(dir_ / "run") + " --resume", &output), 0) << output;
  EXPECT_NE(output.find("resuming from"), std::string::npos) << output;
  for (const char* f : {"model_final.pt", "loss.png", "config.json", "train_log.jsonl"}) {
    EXPECT_TRUE(fs::exists(dir_ / "run" / f)) << f;
  }
  std::ifstream log(dir_ / "run" / "train_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 4);

  io::write_file_atomic(dir_ / "val.txt", "img1\nimg2\n");
  ASSERT_EQ(
      run("predict --checkpoint " + (dir_ / "run" / "model_final.pt").string() + " --images " +
              (dir_ / "data" / "images").string() + " --split " + (dir_ / "val.txt").string() +
              " --out " + (dir_ / "pred").string() + " --scales 0.75,1.0 --flip --device cpu",
          &output),
      0)
      << output;
  EXPECT_NE(output.find("2 masks written"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir_ / "pred" / "img0.png"));
  const cv::Mat mask = io::read_png_u8(dir_ / "pred" / "img2.png");
  EXPECT_EQ(mask.size(), cv::Size(40, 36));
  double max = 0;
  cv::minMaxLoc(mask, nullptr, &max);
  EXPECT_LE(max, 3);

  // --crf: dense CRF on the averaged probabilities, same files and sizes.
  ASSERT_EQ(run("predict --checkpoint " + (dir_ / "run" / "model_final.pt").string() +
                    " --images " + (dir_ / "data" / "images").string() + " --split " +
                    (dir_ / "val.txt").string() + " --out " + (dir_ / "pred_crf").string() +
                    " --scales 0.75,1.0 --flip --crf " + "--device cpu --threads 2",
                &output),
            0)
      << output;
  EXPECT_NE(output.find("dense CRF (10 iterations, position 3/1, bilateral 4/67/3, rgb image)"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("2 masks written"), std::string::npos) << output;
  for (const char* id : {"img1", "img2"}) {
    const cv::Mat crf_mask = io::read_png_u8(dir_ / "pred_crf" / (std::string(id) + ".png"));
    EXPECT_EQ(crf_mask.size(), cv::Size(40, 36)) << id;
    cv::minMaxLoc(crf_mask, nullptr, &max);
    EXPECT_LE(max, 3) << id;
  }
  EXPECT_EQ(io::read_file(dir_ / "pred_crf" / "img1.png")[25], 3);  // palette PNG
}

TEST_F(TrainSegTool, BadInputsFailWithOneClearLine) {
  std::string output;
  cv::Mat mask = io::read_png_u8(dir_ / "data" / "masks" / "img0.png");
  mask.at<std::uint8_t>(1, 2) = 30;
  io::write_png_indexed(dir_ / "data" / "masks" / "img0.png", mask, io::voc_palette());
  EXPECT_EQ(run(train_args(dir_ / "bad_value"), &output), 2);
  EXPECT_NE(output.find("img0.png: value 30 at (x=2, y=1) is beyond the 4 classes"),
            std::string::npos)
      << output;

  testing::write_synthetic_dataset(dir_ / "data", 3, 36, 40, 21, true);
  io::write_png_indexed(dir_ / "data" / "masks" / "img1.png", cv::Mat::zeros(35, 40, CV_8UC1),
                        io::voc_palette());
  EXPECT_EQ(run(train_args(dir_ / "bad_size"), &output), 2);
  EXPECT_NE(output.find("img1.png is 40x35 but image"), std::string::npos) << output;

  EXPECT_EQ(run(train_args(dir_ / "typo") + " --set optim.lr_mult=2", &output), 2);
  EXPECT_NE(output.find("unknown key optim.lr_mult"), std::string::npos) << output;
  EXPECT_EQ(run("predict --checkpoint " + (dir_ / "none.pt").string() + " --images " +
                    (dir_ / "data" / "images").string() + " --out " + (dir_ / "p").string() +
                    " --scales 1,x",
                &output),
            2);
  EXPECT_NE(output.find("--scales: expected positive numbers"), std::string::npos) << output;
  EXPECT_EQ(run("predict --checkpoint " + (dir_ / "none.pt").string() + " --images " +
                    (dir_ / "data" / "images").string() + " --out " + (dir_ / "p").string() +
                    " --crf --crf-image bgr",
                &output),
            2);
  EXPECT_NE(output.find(R"(--crf-image: must be "rgb" or "reference", got "bgr")"),
            std::string::npos)
      << output;
}

}  // namespace
}  // namespace clipes::seg
