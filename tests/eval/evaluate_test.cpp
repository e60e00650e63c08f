#include "clipes/eval/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <opencv2/core.hpp>

#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes::eval {
namespace {

namespace fs = std::filesystem;
using Kind = BackgroundSetting::Kind;

cv::Mat filled(int rows, int cols, int value) {
  return cv::Mat(rows, cols, CV_8UC1, cv::Scalar(value));
}

void write_mask(const fs::path& file, const cv::Mat& m) {
  io::write_png_indexed(file, m, io::voc_palette());
}

// A GT folder with three 4x3 images and predictions equal to it, except where a test changes them.
struct Fixture {
  fs::path dir, gt, pred;
  explicit Fixture(const std::string& name) : dir(testing::make_temp_dir(name)) {
    gt = dir / "gt";
    pred = dir / "pred";
    fs::create_directories(gt);
    fs::create_directories(pred);
    for (int i = 0; i < 3; ++i) {
      cv::Mat m = filled(3, 4, 0);
      m.at<std::uint8_t>(0, 0) = static_cast<std::uint8_t>(i + 1);
      m.at<std::uint8_t>(1, 1) = 255;
      write_mask(gt / id_file(i), m);
      write_mask(pred / id_file(i), m);
    }
  }
  static std::string id_file(int i) { return "img" + std::to_string(i) + ".png"; }
  EvalOptions options() const {
    EvalOptions o;
    o.gt_dir = gt;
    o.pred_dir = pred;
    o.threads = 2;
    return o;
  }
};

std::string all_reasons(const EvalResult& r) {
  std::string out;
  for (const ImageFailure& f : r.failures) out += f.id + ": " + f.reason + "\n";
  return out;
}

TEST(Evaluate, PerfectPredictionsGiveOneAndInferVoc) {
  Fixture f("eval_perfect");
  NullReporter reporter;
  const EvalResult r = evaluate(f.options(), reporter);
  ASSERT_TRUE(r.ok()) << all_reasons(r);
  EXPECT_EQ(r.images, 3);
  EXPECT_EQ(r.num_classes, 21);
  EXPECT_NE(r.num_classes_source.find("inferred: VOC"), std::string::npos);
  EXPECT_EQ(r.class_names[15], "person");
  ASSERT_EQ(r.settings.size(), 1u);
  EXPECT_DOUBLE_EQ(r.settings[0].scores.mean_iou, 1.0);
  EXPECT_EQ(r.settings[0].scores.counted, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(r.settings[0].confusion.at(0, 0), 3 * 10);
  EXPECT_EQ(r.settings[0].coverage.gt_valid, 3 * 11);
}

TEST(Evaluate, MissingPredictionIsAFailureNamingTheFile) {
  Fixture f("eval_missing");
  fs::remove(f.pred / "img1.png");
  NullReporter reporter;
  const EvalResult r = evaluate(f.options(), reporter);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].id, "img1");
  EXPECT_NE(r.failures[0].reason.find("missing prediction " + (f.pred / "img1.png").string()),
            std::string::npos)
      << r.failures[0].reason;
  EXPECT_NE(r.failures[0].reason.find("--allow-missing"), std::string::npos);
  EXPECT_TRUE(r.settings.empty());
}

TEST(Evaluate, AllowMissingCountsAllBackground) {
  Fixture f("eval_allow_missing");
  fs::remove(f.pred / "img1.png");
  EvalOptions o = f.options();
  o.allow_missing = true;
  NullReporter reporter;
  const EvalResult r = evaluate(o, reporter);
  ASSERT_TRUE(r.ok()) << all_reasons(r);
  EXPECT_EQ(r.missing, (std::vector<std::string>{"img1"}));
  const ConfusionMatrix& m = r.settings[0].confusion;
  EXPECT_EQ(m.at(2, 0), 1);  // img1's class-2 pixel predicted as background
  EXPECT_EQ(m.at(2, 2), 0);
  EXPECT_EQ(m.at(0, 0), 30);
  // classes 1, 3 perfect, class 2 IoU 0, background 30 / 31.
  EXPECT_NEAR(r.settings[0].scores.mean_iou, (30.0 / 31 + 1 + 0 + 1) / 4, 1e-12);
}

TEST(Evaluate, SizeMismatchIsAFailureNamingBothFiles) {
  Fixture f("eval_size");
  write_mask(f.pred / "img2.png", filled(3, 5, 0));
  NullReporter reporter;
  const EvalResult r = evaluate(f.options(), reporter);
  ASSERT_EQ(r.failures.size(), 1u) << all_reasons(r);
  const std::string& why = r.failures[0].reason;
  EXPECT_NE(
      why.find((f.pred / "img2.png").string() + ": size 5x3 does not match the ground truth " +
               (f.gt / "img2.png").string() + " (4x3)"),
      std::string::npos)
      << why;
}

TEST(Evaluate, ValueBeyondTheClassesIsAFailure) {
  Fixture f("eval_beyond");
  cv::Mat p = filled(3, 4, 0);
  p.at<std::uint8_t>(2, 3) = 30;
  write_mask(f.pred / "img0.png", p);
  EvalOptions o = f.options();
  o.num_classes = 21;
  NullReporter reporter;
  const EvalResult r = evaluate(o, reporter);
  ASSERT_EQ(r.failures.size(), 1u) << all_reasons(r);
  EXPECT_NE(r.failures[0].reason.find((f.pred / "img0.png").string() +
                                      ": predicted value 30 is beyond the 21 classes (0..20"),
            std::string::npos)
      << r.failures[0].reason;
  // The same in the ground truth.
  write_mask(f.pred / "img0.png", filled(3, 4, 0));
  cv::Mat g = filled(3, 4, 0);
  g.at<std::uint8_t>(0, 0) = 21;
  write_mask(f.gt / "img0.png", g);
  const EvalResult r2 = evaluate(o, reporter);
  ASSERT_EQ(r2.failures.size(), 1u) << all_reasons(r2);
  EXPECT_NE(r2.failures[0].reason.find("ground-truth value 21 is beyond the 21 classes"),
            std::string::npos)
      << r2.failures[0].reason;
}

TEST(Evaluate, UnreadablePngIsAFailureAndEveryBadImageIsListed) {
  Fixture f("eval_unreadable");
  io::write_file_atomic(f.pred / "img0.png", "this is not a png");
  fs::remove(f.pred / "img2.png");
  NullReporter reporter;
  EvalOptions o = f.options();
  o.threads = 3;
  const EvalResult r = evaluate(o, reporter);
  ASSERT_EQ(r.failures.size(), 2u) << all_reasons(r);
  EXPECT_EQ(r.failures[0].id, "img0");
  EXPECT_EQ(r.failures[0].reason, (f.pred / "img0.png").string() + ": not a PNG file");
  EXPECT_EQ(r.failures[1].id, "img2");
  EXPECT_NE(r.failures[1].reason.find("missing prediction"), std::string::npos);
}

TEST(Evaluate, MissingGroundTruthOfASplitIdIsAFailure) {
  Fixture f("eval_split");
  io::write_file_atomic(f.dir / "split.txt", "img0\nimg2\nnope\n");
  EvalOptions o = f.options();
  o.split_file = f.dir / "split.txt";
  NullReporter reporter;
  const EvalResult r = evaluate(o, reporter);
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_EQ(r.failures[0].reason, "missing ground truth " + (f.gt / "nope.png").string());
}

TEST(Evaluate, InfersCocoAndRejectsValuesBeyondBoth) {
  Fixture f("eval_infer");
  cv::Mat m = filled(3, 4, 0);
  m.at<std::uint8_t>(0, 0) = 50;
  write_mask(f.gt / "img0.png", m);
  write_mask(f.pred / "img0.png", m);
  NullReporter reporter;
  const EvalResult r = evaluate(f.options(), reporter);
  ASSERT_TRUE(r.ok()) << all_reasons(r);
  EXPECT_EQ(r.num_classes, 81);
  EXPECT_EQ(r.class_names[50], "orange");  // COCO class index 49
  m.at<std::uint8_t>(0, 0) = 100;
  write_mask(f.pred / "img0.png", m);
  write_mask(f.gt / "img0.png", m);
  try {
    evaluate(f.options(), reporter);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("values up to 100"), std::string::npos) << what;
    EXPECT_NE(what.find("img0.png"), std::string::npos) << what;
    EXPECT_NE(what.find("--num-classes"), std::string::npos) << what;
  }
  EvalOptions o = f.options();
  o.num_classes = 101;
  const EvalResult given = evaluate(o, reporter);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(given.class_names[100], "class 100");
}

TEST(Evaluate, ThreadCountDoesNotChangeTheMatrix) {
  const fs::path dir = testing::make_temp_dir("eval_threads");
  fs::create_directories(dir / "gt");
  fs::create_directories(dir / "pred");
  cv::RNG rng(5);
  for (int i = 0; i < 9; ++i) {
    cv::Mat g(17, 23, CV_8UC1), p(17, 23, CV_8UC1);
    rng.fill(g, cv::RNG::UNIFORM, 0, 6);
    rng.fill(p, cv::RNG::UNIFORM, 0, 6);
    g.setTo(255, g == 5);
    p.setTo(255, p == 4);
    write_mask(dir / "gt" / (std::to_string(i) + ".png"), g);
    write_mask(dir / "pred" / (std::to_string(i) + ".png"), p);
  }
  EvalOptions o;
  o.gt_dir = dir / "gt";
  o.pred_dir = dir / "pred";
  NullReporter reporter;
  o.threads = 1;
  const EvalResult one = evaluate(o, reporter);
  o.threads = 4;
  const EvalResult four = evaluate(o, reporter);
  ASSERT_TRUE(one.ok() && four.ok());
  EXPECT_EQ(four.threads, 4);
  EXPECT_EQ(one.settings[0].confusion.counts, four.settings[0].confusion.counts);
  EXPECT_GT(one.settings[0].confusion.total(), 0);
}

TEST(Evaluate, CamArchivesAreLabelledPerSettingAndTheBestMarked) {
  const fs::path dir = testing::make_temp_dir("eval_cams");
  fs::create_directories(dir / "gt");
  // GT 1x3: background, class id 3 (key 2), class id 8 (key 7).
  cv::Mat gt(1, 3, CV_8UC1);
  gt.at<std::uint8_t>(0, 0) = 0;
  gt.at<std::uint8_t>(0, 1) = 3;
  gt.at<std::uint8_t>(0, 2) = 8;
  write_mask(dir / "gt" / "a.png", gt);
  // Per pixel (key 2, key 7): (0.3, 0.1), (0.6, 0.1), (0.1, 0.45).
  // α = 1 -> bg 0.7, 0.4, 0.55: [0, 3, 0]; α = 2 -> bg 0.49, 0.16, 0.3025: [0, 3, 8].
  const std::vector<float> cams = {0.3f, 0.6f, 0.1f, 0.1f, 0.1f, 0.45f};
  const std::vector<std::int64_t> keys = {2, 7};
  io::write_npz(dir / "cams" / "a.npz",
                {{"keys", io::NpyArray::from<std::int64_t>({2}, keys.data())},
                 {"cams", io::NpyArray::from<float>({2, 1, 3}, cams.data())}});
  EvalOptions o;
  o.gt_dir = dir / "gt";
  o.cams_dir = dir / "cams";
  o.num_classes = 21;
  o.backgrounds.push_back({Kind::kThreshold, 0.5});
  NullReporter reporter;
  const EvalResult r = evaluate(o, reporter);
  ASSERT_TRUE(r.ok()) << all_reasons(r);
  ASSERT_EQ(r.settings.size(), 3u);
  EXPECT_EQ(r.settings[0].name, "(1-max)^1");
  EXPECT_EQ(r.settings[2].name, "t=0.5");
  EXPECT_NEAR(r.settings[0].scores.mean_iou, (0.5 + 1 + 0) / 3, 1e-12);
  EXPECT_DOUBLE_EQ(r.settings[1].scores.mean_iou, 1.0);
  EXPECT_NEAR(r.settings[2].scores.mean_iou, (0.5 + 1 + 0) / 3, 1e-12);  // t = 0.5: as α = 1
  EXPECT_EQ(r.best, 1);
  // A key beyond the classes names the archive.
  const std::vector<std::int64_t> bad = {2, 25};
  io::write_npz(dir / "cams" / "a.npz",
                {{"keys", io::NpyArray::from<std::int64_t>({2}, bad.data())},
                 {"cams", io::NpyArray::from<float>({2, 1, 3}, cams.data())}});
  const EvalResult r2 = evaluate(o, reporter);
  ASSERT_EQ(r2.failures.size(), 1u);
  EXPECT_NE(r2.failures[0].reason.find("a.npz: key 25 is beyond the 21 classes"), std::string::npos)
      << r2.failures[0].reason;
  // A missing member is named too.
  io::write_npz(dir / "cams" / "a.npz",
                {{"keys", io::NpyArray::from<std::int64_t>({2}, keys.data())}});
  const EvalResult r3 = evaluate(o, reporter);
  ASSERT_EQ(r3.failures.size(), 1u);
  EXPECT_NE(r3.failures[0].reason.find("cams"), std::string::npos) << r3.failures[0].reason;
}

TEST(ReadSplitIds, TakesTheFirstTokenAndStripsPaths) {
  const fs::path dir = testing::make_temp_dir("eval_read_split");
  io::write_file_atomic(dir / "s.txt",
                        "2007_000032\n\n# comment\n/JPEGImages/2007_000033.jpg "
                        "/SegmentationClassAug/2007_000033.png\nCOCO_val2014_000000000042 0 5\r\n");
  EXPECT_EQ(data::read_split_ids(dir / "s.txt"),
            (std::vector<std::string>{"2007_000032", "2007_000033", "COCO_val2014_000000000042"}));
  io::write_file_atomic(dir / "empty.txt", "\n");
  EXPECT_THROW(data::read_split_ids(dir / "empty.txt"), Error);
  EXPECT_THROW(data::read_split_ids(dir / "absent.txt"), Error);
}

TEST(Validate, RejectsOptionsThatCannotRun) {
  EvalOptions o;
  o.gt_dir = "gt";
  EXPECT_THROW(validate(o), Error);  // neither pred nor cams
  o.pred_dir = "p";
  o.cams_dir = "c";
  EXPECT_THROW(validate(o), Error);  // both
  o.pred_dir.clear();
  EXPECT_NO_THROW(validate(o));
  o.backgrounds = {{Kind::kPower, 0.0}};
  EXPECT_THROW(validate(o), Error);
  o.backgrounds = {{Kind::kThreshold, 1.5}};
  EXPECT_THROW(validate(o), Error);
  o.backgrounds = {{Kind::kThreshold, 0.5}};
  o.num_classes = 21;
  o.class_names = {"background", "a"};
  EXPECT_THROW(validate(o), Error);
}

}  // namespace
}  // namespace clipes::eval
