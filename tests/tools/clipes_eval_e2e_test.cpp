// The real clipes-eval binary on ../shared/data/voc-mini (PASCAL VOC ground truth) and on
// synthetic CAM archives; expected numbers are counted here from the PNGs, independently.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "clipes/io/files.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"
#include "support/test_support.h"

namespace clipes {
namespace {

namespace fs = std::filesystem;

fs::path voc_gt() { return testing::shared_path("data/voc-mini/SegmentationClass"); }

std::string tool() { return (testing::bin_dir() / "clipes-eval").string(); }

int run(const std::string& args, std::string* output) {
  return testing::run_command(tool() + " " + args, output);
}

nlohmann::json load_json(const fs::path& file) {
  return nlohmann::json::parse(io::read_file(file));
}

// Writes a copy of every VOC GT mask to `dir`, with `change` applied to each pixel value.
template <class Change>
void write_changed_copy(const fs::path& dir, Change change) {
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(voc_gt())) {
    cv::Mat m = io::read_png_u8(entry.path());
    for (int y = 0; y < m.rows; ++y)
      for (int x = 0; x < m.cols; ++x) m.at<std::uint8_t>(y, x) = change(m.at<std::uint8_t>(y, x));
    io::write_png_indexed(dir / entry.path().filename(), m, io::voc_palette());
  }
}

// Pixel count of every GT value over the VOC folder.
std::map<int, std::int64_t> gt_counts() {
  std::map<int, std::int64_t> counts;
  for (const auto& entry : fs::directory_iterator(voc_gt())) {
    const cv::Mat m = io::read_png_u8(entry.path());
    for (int y = 0; y < m.rows; ++y)
      for (int x = 0; x < m.cols; ++x) ++counts[m.at<std::uint8_t>(y, x)];
  }
  return counts;
}

TEST(ClipesEvalE2e, GroundTruthAgainstItselfIsPerfect) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const fs::path dir = testing::make_temp_dir("e2e_eval_self");
  std::string out;
  ASSERT_EQ(run("--gt " + voc_gt().string() + " --pred " + voc_gt().string() + " --json " +
                    (dir / "r.json").string() + " --markdown " + (dir / "r.md").string() +
                    " --confusion-png " + (dir / "c.png").string(),
                &out),
            0)
      << out;
  const nlohmann::json j = load_json(dir / "r.json");
  EXPECT_EQ(j["images"], 20);
  EXPECT_EQ(j["num_classes"], 21);
  const auto& s = j["settings"][0];
  EXPECT_EQ(s["miou"].get<double>(), 1.0);
  EXPECT_EQ(s["pixel_accuracy"].get<double>(), 1.0);
  EXPECT_EQ(s["coverage"].get<double>(), 1.0);
  const auto counts = gt_counts();
  EXPECT_EQ(s["pixels"]["counted"].get<std::int64_t>(),
            s["pixels"]["gt_valid"].get<std::int64_t>());
  EXPECT_EQ(s["classes"][15]["gt_pixels"].get<std::int64_t>(), counts.at(15));
  EXPECT_NE(out.find("mIoU             100.00 %  headline (gt-or-pred)"), std::string::npos) << out;
  EXPECT_NE(out.find("inferred: VOC"), std::string::npos) << out;
  EXPECT_NE(out.find("person"), std::string::npos) << out;
  EXPECT_NE(io::read_file(dir / "r.md").find("| **mIoU** | **100.00 %** |"), std::string::npos);
  const cv::Mat png = cv::imread((dir / "c.png").string(), cv::IMREAD_COLOR);
  EXPECT_GT(png.cols, 21 * 30);
}

TEST(ClipesEvalE2e, OneClassSwappedGivesTheHandComputedMiou) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const auto counts = gt_counts();
  const int a = 15, b = 12;  // every person pixel predicted as dog
  ASSERT_GT(counts.count(a), 0u);
  ASSERT_GT(counts.count(b), 0u);
  int present = 0;
  std::int64_t valid = 0;
  for (const auto& [value, n] : counts) {
    if (value < 21) ++present, valid += n;
  }
  const fs::path dir = testing::make_temp_dir("e2e_eval_swap");
  write_changed_copy(dir / "pred",
                     [&](int v) { return static_cast<std::uint8_t>(v == a ? b : v); });
  std::string out;
  ASSERT_EQ(run("--gt " + voc_gt().string() + " --pred " + (dir / "pred").string() +
                    " --threads 2 --json " + (dir / "r.json").string(),
                &out),
            0)
      << out;
  // person: IoU 0; dog: tp = n_dog, union = n_dog + n_person; every other class: 1.
  const double na = static_cast<double>(counts.at(a)), nb = static_cast<double>(counts.at(b));
  const double expected = (present - 2 + nb / (na + nb)) / present;
  const nlohmann::json report = load_json(dir / "r.json");
  const nlohmann::json& s = report["settings"][0];
  EXPECT_NEAR(s["miou"].get<double>(), expected, 1e-12);
  EXPECT_NEAR(s["pixel_accuracy"].get<double>(), 1.0 - na / static_cast<double>(valid), 1e-12);
  EXPECT_EQ(s["classes"][a]["iou"].get<double>(), 0.0);
  EXPECT_NEAR(s["classes"][b]["iou"].get<double>(), nb / (na + nb), 1e-12);
  EXPECT_EQ(s["confusion"][a][b].get<std::int64_t>(), counts.at(a));
}

TEST(ClipesEvalE2e, ClassPredictedButAbsentFromGtCountsWithIouZero) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const auto counts = gt_counts();
  int present = 0;
  for (const auto& [value, n] : counts) present += value < 21 ? 1 : 0;
  const fs::path dir = testing::make_temp_dir("e2e_eval_absent");
  // Person pixels predicted as class 21, which no GT pixel holds (n = 22 classes).
  write_changed_copy(dir / "pred",
                     [](int v) { return static_cast<std::uint8_t>(v == 15 ? 21 : v); });
  std::string out;
  ASSERT_EQ(run("--gt " + voc_gt().string() + " --pred " + (dir / "pred").string() +
                    " --num-classes 22 --json " + (dir / "r.json").string(),
                &out),
            0)
      << out;
  const nlohmann::json report = load_json(dir / "r.json");
  const nlohmann::json& s = report["settings"][0];
  // nanmean: person (0) and class 21 (0) both count: (present - 1) / (present + 1).
  EXPECT_NEAR(s["miou"].get<double>(), (present - 1.0) / (present + 1.0), 1e-12);
  EXPECT_NEAR(s["miou_gt_classes_only"].get<double>(), (present - 1.0) / present, 1e-12);
  EXPECT_EQ(s["classes_predicted_not_in_gt"], std::vector<int>{21});
  EXPECT_NE(out.find("predicted but absent from GT, counted with IoU 0 in gt-or-pred, left out of "
                     "gt: class 21"),
            std::string::npos)
      << out;
}

TEST(ClipesEvalE2e, MatchesTheNumpyReferenceScores) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const fs::path script = testing::source_dir() / "tests/eval/reference_scores.py";
  if (testing::run_command("/usr/bin/python3 -c 'import numpy, PIL'") != 0) {
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with numpy and PIL is absent";
  }
  const fs::path dir = testing::make_temp_dir("e2e_eval_numpy");
  std::uint32_t state = 12345;
  write_changed_copy(dir / "pred", [&](int v) {
    state = state * 1664525u + 1013904223u;
    const std::uint32_t r = state >> 24;
    if (r < 40) return static_cast<std::uint8_t>(r % 21);  // wrong class
    if (r < 50) return static_cast<std::uint8_t>(255);     // no prediction
    if (v == 7) return static_cast<std::uint8_t>(9);       // car never predicted
    return static_cast<std::uint8_t>(v == 255 ? 0 : v);
  });
  std::string ref;
  ASSERT_EQ(testing::run_command("/usr/bin/python3 " + script.string() + " " + voc_gt().string() +
                                     " " + (dir / "pred").string() + " 21",
                                 &ref),
            0)
      << ref;
  std::string out;
  ASSERT_EQ(run("--gt " + voc_gt().string() + " --pred " + (dir / "pred").string() +
                    " --pred-ignore background --json " + (dir / "r.json").string(),
                &out),
            0)
      << out;
  const nlohmann::json r = nlohmann::json::parse(ref);
  const nlohmann::json report = load_json(dir / "r.json");
  const nlohmann::json& s = report["settings"][0];
  EXPECT_NEAR(s["pixel_accuracy"].get<double>(), r["Pixel Accuracy"].get<double>(), 1e-9);
  EXPECT_NEAR(s["mean_accuracy"].get<double>(), r["Mean Accuracy"].get<double>(), 1e-9);
  EXPECT_NEAR(s["fw_iou"].get<double>(), r["Frequency Weighted IoU"].get<double>(), 1e-9);
  EXPECT_NEAR(s["miou"].get<double>(), r["Mean IoU"].get<double>(), 1e-9);
  for (int k = 0; k < 21; ++k) {
    EXPECT_NEAR(s["classes"][k]["iou"].get<double>(), r["Class IoU"][k].get<double>(), 1e-9) << k;
  }
  EXPECT_LT(s["coverage"].get<double>(), 1.0);
}

// Label counts of a labelling against GT, for expected scores of the CAM test.
double miou_of(const std::vector<cv::Mat>& gts, const std::vector<std::vector<int>>& labels) {
  std::map<int, std::int64_t> tp, gt_n, pred_n;
  for (std::size_t i = 0; i < gts.size(); ++i) {
    for (int p = 0; p < static_cast<int>(gts[i].total()); ++p) {
      const int g = gts[i].data[p];
      if (g == 255) continue;
      const int l = labels[i][static_cast<std::size_t>(p)];
      ++gt_n[g];
      ++pred_n[l];
      if (g == l) ++tp[g];
    }
  }
  double sum = 0;
  int classes = 0;
  for (int k = 0; k < 21; ++k) {
    const std::int64_t u = gt_n[k] + pred_n[k] - tp[k];
    if (u == 0) continue;
    sum += static_cast<double>(tp[k]) / static_cast<double>(u);
    ++classes;
  }
  return sum / classes;
}

TEST(ClipesEvalE2e, CamArchivesEvaluateEverySettingAndMarkTheBest) {
  const fs::path dir = testing::make_temp_dir("e2e_eval_cams");
  // Two 2x3 images. Per pixel: GT id and (cam of key 2 -> id 3, cam of key 7 -> id 8).
  // α=1: bg = 1 - max; α=2: bg = (1 - max)^2; t: bg = t. Expected labels worked out by hand.
  struct Pixel {
    int gt;
    float c3, c8;
  };
  const std::vector<std::vector<Pixel>> images = {{{0, 0.3f, 0.1f},
                                                   {3, 0.6f, 0.1f},
                                                   {8, 0.1f, 0.45f},
                                                   {255, 0.9f, 0.0f},
                                                   {3, 0.8f, 0.7f},
                                                   {0, 0.0f, 0.0f}},
                                                  {{8, 0.2f, 0.5f},
                                                   {8, 0.1f, 0.4f},
                                                   {0, 0.25f, 0.25f},
                                                   {3, 0.55f, 0.5f},
                                                   {0, 0.2f, 0.1f},
                                                   {8, 0.3f, 0.45f}}};
  const std::vector<std::vector<int>> alpha1 = {{0, 3, 0, 3, 3, 0}, {0, 0, 0, 3, 0, 0}};
  const std::vector<std::vector<int>> alpha2 = {{0, 3, 8, 3, 3, 0}, {8, 8, 0, 3, 0, 8}};
  const std::vector<std::vector<int>> t02 = {{3, 3, 8, 3, 3, 0}, {8, 8, 3, 3, 0, 8}};
  std::vector<cv::Mat> gts;
  for (std::size_t i = 0; i < images.size(); ++i) {
    cv::Mat gt(2, 3, CV_8UC1);
    std::vector<float> cams(12);
    for (int p = 0; p < 6; ++p) {
      gt.data[p] = static_cast<std::uint8_t>(images[i][p].gt);
      cams[p] = images[i][p].c3;
      cams[6 + p] = images[i][p].c8;
    }
    gts.push_back(gt);
    const std::string id = "im" + std::to_string(i);
    io::write_png_indexed(dir / "gt" / (id + ".png"), gt, io::voc_palette());
    const std::vector<std::int64_t> keys = {2, 7};
    const float scale = 1.0f;
    io::write_npz(dir / "cams" / (id + ".npz"),
                  {{"keys", io::NpyArray::from<std::int64_t>({2}, keys.data())},
                   {"cams", i == 0 ? io::NpyArray::float16_from({2, 2, 3}, cams.data())
                                   : io::NpyArray::from<float>({2, 2, 3}, cams.data())},
                   {"scale", io::NpyArray::from<float>({1}, &scale)}});
  }
  std::string out;
  ASSERT_EQ(run("--gt " + (dir / "gt").string() + " --cams " + (dir / "cams").string() +
                    " --bg-threshold 0.2 --json " + (dir / "r.json").string(),
                &out),
            0)
      << out;
  const nlohmann::json j = load_json(dir / "r.json");
  ASSERT_EQ(j["settings"].size(), 3u);
  EXPECT_EQ(j["settings"][0]["name"], "(1-max)^1");
  EXPECT_EQ(j["settings"][1]["name"], "(1-max)^2");
  EXPECT_EQ(j["settings"][2]["name"], "t=0.2");
  EXPECT_NEAR(j["settings"][0]["miou"].get<double>(), miou_of(gts, alpha1), 1e-12);
  EXPECT_NEAR(j["settings"][1]["miou"].get<double>(), miou_of(gts, alpha2), 1e-12);
  EXPECT_NEAR(j["settings"][2]["miou"].get<double>(), miou_of(gts, t02), 1e-12);
  EXPECT_DOUBLE_EQ(j["settings"][1]["miou"].get<double>(), 1.0);
  EXPECT_EQ(j["best"], 1);
  EXPECT_EQ(j["settings"][1]["best"], true);
  EXPECT_NE(out.find("* (1-max)^2"), std::string::npos) << out;
}

TEST(ClipesEvalE2e, DataErrorsExitOneAndUsageErrorsExitTwo) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const fs::path dir = testing::make_temp_dir("e2e_eval_errors");
  write_changed_copy(dir / "pred", [](int v) { return static_cast<std::uint8_t>(v); });
  fs::remove(dir / "pred" / "2009_000177.png");
  const std::string base = "--gt " + voc_gt().string() + " --pred " + (dir / "pred").string();
  std::string out;
  EXPECT_EQ(run(base, &out), 1) << out;
  EXPECT_NE(out.find("missing prediction " + (dir / "pred" / "2009_000177.png").string()),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("evaluation failed: 1 of 20 images"), std::string::npos) << out;
  EXPECT_EQ(out.find("mIoU"), std::string::npos) << "no scores after a failure:\n" << out;

  EXPECT_EQ(run(base + " --allow-missing --json " + (dir / "r.json").string(), &out), 0) << out;
  EXPECT_NE(out.find("missing predictions counted as all background: 1"), std::string::npos) << out;
  EXPECT_EQ(load_json(dir / "r.json")["missing"], std::vector<std::string>{"2009_000177"});
  EXPECT_LT(load_json(dir / "r.json")["settings"][0]["miou"].get<double>(), 1.0);

  EXPECT_EQ(run(base + " --cams " + (dir / "pred").string(), &out), 2) << out;
  EXPECT_EQ(run("--pred " + (dir / "pred").string(), &out), 2) << out;
  EXPECT_EQ(run("--gt " + voc_gt().string(), &out), 2) << out;
  EXPECT_EQ(run(base + " --cams-typo x", &out), 2) << out;
  EXPECT_EQ(run("--gt " + voc_gt().string() + " --cams " + (dir / "pred").string() +
                    " --bg-threshold 1.5",
                &out),
            2)
      << out;
  EXPECT_NE(out.find("threshold must be in [0, 1], got 1.5"), std::string::npos) << out;
  EXPECT_EQ(run(base + " --bg-threshold 0.5", &out), 2) << out;  // CAM option without --cams
  EXPECT_EQ(run("--help", &out), 0) << out;
  EXPECT_NE(out.find("--confusion-png"), std::string::npos);
}

TEST(ClipesEvalE2e, ClassNamesComeFromTheConfig) {
  CLIPES_REQUIRE_FILE(voc_gt());
  const fs::path dir = testing::make_temp_dir("e2e_eval_config");
  std::string classes;
  for (int k = 0; k < 20; ++k) {
    classes += (k ? "," : "") + std::string("{\"name\": \"thing") + std::to_string(k) +
               "\", \"prompt\": \"x\"}";
  }
  io::write_file_atomic(dir / "c.json", "{\"classes\": [" + classes + "], \"cam\": {}}");
  std::string out;
  ASSERT_EQ(run("--gt " + voc_gt().string() + " --pred " + voc_gt().string() + " --config " +
                    (dir / "c.json").string(),
                &out),
            0)
      << out;
  EXPECT_NE(out.find("  15  thing14"), std::string::npos) << out;
  EXPECT_NE(out.find("from the class names"), std::string::npos) << out;
}

}  // namespace
}  // namespace clipes
