#include "clipes/eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace clipes::eval {

namespace {

std::string pct(double v) { return std::isnan(v) ? "-" : fmt::format("{:.2f}", 100.0 * v); }

// 1234567 -> "1,234,567".
std::string thousands(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string name_list(const std::vector<int>& ids, const std::vector<std::string>& names) {
  std::string out;
  for (int id : ids) out += (out.empty() ? "" : ", ") + names[static_cast<std::size_t>(id)];
  return out;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

std::string prediction_text(const EvalResult& r) {
  if (r.cams) return "CAMs (background = (1 - max cam)^alpha or a threshold; argmax)";
  return r.pred_ignore == PredIgnore::kExclude
             ? "PNG masks (255 = no prediction: left out, see coverage)"
             : "PNG masks (255 = no prediction: counted as background)";
}

std::string header(const EvalResult& r) {
  return fmt::format("{} images, n = {} classes with background ({}), {}", r.images, r.num_classes,
                     r.num_classes_source, prediction_text(r));
}

// What the mIoU of `definition` averages, with its class count.
std::string miou_text(const Scores& s, MiouDefinition definition) {
  const std::size_t gt_classes = s.counted.size() - s.predicted_not_in_gt.size();
  return definition == MiouDefinition::kGt
             ? fmt::format("mean over {} with GT pixels (CLIP-ES's own eval)",
                           plural(gt_classes, "class", "classes"))
             : fmt::format("nanmean over {} with GT or predicted pixels (deeplab-pytorch scores())",
                           plural(s.counted.size(), "class", "classes"));
}

MiouDefinition other_than(MiouDefinition d) {
  return d == MiouDefinition::kGt ? MiouDefinition::kGtOrPred : MiouDefinition::kGt;
}

// The two mIoU lines as (label, value, text), the headline first, then notes on the classes.
struct MiouLine {
  std::string label;
  double value;
  std::string text;
};
std::vector<MiouLine> miou_lines(const Scores& s, MiouDefinition headline,
                                 const std::vector<std::string>& names) {
  const MiouDefinition other = other_than(headline);
  std::vector<MiouLine> lines{
      {"mIoU", mean_iou(s, headline),
       fmt::format("headline ({}): {}", to_string(headline), miou_text(s, headline))},
      {fmt::format("mIoU {}", to_string(other)), mean_iou(s, other), miou_text(s, other)}};
  if (!s.absent.empty()) {
    lines.push_back(
        {"", NAN, fmt::format("absent from GT and predictions, left out: {}",
                              name_list(s.absent, names))});
  }
  if (!s.predicted_not_in_gt.empty()) {
    lines.push_back({"", NAN,
                     fmt::format("predicted but absent from GT, counted with IoU 0 in gt-or-pred, "
                                 "left out of gt: {}",
                                 name_list(s.predicted_not_in_gt, names))});
  }
  return lines;
}

std::string coverage_text(const EvalResult& r, const Coverage& c) {
  return fmt::format("{} of {} GT pixels carry a prediction", thousands(c.predicted),
                     thousands(c.gt_valid)) +
         (r.pred_ignore == PredIgnore::kBackground && !r.cams ? "; the rest count as background"
                                                              : "");
}

nlohmann::ordered_json number(double v) {
  return std::isnan(v) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v);
}

nlohmann::ordered_json background_json(const BackgroundSetting& b) {
  if (b.kind == BackgroundSetting::Kind::kThreshold) {
    return {{"kind", "threshold"}, {"threshold", b.value}};
  }
  return {{"kind", "power"}, {"alpha", b.value}};
}

}  // namespace

std::string format_table(const EvalResult& r) {
  std::string out = "clipes-eval: " + header(r) + "\n";
  if (!r.missing.empty()) {
    out += fmt::format("missing predictions counted as all background: {} (first: {})\n",
                       r.missing.size(), r.missing.front());
  }
  if (r.cams) {
    out += fmt::format("\nbackground settings (* = best mIoU {}):\n", to_string(r.headline));
    out += fmt::format("  {:<14} {:>8} {:>10} {:>12} {:>11} {:>9}\n", "setting",
                       fmt::format("mIoU {}", to_string(r.headline)),
                       fmt::format("{} %", to_string(other_than(r.headline))), "pixel acc %",
                       "mean acc %", "fwIoU %");
    for (std::size_t i = 0; i < r.settings.size(); ++i) {
      const Scores& s = r.settings[i].scores;
      out += fmt::format("{} {:<14} {:>8} {:>10} {:>12} {:>11} {:>9}\n",
                         static_cast<int>(i) == r.best ? "*" : " ", r.settings[i].name,
                         pct(mean_iou(s, r.headline)), pct(mean_iou(s, other_than(r.headline))),
                         pct(s.pixel_accuracy), pct(s.mean_accuracy), pct(s.fw_iou));
    }
  }
  if (r.settings.empty()) return out;
  const SettingResult& best = r.settings[static_cast<std::size_t>(r.best)];
  const Scores& s = best.scores;
  std::size_t width = 5;
  for (const std::string& name : r.class_names) width = std::max(width, name.size());
  if (r.cams) out += fmt::format("\nper class, setting {}:\n", best.name);
  out += fmt::format("\n{:>4}  {:<{}}  {:>7}  {:>11}  {:>8}  {:>13}  {:>13}\n", "id", "class",
                     width, "IoU %", "precision %", "recall %", "GT pixels", "pred pixels");
  for (int k = 0; k < r.num_classes; ++k) {
    const ClassScores& c = s.classes[static_cast<std::size_t>(k)];
    out +=
        fmt::format("{:>4}  {:<{}}  {:>7}  {:>11}  {:>8}  {:>13}  {:>13}\n", k,
                    r.class_names[static_cast<std::size_t>(k)], width, pct(c.iou), pct(c.precision),
                    pct(c.recall), thousands(c.gt_pixels), thousands(c.pred_pixels));
  }
  out += std::string(width + 72, '-') + "\n";
  for (const MiouLine& line : miou_lines(s, r.headline, r.class_names)) {
    out += line.label.empty() ? fmt::format("{:<26}{}\n", "", line.text)
                              : fmt::format("{:<15} {:>7} %  {}\n", line.label, pct(line.value),
                                            line.text);
  }
  out += fmt::format("{:<15} {:>7} %  correct / counted pixels ({})\n", "pixel acc",
                     pct(s.pixel_accuracy), thousands(s.pixels));
  out += fmt::format("{:<15} {:>7} %  mean recall over classes with GT pixels\n", "mean acc",
                     pct(s.mean_accuracy));
  out += fmt::format("{:<15} {:>7} %  frequency-weighted IoU\n", "fwIoU", pct(s.fw_iou));
  out += fmt::format("{:<15} {:>7} %  {}\n", "coverage", pct(best.coverage.fraction()),
                     coverage_text(r, best.coverage));
  return out;
}

std::string format_markdown(const EvalResult& r) {
  std::string out = "## clipes-eval\n\n" + header(r) + ".\n";
  if (!r.missing.empty()) {
    out += fmt::format("\nMissing predictions counted as all background: {}.\n", r.missing.size());
  }
  if (r.cams) {
    out += fmt::format(
        "\n| background | mIoU {} % | mIoU {} % | pixel acc % | mean acc % | fwIoU % | best |\n"
        "|---|---:|---:|---:|---:|---:|:---:|\n",
        to_string(r.headline), to_string(other_than(r.headline)));
    for (std::size_t i = 0; i < r.settings.size(); ++i) {
      const Scores& s = r.settings[i].scores;
      out += fmt::format("| `{}` | {} | {} | {} | {} | {} | {} |\n", r.settings[i].name,
                         pct(mean_iou(s, r.headline)), pct(mean_iou(s, other_than(r.headline))),
                         pct(s.pixel_accuracy), pct(s.mean_accuracy), pct(s.fw_iou),
                         static_cast<int>(i) == r.best ? "**best**" : "");
    }
  }
  if (r.settings.empty()) return out;
  const SettingResult& best = r.settings[static_cast<std::size_t>(r.best)];
  const Scores& s = best.scores;
  if (r.cams) out += fmt::format("\nPer class, background `{}`:\n", best.name);
  out +=
      "\n| id | class | IoU % | precision % | recall % | GT pixels | pred pixels |\n"
      "|---:|---|---:|---:|---:|---:|---:|\n";
  for (int k = 0; k < r.num_classes; ++k) {
    const ClassScores& c = s.classes[static_cast<std::size_t>(k)];
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", k,
                       r.class_names[static_cast<std::size_t>(k)], pct(c.iou), pct(c.precision),
                       pct(c.recall), thousands(c.gt_pixels), thousands(c.pred_pixels));
  }
  out += fmt::format(
      "\n| metric | value |\n|---|---:|\n| **mIoU** | **{} %** |\n| mIoU {} | {} % |\n"
      "| pixel accuracy | {} % |\n| mean accuracy | {} % |\n| frequency-weighted IoU | {} % |\n"
      "| coverage | {} % |\n\n",
      pct(mean_iou(s, r.headline)), to_string(other_than(r.headline)),
      pct(mean_iou(s, other_than(r.headline))), pct(s.pixel_accuracy), pct(s.mean_accuracy),
      pct(s.fw_iou), pct(best.coverage.fraction()));
  for (const MiouLine& line : miou_lines(s, r.headline, r.class_names)) {
    out += "- " + (line.label.empty() ? std::string("mIoU") : line.label) + ": " + line.text + "\n";
  }
  out += "- coverage: " + coverage_text(r, best.coverage) + "\n";
  return out;
}

std::string format_json(const EvalResult& r) {
  nlohmann::ordered_json root;
  root["mode"] = r.cams ? "cams" : "pred";
  root["images"] = r.images;
  root["num_classes"] = r.num_classes;
  root["num_classes_source"] = r.num_classes_source;
  root["class_names"] = r.class_names;
  root["pred_ignore"] = r.pred_ignore == PredIgnore::kExclude ? "exclude" : "background";
  root["miou_headline"] = std::string(to_string(r.headline));
  root["miou_definitions"] = {
      {"gt-or-pred", std::string(describe(MiouDefinition::kGtOrPred))},
      {"gt", std::string(describe(MiouDefinition::kGt))}};
  root["missing"] = r.missing;
  root["threads"] = r.threads;
  root["seconds"] = r.seconds;
  root["failures"] = nlohmann::ordered_json::array();
  for (const ImageFailure& f : r.failures) {
    root["failures"].push_back({{"id", f.id}, {"reason", f.reason}});
  }
  root["best"] =
      r.settings.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.best);
  root["settings"] = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < r.settings.size(); ++i) {
    const SettingResult& set = r.settings[i];
    const Scores& s = set.scores;
    nlohmann::ordered_json j;
    j["name"] = set.name;
    j["best"] = static_cast<int>(i) == r.best;
    if (set.background) j["background"] = background_json(*set.background);
    j["miou"] = number(mean_iou(s, r.headline));  // the headline definition
    j["miou_gt_or_pred"] = number(s.mean_iou);
    j["pixel_accuracy"] = number(s.pixel_accuracy);
    j["mean_accuracy"] = number(s.mean_accuracy);
    j["fw_iou"] = number(s.fw_iou);
    j["coverage"] = number(set.coverage.fraction());
    j["pixels"] = {{"counted", s.pixels},
                   {"gt_valid", set.coverage.gt_valid},
                   {"predicted", set.coverage.predicted}};
    j["miou_classes"] = s.counted;
    j["classes_absent"] = s.absent;
    j["classes_predicted_not_in_gt"] = s.predicted_not_in_gt;
    j["miou_gt_classes_only"] = number(s.mean_iou_gt_classes);
    nlohmann::ordered_json classes = nlohmann::ordered_json::array();
    for (int k = 0; k < r.num_classes; ++k) {
      const ClassScores& c = s.classes[static_cast<std::size_t>(k)];
      classes.push_back({{"id", k},
                         {"name", r.class_names[static_cast<std::size_t>(k)]},
                         {"iou", number(c.iou)},
                         {"precision", number(c.precision)},
                         {"recall", number(c.recall)},
                         {"gt_pixels", c.gt_pixels},
                         {"pred_pixels", c.pred_pixels},
                         {"true_positives", c.true_positives}});
    }
    j["classes"] = std::move(classes);
    nlohmann::ordered_json matrix = nlohmann::ordered_json::array();
    for (int g = 0; g < set.confusion.n; ++g) {
      nlohmann::ordered_json row = nlohmann::ordered_json::array();
      for (int p = 0; p < set.confusion.n; ++p) row.push_back(set.confusion.at(g, p));
      matrix.push_back(std::move(row));
    }
    j["confusion"] = std::move(matrix);
    root["settings"].push_back(std::move(j));
  }
  return root.dump(2) + "\n";
}

}  // namespace clipes::eval
