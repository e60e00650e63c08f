#include "clipes/eval/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace clipes::eval {
namespace {

// A result built from a hand-made 4-class matrix: class 2 predicted but not in GT, class 3 absent.
EvalResult hand_result(bool cams) {
  EvalResult r;
  r.cams = cams;
  r.num_classes = 4;
  r.num_classes_source = "given";
  r.class_names = {"background", "cat", "dog", "horse"};
  r.images = 2;
  auto setting = [](const std::string& name, std::int64_t cat_as_dog) {
    SettingResult s;
    s.name = name;
    s.confusion = ConfusionMatrix(4);
    s.confusion.add(0, 0, 90);
    s.confusion.add(1, 1, 10 - cat_as_dog);
    s.confusion.add(1, 2, cat_as_dog);
    s.coverage = {100, 100};
    s.scores = compute_scores(s.confusion);
    return s;
  };
  if (cams) {
    r.settings.push_back(setting("(1-max)^1", 4));
    r.settings.back().background = BackgroundSetting{BackgroundSetting::Kind::kPower, 1.0};
    r.settings.push_back(setting("(1-max)^2", 2));
    r.settings.back().background = BackgroundSetting{BackgroundSetting::Kind::kPower, 2.0};
    r.best = 1;
  } else {
    r.settings.push_back(setting("prediction", 2));
  }
  return r;
}

TEST(Report, TableShowsNamesScoresAndWhichClassesCount) {
  const std::string t = format_table(hand_result(false));
  // cat: IoU 8/10, precision 8/8, recall 8/10; dog: IoU 0; mIoU = (1 + 0.8 + 0) / 3.
  EXPECT_NE(t.find("   1  cat"), std::string::npos) << t;
  EXPECT_NE(t.find("80.00       100.00     80.00"), std::string::npos) << t;
  // Both mIoU definitions, named; the headline (default gt-or-pred) first.
  EXPECT_NE(t.find("mIoU              60.00 %  headline (gt-or-pred): nanmean over 3 classes with "
                   "GT or predicted pixels (deeplab-pytorch scores())"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("mIoU gt           90.00 %  mean over 2 classes with GT pixels (CLIP-ES's own "
                   "eval)"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("absent from GT and predictions, left out: horse"), std::string::npos) << t;
  EXPECT_NE(t.find("predicted but absent from GT, counted with IoU 0 in gt-or-pred, left out of "
                   "gt: dog"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("pixel acc         98.00 %"), std::string::npos) << t;
  EXPECT_NE(t.find("coverage         100.00 %"), std::string::npos) << t;
  // --miou gt: the other definition heads the report.
  EvalResult gt = hand_result(false);
  gt.headline = MiouDefinition::kGt;
  const std::string g = format_table(gt);
  EXPECT_NE(g.find("mIoU              90.00 %  headline (gt): mean over 2 classes"),
            std::string::npos)
      << g;
  EXPECT_NE(g.find("mIoU gt-or-pred   60.00 %  nanmean over 3 classes"), std::string::npos) << g;
  EXPECT_NE(format_markdown(gt).find("| **mIoU** | **90.00 %** |\n| mIoU gt-or-pred | 60.00 % |"),
            std::string::npos);
  // The absent class shows dashes, not numbers.
  EXPECT_NE(t.find("   3  horse             -            -         -"), std::string::npos) << t;
}

TEST(Report, CamTableListsEverySettingAndMarksTheBest) {
  const std::string t = format_table(hand_result(true));
  EXPECT_NE(t.find("  (1-max)^1"), std::string::npos) << t;
  EXPECT_NE(t.find("* (1-max)^2"), std::string::npos) << t;
  EXPECT_NE(t.find("per class, setting (1-max)^2"), std::string::npos) << t;
  const std::string md = format_markdown(hand_result(true));
  EXPECT_NE(md.find("| `(1-max)^2` | 60.00 | 90.00 | 98.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("**best**"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | cat | 80.00 | 100.00 | 80.00 | 10 | 8 |"), std::string::npos) << md;
}

TEST(Report, JsonHoldsEveryNumberWithNullForNaN) {
  const EvalResult r = hand_result(true);
  const nlohmann::json j = nlohmann::json::parse(format_json(r));
  EXPECT_EQ(j["mode"], "cams");
  EXPECT_EQ(j["best"], 1);
  ASSERT_EQ(j["settings"].size(), 2u);
  const auto& s0 = j["settings"][0];
  EXPECT_EQ(s0["name"], "(1-max)^1");
  EXPECT_EQ(s0["best"], false);
  EXPECT_EQ(s0["background"]["alpha"], 1.0);
  EXPECT_DOUBLE_EQ(s0["miou"].get<double>(), r.settings[0].scores.mean_iou);
  EXPECT_DOUBLE_EQ(s0["fw_iou"].get<double>(), r.settings[0].scores.fw_iou);
  EXPECT_DOUBLE_EQ(s0["mean_accuracy"].get<double>(), r.settings[0].scores.mean_accuracy);
  EXPECT_TRUE(s0["classes"][3]["iou"].is_null());
  EXPECT_EQ(s0["classes"][1]["name"], "cat");
  EXPECT_EQ(s0["classes"][1]["true_positives"], 6);
  EXPECT_EQ(s0["miou_classes"], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(s0["classes_predicted_not_in_gt"], (std::vector<int>{2}));
  EXPECT_EQ(s0["classes_absent"], (std::vector<int>{3}));
  EXPECT_EQ(s0["confusion"][1][2], 4);
  EXPECT_EQ(s0["pixels"]["gt_valid"], 100);
}

}  // namespace
}  // namespace clipes::eval
