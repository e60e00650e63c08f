#include "clipes/eval/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/core/json_reader.h"
#include "clipes/data/class_names.h"
#include "clipes/io/npy.h"
#include "clipes/io/png.h"

namespace clipes::eval {

namespace fs = std::filesystem;

namespace {

constexpr int kVocClasses = 21;
constexpr int kCocoClasses = 81;

// Largest value other than 255 in an 8-bit map (-1 when there is none): the max of v + 1
// (mod 256, so 255 becomes 0), a loop the compiler vectorises.
int max_label(const cv::Mat& labels) {
  std::uint8_t shifted_max = 0;
  for (int y = 0; y < labels.rows; ++y) {
    const std::uint8_t* row = labels.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      shifted_max = std::max(shifted_max, static_cast<std::uint8_t>(row[x] + 1));
    }
  }
  return static_cast<int>(shifted_max) - 1;
}

std::string size_text(const cv::Mat& m) { return fmt::format("{}x{}", m.cols, m.rows); }

// What one image contributed beyond the histograms: its largest values, for the class checks.
struct ImageRecord {
  int gt_max = -1;
  int pred_max = -1;
  bool missing = false;
};

class BatchEvaluator {
 public:
  BatchEvaluator(const EvalOptions& options, std::vector<std::string> ids, int known_classes)
      : options_(options),
        ids_(std::move(ids)),
        known_classes_(known_classes),
        records_(ids_.size()) {}

  // Runs the pass on `threads` workers; returns one merged histogram per setting.
  std::vector<JointHistogram> run(int threads, Reporter& reporter) {
    const std::size_t settings = options_.cams_dir.empty() ? 1 : options_.backgrounds.size();
    std::vector<std::vector<JointHistogram>> partial(static_cast<std::size_t>(threads));
    std::atomic<std::size_t> next{0};
    std::atomic<std::int64_t> done{0};
    const auto total = static_cast<std::int64_t>(ids_.size());
    auto work = [&](int worker) {
      std::vector<JointHistogram>& hists = partial[static_cast<std::size_t>(worker)];
      hists.resize(settings);
      for (std::size_t i = next++; i < ids_.size(); i = next++) {
        try {
          records_[i] = process(ids_[i], hists);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mutex_);
          failures_.push_back({i, e.what()});
        }
        reporter.progress("evaluate", ++done, total);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (std::thread& t : pool) t.join();
    std::vector<JointHistogram> merged(settings);
    for (const auto& worker : partial) {
      for (std::size_t s = 0; s < worker.size(); ++s) merged[s].merge(worker[s]);
    }
    return merged;
  }

  // Images whose values do not fit `n` classes become failures.
  void check_classes(int n) {
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      const ImageRecord& r = records_[i];
      if (r.gt_max >= n) {
        failures_.push_back({i, fmt::format("{}: ground-truth value {} is beyond the {} classes "
                                            "(0..{}, 255 = ignore)",
                                            gt_path(ids_[i]).string(), r.gt_max, n, n - 1)});
      }
      if (r.pred_max >= n && options_.cams_dir.empty()) {
        failures_.push_back({i, fmt::format("{}: predicted value {} is beyond the {} classes "
                                            "(0..{}, 255 = no prediction)",
                                            pred_path(ids_[i]).string(), r.pred_max, n, n - 1)});
      } else if (r.pred_max >= n) {
        failures_.push_back(
            {i, fmt::format("{}: key {} (id {}) is beyond the {} classes (keys "
                            "0..{})",
                            pred_path(ids_[i]).string(), r.pred_max - 1, r.pred_max, n, n - 2)});
      }
    }
  }

  std::vector<ImageFailure> failures() {
    std::stable_sort(failures_.begin(), failures_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<ImageFailure> out;
    for (const auto& [index, reason] : failures_) out.push_back({ids_[index], reason});
    return out;
  }

  const std::vector<ImageRecord>& records() const { return records_; }

  // The image (by id order) holding the largest value, for messages about inference.
  std::string file_with_value(int value) const {
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      if (records_[i].gt_max == value) return gt_path(ids_[i]).string();
      if (records_[i].pred_max == value) return pred_path(ids_[i]).string();
    }
    return "?";
  }

 private:
  fs::path gt_path(const std::string& id) const { return options_.gt_dir / (id + ".png"); }
  fs::path pred_path(const std::string& id) const {
    return options_.cams_dir.empty() ? options_.pred_dir / (id + ".png")
                                     : options_.cams_dir / (id + ".npz");
  }

  ImageRecord process(const std::string& id, std::vector<JointHistogram>& hists) const {
    const fs::path gt_file = gt_path(id);
    if (!fs::exists(gt_file)) throw Error(fmt::format("missing ground truth {}", gt_file.string()));
    const cv::Mat gt = io::read_png_u8(gt_file);
    ImageRecord record;
    record.gt_max = max_label(gt);
    const fs::path pred_file = pred_path(id);
    if (!fs::exists(pred_file)) {
      if (!options_.allow_missing) {
        throw Error(
            fmt::format("missing prediction {} for ground truth {} (--allow-missing "
                        "counts it as all background)",
                        pred_file.string(), gt_file.string()));
      }
      for (JointHistogram& h : hists) h.add_constant(gt, 0);
      record.missing = true;
      record.pred_max = gt.empty() ? -1 : 0;
      return record;
    }
    std::vector<cv::Mat> preds;
    if (options_.cams_dir.empty()) {
      preds.push_back(io::read_png_u8(pred_file));
    } else {
      const io::NpzEntries entries = io::read_npz(pred_file);
      preds = cam_labels(io::npz_member(entries, "keys", pred_file),
                         io::npz_member(entries, "cams", pred_file), options_.backgrounds,
                         known_classes_, pred_file.string());
    }
    if (preds.front().size() != gt.size()) {
      throw Error(fmt::format("{}: size {} does not match the ground truth {} ({})",
                              pred_file.string(), size_text(preds.front()), gt_file.string(),
                              size_text(gt)));
    }
    for (std::size_t s = 0; s < preds.size(); ++s) {
      hists[s].add(gt, preds[s]);
      record.pred_max = std::max(record.pred_max, max_label(preds[s]));
    }
    return record;
  }

  const EvalOptions& options_;
  std::vector<std::string> ids_;
  int known_classes_;
  std::vector<ImageRecord> records_;
  std::mutex mutex_;
  std::vector<std::pair<std::size_t, std::string>> failures_;
};

}  // namespace

void validate(const EvalOptions& o) {
  if (o.gt_dir.empty()) throw Error("no ground-truth folder given");
  if (o.pred_dir.empty() == o.cams_dir.empty()) {
    throw Error("give exactly one of a prediction folder (--pred) and a CAM folder (--cams)");
  }
  if (o.num_classes < 0 || o.num_classes > kMaxClasses) {
    throw Error(
        fmt::format("the number of classes must be in 1..{}, got {}", kMaxClasses, o.num_classes));
  }
  if (!o.class_names.empty() && o.num_classes > 0 &&
      static_cast<int>(o.class_names.size()) != o.num_classes) {
    throw Error(
        fmt::format("{} class names given for {} classes", o.class_names.size(), o.num_classes));
  }
  if (static_cast<int>(o.class_names.size()) > kMaxClasses) {
    throw Error(fmt::format("{} class names given, at most {} fit 8-bit masks",
                            o.class_names.size(), kMaxClasses));
  }
  if (!o.cams_dir.empty() && o.backgrounds.empty()) throw Error("no background setting to try");
  for (const BackgroundSetting& b : o.backgrounds) {
    if (b.kind == BackgroundSetting::Kind::kPower && !(b.value > 0 && std::isfinite(b.value))) {
      throw Error(fmt::format("background power must be > 0, got {}", b.value));
    }
    if (b.kind == BackgroundSetting::Kind::kThreshold && !(b.value >= 0 && b.value <= 1)) {
      throw Error(fmt::format("background threshold must be in [0, 1], got {}", b.value));
    }
  }
  if (o.threads < 0) throw Error(fmt::format("threads must be >= 0, got {}", o.threads));
}

std::vector<std::string> list_png_ids(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw Error(fmt::format("{}: cannot list the folder: {}", dir.string(), ec.message()));
  std::vector<std::string> ids;
  for (const fs::directory_entry& entry : it) {
    if (entry.is_regular_file() && entry.path().extension() == ".png") {
      ids.push_back(entry.path().stem().string());
    }
  }
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) throw Error(fmt::format("{}: no .png ground-truth files", dir.string()));
  return ids;
}

std::vector<std::string> default_class_names(int num_classes) {
  if (num_classes == kVocClasses) return data::with_background(data::voc_class_names());
  if (num_classes == kCocoClasses) return data::with_background(data::coco_class_names());
  std::vector<std::string> names{"background"};
  for (int id = 1; id < num_classes; ++id) names.push_back(fmt::format("class {}", id));
  return names;
}

EvalResult evaluate(const EvalOptions& options, Reporter& reporter) {
  validate(options);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> ids =
      options.split_file.empty() ? list_png_ids(options.gt_dir) : data::read_split_ids(options.split_file);
  EvalResult result;
  result.cams = !options.cams_dir.empty();
  result.pred_ignore = options.pred_ignore;
  result.headline = options.headline;
  result.images = static_cast<std::int64_t>(ids.size());
  int known =
      options.num_classes > 0 ? options.num_classes : static_cast<int>(options.class_names.size());
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  result.threads = static_cast<int>(std::min<std::size_t>(
      options.threads > 0 ? static_cast<std::size_t>(options.threads) : cores, ids.size()));

  BatchEvaluator batch(options, ids, known);
  std::vector<JointHistogram> hists = batch.run(result.threads, reporter);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (batch.records()[i].missing) result.missing.push_back(ids[i]);
  }
  result.failures = batch.failures();
  if (!result.failures.empty()) return result;

  if (known > 0) {
    result.num_classes_source = options.num_classes > 0 ? "given" : "from the class names";
  } else {
    int largest = -1;
    for (const JointHistogram& h : hists) {
      largest = std::max({largest, h.max_gt_value(), h.max_pred_value()});
    }
    if (largest < kVocClasses) {
      known = kVocClasses;
      result.num_classes_source = fmt::format(
          "inferred: VOC, every value is <= {}, the largest is {}", kVocClasses - 1, largest);
    } else if (largest < kCocoClasses) {
      known = kCocoClasses;
      result.num_classes_source = fmt::format(
          "inferred: COCO, every value is <= {}, the largest is {}", kCocoClasses - 1, largest);
    } else {
      throw Error(
          fmt::format("values up to {} (in {}) fit neither VOC (21 classes) nor COCO "
                      "(81): give the classes with --num-classes or --config",
                      largest, batch.file_with_value(largest)));
    }
    reporter.info(
        fmt::format("no class count given: {} classes ({})", known, result.num_classes_source));
  }
  batch.check_classes(known);
  result.failures = batch.failures();
  if (!result.failures.empty()) return result;

  result.num_classes = known;
  result.class_names =
      options.class_names.empty() ? default_class_names(known) : options.class_names;
  for (std::size_t s = 0; s < hists.size(); ++s) {
    SettingResult setting;
    if (result.cams) {
      setting.background = options.backgrounds[s];
      setting.name = options.backgrounds[s].name();
    } else {
      setting.name = "prediction";
    }
    setting.confusion = hists[s].confusion(known, options.pred_ignore);
    setting.coverage = hists[s].coverage(known);
    setting.scores = compute_scores(setting.confusion);
    result.settings.push_back(std::move(setting));
  }
  for (std::size_t s = 1; s < result.settings.size(); ++s) {
    const double miou = mean_iou(result.settings[s].scores, result.headline);
    const double best = mean_iou(result.settings[result.best].scores, result.headline);
    if (miou > best || (std::isnan(best) && !std::isnan(miou))) result.best = static_cast<int>(s);
  }
  if (!result.missing.empty()) {
    reporter.warn(fmt::format("{} of {} predictions missing, counted as all background (first: {})",
                              result.missing.size(), ids.size(), result.missing.front()));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace clipes::eval
