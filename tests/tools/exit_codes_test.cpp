// The exit-code contract of every tool (README, "Exit codes"), on the real binaries:
// 0 all done; 1 some items failed (listed) or work under way stopped; 2 usage, config or input
// error before any work; 130 interrupted. clipes-generate's 1 and 130 are run in
// tests/tools/generate_e2e_test.cpp (they need the reference model).

#include <gtest/gtest.h>

#include <fstream>
#include <opencv2/core.hpp>

#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTinyConfig = R"({
  "model": {"num_classes": 4, "depth": 50, "width": 4, "msc": false},
  "input": {"std": [57.4, 57.1, 58.4]},
  "data": {"scales": [1.0], "crop_size": 33, "workers": 1},
  "optim": {"lr": 0.001, "batch_size": 2, "iter_size": 1, "iterations": 2},
  "checkpoint_every": 1000,
  "log_every": 1
})";

class ExitCodes : public ::testing::Test {
 protected:
  void SetUp() override {
    CLIPES_REQUIRE_FILE(tool("clipes-train-seg"));
    dir_ = clipes::testing::make_temp_dir("exit_codes");
    seg::testing::write_synthetic_dataset(dir_ / "data", 3, 36, 40, 21, /*confidence=*/true);
    io::write_file_atomic(dir_ / "tiny.json", kTinyConfig);
  }
  static fs::path tool(const char* name) { return clipes::testing::bin_dir() / name; }
  int run(const char* name, const std::string& args, std::string* out = nullptr) {
    std::string local;
    std::string* o = out != nullptr ? out : &local;
    const int rc = clipes::testing::run_command(tool(name).string() + " " + args, o);
    return rc;
  }
  std::string train_args(const fs::path& out) const {
    const fs::path d = dir_ / "data";
    return "train --config " + (dir_ / "tiny.json").string() + " --images " +
           (d / "images").string() + " --masks " + (d / "masks").string() + " --confidence " +
           (d / "confidence").string() + " --out " + out.string() + " --device cpu --threads 1";
  }
  fs::path dir_;
};

TEST_F(ExitCodes, TrainSeg) {
  std::string out;
  EXPECT_EQ(run("clipes-train-seg", "--help", &out), 0) << out;
  EXPECT_EQ(run("clipes-train-seg", "train --images x", &out), 2) << out;  // CLI11 said 106
  EXPECT_NE(out.find("--config is required"), std::string::npos) << out;
  EXPECT_EQ(run("clipes-train-seg", "", &out), 2) << out;                   // no subcommand
  EXPECT_EQ(run("clipes-train-seg", train_args(dir_ / "r") + " --bogus", &out), 2) << out;
  EXPECT_EQ(run("clipes-train-seg", train_args(dir_ / "r") + " --set optim.lr_mult=2", &out), 2)
      << out;
  EXPECT_NE(out.find("unknown key optim.lr_mult"), std::string::npos) << out;

  EXPECT_EQ(run("clipes-train-seg", train_args(dir_ / "r"), &out), 0) << out;
  EXPECT_EQ(run("clipes-train-seg", train_args(dir_ / "r"), &out), 2) << out;  // would overwrite
  EXPECT_NE(out.find("already holds a checkpoint"), std::string::npos) << out;

  // Work under way that stops on an error: 1, naming the last checkpoint.
  EXPECT_EQ(run("clipes-train-seg",
                train_args(dir_ / "diverge") + " --set optim.lr=1e30 --set optim.iterations=6",
                &out),
            1)
      << out;
  EXPECT_NE(out.find("the loss became"), std::string::npos) << out;

  // Bad data found before iteration 1: every problem listed, 2, nothing written.
  cv::Mat mask = io::read_png_u8(dir_ / "data" / "masks" / "img0.png");
  mask.at<std::uint8_t>(1, 2) = 30;
  io::write_png_indexed(dir_ / "data" / "masks" / "img0.png", mask, io::voc_palette());
  fs::remove(dir_ / "data" / "confidence" / "img2.png");
  EXPECT_EQ(run("clipes-train-seg", train_args(dir_ / "bad"), &out), 2) << out;
  EXPECT_NE(out.find("training data (3 images; nothing was written): 2 problems"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("img0.png: value 30 at (x=2, y=1) is beyond the 4 classes"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("img2.png: missing (the confidence map of id img2)"), std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(ExitCodes, TrainSegInterruptedKeepsACheckpointAndResumes) {
  // SIGINT once the first iteration is logged: the iteration finishes, a checkpoint is written
  // atomically, exit 130; --resume then finishes the run.
  const fs::path out_dir = dir_ / "int";
  const std::string command =
      tool("clipes-train-seg").string() + " " + train_args(out_dir) +
      " --set optim.iterations=100000 > " + (dir_ / "int.log").string() + " 2>&1 & p=$!; " +
      "i=0; while [ ! -s " + (out_dir / "train_log.jsonl").string() +
      " ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; " +
      "kill -INT $p; wait $p; echo rc=$?";
  std::string out;
  ASSERT_EQ(clipes::testing::run_command("sh -c '" + command + "'", &out), 0) << out;
  const std::string log = io::read_file(dir_ / "int.log");
  EXPECT_NE(out.find("rc=130"), std::string::npos) << out << log;
  EXPECT_NE(log.find("interrupted after iteration"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(out_dir / "checkpoint.pt"));
  std::ifstream lines(out_dir / "train_log.jsonl");
  int done = 0;
  for (std::string line; std::getline(lines, line);) ++done;
  ASSERT_GE(done, 1);
  EXPECT_EQ(run("clipes-train-seg",
                train_args(out_dir) + " --set optim.iterations=100000 --resume --stop-after " +
                    std::to_string(done + 1),
                &out),
            0)
      << out;
  EXPECT_NE(out.find("resuming from"), std::string::npos) << out;
}

TEST_F(ExitCodes, Predict) {
  std::string out;
  ASSERT_EQ(run("clipes-train-seg", train_args(dir_ / "m"), &out), 0) << out;
  const std::string base = "predict --checkpoint " + (dir_ / "m" / "model_final.pt").string() +
                           " --images " + (dir_ / "data" / "images").string() +
                           " --device cpu --out ";
  EXPECT_EQ(run("clipes-train-seg", base + (dir_ / "p0").string(), &out), 0) << out;
  EXPECT_EQ(run("clipes-train-seg", base + (dir_ / "p").string() + " --scales 1,x", &out), 2);
  EXPECT_NE(out.find("--scales: expected positive numbers"), std::string::npos) << out;
  EXPECT_EQ(run("clipes-train-seg", base + (dir_ / "p").string() + " --crf --crf-image bgr", &out),
            2);
  // One image whose mask cannot be written: the others are, 1, the failure listed.
  fs::create_directories(dir_ / "p1" / "img1.png");
  EXPECT_EQ(run("clipes-train-seg", base + (dir_ / "p1").string(), &out), 1) << out;
  EXPECT_NE(out.find("failed: img1:"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir_ / "p1" / "img0.png"));
  // A broken image is found before the first prediction: 2, nothing written.
  io::write_file_atomic(dir_ / "data" / "images" / "img9.png", "broken");
  EXPECT_EQ(run("clipes-train-seg", base + (dir_ / "p2").string(), &out), 2) << out;
  EXPECT_NE(out.find("img9.png: not a JPEG or PNG image"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir_ / "p2"));
}

TEST_F(ExitCodes, EvalAndGenerate) {
  std::string out;
  const fs::path d = dir_ / "data";
  EXPECT_EQ(run("clipes-eval", "--help", &out), 0) << out;
  EXPECT_EQ(run("clipes-eval", "--pred " + d.string(), &out), 2) << out;  // --gt missing
  EXPECT_EQ(run("clipes-eval", "--gt " + (d / "masks").string() + " --pred " +
                                   (d / "masks").string() + " --miou best",
                &out),
            2)
      << out;
  EXPECT_EQ(run("clipes-eval", "--gt " + (d / "masks").string() + " --pred " +
                                   (d / "masks").string() + " --num-classes 4",
                &out),
            0)
      << out;
  io::write_file_atomic(dir_ / "none.txt", "# nothing\n");
  EXPECT_EQ(run("clipes-eval", "--gt " + (d / "masks").string() + " --pred " +
                                   (d / "masks").string() + " --split " +
                                   (dir_ / "none.txt").string(),
                &out),
            2)
      << out;
  EXPECT_NE(out.find("lists no ids"), std::string::npos) << out;
  fs::copy(d / "masks", dir_ / "pred");
  fs::remove(dir_ / "pred" / "img1.png");  // a prediction missing: that item fails
  EXPECT_EQ(run("clipes-eval", "--gt " + (d / "masks").string() + " --pred " +
                                   (dir_ / "pred").string() + " --num-classes 4",
                &out),
            1)
      << out;
  EXPECT_NE(out.find("evaluation failed: "), std::string::npos) << out;

  EXPECT_EQ(run("clipes-generate", "--help", &out), 0) << out;
  EXPECT_EQ(run("clipes-generate", "--out x", &out), 2) << out;  // --config missing
  EXPECT_EQ(run("clipes-generate", "--config " + (dir_ / "tiny.json").string() + " --out " +
                                       (dir_ / "g").string() + " --bogus",
                &out),
            2)
      << out;
}

}  // namespace
}  // namespace clipes
