// clipes-train-seg as a job of several ranks (Gloo on the CPU), on the real binary and
// configs/train-tiny.json: two ranks compute the steps of one process, a killed rank stops the
// others, a rank that never comes is named, and the launch mistakes are exit 2. And proof that
// training learns: the tiny DeepLab on four voc-mini photos with their ground truth.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <opencv2/core.hpp>

#include "clipes/io/files.h"
#include "clipes/io/png.h"
#include "clipes/seg/checkpoint.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/distributed.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

class DistributedTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    CLIPES_REQUIRE_FILE(tool());
    const auto backends = seg::available_backends();
    if (std::find(backends.begin(), backends.end(), "gloo") == backends.end()) {
      GTEST_SKIP() << "SKIPPED: this build has no Gloo (libgloo-dev)";
    }
    dir_ = clipes::testing::make_temp_dir("distributed_train");
    seg::testing::write_synthetic_dataset(dir_ / "data", 6, 80, 96, 5, /*confidence=*/true);
  }
  static fs::path tool() { return clipes::testing::bin_dir() / "clipes-train-seg"; }
  /// train on the synthetic data with configs/train-tiny.json (4 classes, crop 65, scale 1).
  std::string train_args(const fs::path& out, const std::string& extra = "",
                         int threads = 1) const {
    const fs::path d = dir_ / "data";
    return "train --config " + (clipes::testing::source_dir() / "configs/train-tiny.json").string() +
           " --images " + (d / "images").string() + " --masks " + (d / "masks").string() +
           " --confidence " + (d / "confidence").string() + " --out " + out.string() +
           " --device cpu --threads " + std::to_string(threads) + " --set model.num_classes=4 --set data.crop_size=65" +
           " --set data.scales.0=1.0 --set data.workers=1 " + extra;
  }
  int run(const std::string& args, std::string* out) const {
    return clipes::testing::run_command(tool().string() + " " + args, out);
  }
  fs::path dir_;
};

/// Every parameter and buffer of a final model, by name.
std::map<std::string, at::Tensor> model_tensors(const fs::path& file) {
  seg::CheckpointReader reader(file, "cpu");
  seg::DeepLab model(reader.state().config.model);
  reader.load_model(*model);
  std::map<std::string, at::Tensor> tensors;
  for (const auto& p : model->named_parameters()) tensors[p.key()] = p.value().detach().clone();
  for (const auto& b : model->named_buffers()) tensors[b.key()] = b.value().clone();
  return tensors;
}

TEST_F(DistributedTrain, TwoGlooRanksEndWithTheWeightsOfOneProcess) {
  // Global batch 4 (2 per rank), 10 iterations, from scratch: rank 0's calibration and weights
  // are broadcast, each rank forwards its half, losses are normalised over the global batch.
  std::string out;
  const std::string ten = "--set optim.iterations=10";
  ASSERT_EQ(run(train_args(dir_ / "one", ten, 2), &out), 0) << out;
  ASSERT_EQ(run(train_args(dir_ / "two", ten + " --nproc 2"), &out), 0) << out;
  EXPECT_NE(out.find("[rank 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("2 ranks over gloo, batch 2 per rank"), std::string::npos) << out;
  const auto one = model_tensors(dir_ / "one" / "model_final.pt");
  const auto two = model_tensors(dir_ / "two" / "model_final.pt");
  ASSERT_EQ(one.size(), two.size());
  double diff2 = 0;
  double norm2 = 0;
  double worst = 0;  // per tensor: max |difference| / max |weight|
  std::string worst_name;
  for (const auto& [name, a] : one) {
    if (!a.is_floating_point()) continue;
    const at::Tensor d = (a - two.at(name)).to(at::kDouble);
    diff2 += d.pow(2).sum().item<double>();
    norm2 += a.to(at::kDouble).pow(2).sum().item<double>();
    const double scale = a.abs().max().item<double>();
    if (scale > 0 && d.abs().max().item<double>() / scale > worst) {
      worst = d.abs().max().item<double>() / scale;
      worst_name = name;
    }
  }
  const double relative = std::sqrt(diff2 / norm2);
  std::printf("2 ranks vs 1 process after 10 steps: |dw|/|w| = %.3g, worst tensor %s %.3g\n",
              relative, worst_name.c_str(), worst);
  EXPECT_LE(relative, 1e-6);
  // Float32 sums in another order move the ASPP biases most (their gradients cancel).
  EXPECT_LE(worst, 1e-5) << worst_name;
  // Only rank 0 wrote: one log with 10 lines.
  std::ifstream log(dir_ / "two" / "train_log.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 10);
}

TEST_F(DistributedTrain, PredictRanksWriteEveryImageOnce) {
  std::string out;
  ASSERT_EQ(run(train_args(dir_ / "m", "--set optim.iterations=2"), &out), 0) << out;
  const std::string predict = "predict --checkpoint " + (dir_ / "m" / "model_final.pt").string() +
                              " --images " + (dir_ / "data" / "images").string() +
                              " --device cpu --threads 1 --out ";
  ASSERT_EQ(run(predict + (dir_ / "alone").string(), &out), 0) << out;
  ASSERT_EQ(run(predict + (dir_ / "ranks").string() + " --nproc 2", &out), 0) << out;
  // Each rank logs its share (rank 1 logs warnings only: its share is in rank 0's count).
  EXPECT_NE(out.find("shard 0/2: "), std::string::npos) << out;
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "alone")) {
    const fs::path twin = dir_ / "ranks" / entry.path().filename();
    ASSERT_TRUE(fs::exists(twin)) << twin;
    EXPECT_EQ(io::read_file(entry.path()), io::read_file(twin)) << twin;
    ++files;
  }
  EXPECT_EQ(files, 6);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "ranks"), fs::directory_iterator()), 6);
}

TEST_F(DistributedTrain, AKilledRankStopsTheOtherWithinTheTimeout) {
  const fs::path out_dir = dir_ / "kill";
  const std::string common = "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                             std::to_string(29400 + ::getpid() % 500) + " ";
  const std::string args =
      train_args(out_dir, "--set optim.iterations=100000 --dist-timeout 60");
  const std::string command =
      "RANK=0 " + common + tool().string() + " " + args + " > " + (dir_ / "r0.log").string() +
      " 2>&1 & p0=$!; RANK=1 " + common + tool().string() + " " + args + " > " +
      (dir_ / "r1.log").string() + " 2>&1 & p1=$!; i=0; while [ \"$(cat " +
      (out_dir / "train_log.jsonl").string() +
      " 2>/dev/null | wc -l)\" -lt 3 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; " +
      "kill -9 $p1; t0=$(date +%s); wait $p0; echo rc=$? seconds=$(( $(date +%s) - t0 ))";
  std::string out;
  ASSERT_EQ(clipes::testing::run_command("timeout 300 sh -c '" + command + "'", &out), 0) << out;
  const std::string log = io::read_file(dir_ / "r0.log");
  EXPECT_NE(out.find("rc=1 "), std::string::npos) << out << log;  // work under way stopped
  EXPECT_NE(log.find("rank 1 stopped answering (killed, crashed or hung?)"), std::string::npos)
      << log;
  EXPECT_NE(log.find("the last checkpoint is"), std::string::npos) << log;
  std::printf("%s", out.c_str());
}

TEST_F(DistributedTrain, ARankThatNeverComesIsNamedAndNothingIsTrained) {
  std::string out;
  const std::string env = "RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                          std::to_string(29900 + ::getpid() % 90) + " ";
  EXPECT_EQ(clipes::testing::run_command(
                env + tool().string() + " " + train_args(dir_ / "alone", "--dist-timeout 2"),
                &out),
            2)
      << out;
  EXPECT_NE(out.find("rank 0: rank 1 never joined the job at 127.0.0.1"), std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(dir_ / "alone" / "checkpoint.pt"));
}

TEST_F(DistributedTrain, LaunchMistakesAreExit2) {
  std::string out;
  // The global batch (4) must split evenly over the ranks.
  EXPECT_EQ(run(train_args(dir_ / "three", "--nproc 3"), &out), 2) << out;
  EXPECT_NE(out.find("optim.batch_size 4 is the global batch and must be a multiple of the 3 "
                     "ranks"),
            std::string::npos)
      << out;
  // Half a torchrun environment.
  EXPECT_EQ(clipes::testing::run_command(
                "RANK=1 " + tool().string() + " " + train_args(dir_ / "half"), &out),
            2)
      << out;
  EXPECT_NE(out.find("RANK is set but WORLD_SIZE is not"), std::string::npos) << out;
  // --nproc inside a launched job.
  EXPECT_EQ(clipes::testing::run_command("RANK=0 WORLD_SIZE=1 " + tool().string() + " " +
                                             train_args(dir_ / "nested", "--nproc 2"),
                                         &out),
            2)
      << out;
  EXPECT_NE(out.find("--nproc inside a launched job"), std::string::npos) << out;
  // Resume with another world size.
  ASSERT_EQ(run(train_args(dir_ / "r", "--stop-after 2"), &out), 0) << out;
  EXPECT_EQ(run(train_args(dir_ / "r", "--resume --nproc 2"), &out), 2) << out;
  EXPECT_NE(out.find("was trained by 1 process and this job has 2"), std::string::npos) << out;
  EXPECT_EQ(run(train_args(dir_ / "r", "--resume --stop-after 3"), &out), 0) << out;
}

/// Pixel accuracy of predicted masks against ground truth (255 ignored), and of all-background.
struct Accuracy {
  double model = 0;
  double background = 0;
};

Accuracy pixel_accuracy(const fs::path& predicted, const fs::path& truth,
                        const std::vector<std::string>& ids) {
  std::int64_t right = 0;
  std::int64_t background = 0;
  std::int64_t counted = 0;
  for (const auto& id : ids) {
    const cv::Mat p = io::read_png_u8(predicted / (id + ".png"));
    const cv::Mat g = io::read_png_u8(truth / (id + ".png"));
    for (int y = 0; y < g.rows; ++y) {
      for (int x = 0; x < g.cols; ++x) {
        const int t = g.at<std::uint8_t>(y, x);
        if (t == 255) continue;
        ++counted;
        right += p.at<std::uint8_t>(y, x) == t;
        background += t == 0;
      }
    }
  }
  return {static_cast<double>(right) / counted, static_cast<double>(background) / counted};
}

TEST(TrainSegLearns, TinyDeepLabFitsFourVocPhotosGroundTruth) {
  // configs/train-tiny.json as it ships (100 iterations of 4 crops at scale 0.5, from scratch),
  // then predict at the scale it was trained at: the same commands a user runs.
  const fs::path voc = clipes::testing::shared_path("data/voc-mini");
  CLIPES_REQUIRE_FILE(voc / "SegmentationClass");
  const fs::path tool = clipes::testing::bin_dir() / "clipes-train-seg";
  const fs::path dir = clipes::testing::make_temp_dir("train_seg_learns");
  const std::vector<std::string> ids{"2007_000032", "2007_000033", "2007_000250", "2007_003604"};
  std::string split;
  for (const auto& id : ids) split += id + "\n";
  io::write_file_atomic(dir / "split.txt", split);
  std::string out;
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(clipes::testing::run_command(
                tool.string() + " train --config " +
                    (clipes::testing::source_dir() / "configs/train-tiny.json").string() +
                    " --images " + (voc / "JPEGImages").string() + " --masks " +
                    (voc / "SegmentationClass").string() + " --split " +
                    (dir / "split.txt").string() + " --out " + (dir / "train").string() +
                    " --device cpu",
                &out),
            0)
      << out;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(clipes::testing::run_command(
                tool.string() + " predict --checkpoint " +
                    (dir / "train" / "model_final.pt").string() + " --images " +
                    (voc / "JPEGImages").string() + " --split " + (dir / "split.txt").string() +
                    " --out " + (dir / "pred").string() + " --scales 0.5 --device cpu",
                &out),
            0)
      << out;
  const Accuracy a = pixel_accuracy(dir / "pred", voc / "SegmentationClass", ids);
  std::printf("pixel accuracy %.4f (all background: %.4f) after 100 iterations, %.1f s\n",
              a.model, a.background, seconds);
  EXPECT_GE(a.model, 0.9);
  EXPECT_LT(a.background, 0.8);  // the bar is above what predicting background alone reaches
}

}  // namespace
}  // namespace clipes
