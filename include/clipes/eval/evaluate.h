#pragma once
/// The batch evaluation behind clipes-eval: ground-truth PNGs against predicted PNG masks or CAM
/// archives, decoded in parallel, reduced to the reference's confusion matrix and scores (spec §6).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/eval/cam_labels.h"
#include "clipes/eval/confusion.h"

namespace clipes::eval {

struct EvalOptions {
  /// Ground truth <id>.png: palette or grey 8-bit, 0 = background, k + 1 = class k, 255 = ignore.
  std::filesystem::path gt_dir;
  /// Ids (data::read_split_ids: first token per line; a path such as "/JPEGImages/x.jpg" gives
  /// "x"); empty: every *.png in gt_dir, sorted.
  std::filesystem::path split_file;
  /// Predicted masks <id>.png (255 = no prediction). Exactly one of pred_dir and cams_dir.
  std::filesystem::path pred_dir;
  /// CAM archives <id>.npz as clipes-generate writes them: `keys` [K] int64, `cams` [K, H, W].
  std::filesystem::path cams_dir;
  /// Classes with background. 0: class_names.size(), or when that is empty inferred from the
  /// values (VOC's 21 when every value is <= 20, else COCO's 81 when <= 80).
  int num_classes = 0;
  /// Names of ids 0..n-1 (background first). Empty: VOC names for n = 21, COCO names for n = 81,
  /// else "class <id>".
  std::vector<std::string> class_names;
  /// What a predicted 255 counts as (PNG predictions only; CAM labels are never 255).
  PredIgnore pred_ignore = PredIgnore::kExclude;
  /// CAM mode: every background setting is evaluated in the same pass.
  std::vector<BackgroundSetting> backgrounds = {{BackgroundSetting::Kind::kPower, 1.0},
                                                {BackgroundSetting::Kind::kPower, 2.0}};
  /// Decoding threads; 0 = one per core.
  int threads = 0;
  /// A missing prediction counts as all background (and is listed) instead of failing.
  bool allow_missing = false;
  /// The mIoU that heads the report and picks the best CAM setting (both are reported).
  MiouDefinition headline = MiouDefinition::kGtOrPred;
};

/// Throws clipes::Error on options that cannot run (both or neither of pred_dir/cams_dir, no
/// background settings, α <= 0, a threshold outside [0, 1], names and num_classes disagreeing).
void validate(const EvalOptions& options);

/// One way of labelling the pixels and its scores.
struct SettingResult {
  std::string name;                             ///< "prediction", or the background setting's name
  std::optional<BackgroundSetting> background;  ///< CAM mode only
  ConfusionMatrix confusion;
  Coverage coverage;
  Scores scores;
};

/// An image that could not be evaluated and why (the reason names the file).
struct ImageFailure {
  std::string id;
  std::string reason;
};

struct EvalResult {
  bool cams = false;  ///< CAM archives (true) or PNG predictions
  int num_classes = 0;
  std::string num_classes_source;        ///< how n was chosen, for the report
  std::vector<std::string> class_names;  ///< [num_classes]
  PredIgnore pred_ignore = PredIgnore::kExclude;
  std::int64_t images = 0;
  std::vector<std::string> missing;     ///< ids counted as all background (allow_missing)
  std::vector<ImageFailure> failures;   ///< in id order; non-empty: `settings` is empty
  std::vector<SettingResult> settings;  ///< PNG mode: one; CAM mode: one per background
  MiouDefinition headline = MiouDefinition::kGtOrPred;  ///< EvalOptions::headline
  int best = 0;  ///< index of the highest headline mIoU in `settings`
  int threads = 1;
  double seconds = 0;  ///< wall time of the pass

  bool ok() const { return failures.empty(); }
};

/// Evaluates every id (spec §6). Bad images (missing or unreadable file, size mismatch, value
/// beyond the classes) are collected in `failures`, each with its reason; the pass goes on so that
/// all of them are reported. Throws clipes::Error for problems that stop everything (no ids,
/// unreadable split file, invalid options).
EvalResult evaluate(const EvalOptions& options, Reporter& reporter);

/// The stems of every *.png in `dir`, sorted.
std::vector<std::string> list_png_ids(const std::filesystem::path& dir);

/// The names of ids 0..n-1 when none are given: VOC for 21, COCO for 81, else "class <id>".
std::vector<std::string> default_class_names(int num_classes);

}  // namespace clipes::eval
