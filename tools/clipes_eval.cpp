// clipes-eval: mIoU of predicted masks, CAMs or a generate run against ground-truth PNGs (spec
// §6), with the numbers of the reference's confusion-matrix scores() and both mIoU definitions.
// Exit codes (run_control.h): 0 ok, 1 some images failed (each listed: missing or unreadable
// file, size mismatch, value beyond the classes; no scores), 2 usage or input error before any
// image (bad flags, no ids, unreadable split or config).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clipes/core/error.h"
#include "clipes/data/mask_files.h"
#include "clipes/eval/confusion_plot.h"
#include "clipes/eval/evaluate.h"
#include "clipes/eval/report.h"
#include "clipes/io/files.h"
#include "clipes/pipeline/generate_config.h"
#include "config_help.h"
#include "console_reporter.h"
#include "process_setup.h"
#include "run_control.h"

namespace {

namespace cli = clipes::cli;

/// The command line: its flags, and the evaluation options they fill.
struct EvalCommand {
  clipes::eval::EvalOptions o;
  std::string config, pred_ignore = "exclude", json, markdown, confusion_png;
  std::vector<double> bg_powers = {1.0, 2.0}, bg_thresholds;
  bool verbose = false;
  std::string gt, split, pred, cams, run, miou = "gt-or-pred";

  void add(CLI::App& app) {
    app.add_option("--gt", gt, "ground-truth folder of <id>.png (255 = ignore)")
        ->required()
        ->check(CLI::ExistingDirectory);
    app.add_option("--split", split, "ids to evaluate, one per line (default: every GT png)")
        ->check(CLI::ExistingFile);
    auto* pred_opt =
        app.add_option("--pred", pred, "predicted masks <id>.png (255 = no prediction)")
            ->check(CLI::ExistingDirectory);
    auto* cams_opt = app.add_option("--cams", cams, "CAM archives <id>.npz (keys, cams)")
                         ->check(CLI::ExistingDirectory);
    auto* run_opt = app.add_option("--run", run,
                                   "a clipes-generate output folder: its labels/ (the CRF argmax "
                                   "before mu, the paper's pseudo-mask metric) and masks/ (after "
                                   "mu, with coverage); class names from its run.json")
                        ->check(CLI::ExistingDirectory);
    pred_opt->excludes(cams_opt)->excludes(run_opt);
    cams_opt->excludes(run_opt);
    auto* config_opt = app.add_option("--config", config,
                                      "clipes generate config: class names from its \"classes\"")
                           ->check(CLI::ExistingFile)
                           ->excludes(run_opt);
    app.add_option("--num-classes", o.num_classes,
                   "classes with background (default: inferred, VOC 21 or COCO 81)")
        ->check(CLI::Range(1, clipes::eval::kMaxClasses))
        ->excludes(config_opt);
    add_scoring_options(app, cams_opt);
    add_output_options(app);
  }

  void add_scoring_options(CLI::App& app, CLI::Option* cams_opt) {
    app.add_option("--miou", miou,
                   "the headline mIoU (both are reported): gt-or-pred = nanmean over classes with "
                   "GT or predicted pixels (deeplab-pytorch scores()), gt = mean over classes with "
                   "GT pixels (CLIP-ES's own eval)")
        ->check(clipes::cli::enum_check<clipes::eval::MiouDefinition>())
        ->capture_default_str();
    app.add_option("--pred-ignore", pred_ignore,
                   "predicted 255: 'exclude' (left out, reported as coverage) or 'background'")
        ->check(clipes::cli::enum_check<clipes::eval::PredIgnore>())
        ->capture_default_str();
    app.add_option("--bg-power", bg_powers, "CAMs: background = (1 - max cam)^alpha, alphas")
        ->delimiter(',')
        ->capture_default_str()
        ->needs(cams_opt);
    app.add_option("--bg-threshold", bg_thresholds, "CAMs: constant background scores t1,t2,...")
        ->delimiter(',')
        ->needs(cams_opt);
    app.add_flag("--allow-missing", o.allow_missing,
                 "count a missing prediction as all background (and say how many)");
  }

  void add_output_options(CLI::App& app) {
    app.add_option("--json", json, "write every number as JSON");
    app.add_option("--markdown", markdown, "write the tables as Markdown");
    app.add_option("--confusion-png", confusion_png,
                   "write a heat map of the row-normalised confusion matrix");
    app.add_option("--threads", o.threads, "decoding threads (0 = one per core)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_flag("-v,--verbose", verbose, "debug messages");
  }

  /// The flags' values in the evaluation options.
  void fill_eval_options() {
    using clipes::eval::BackgroundSetting;
    o.gt_dir = gt;
    o.split_file = split;
    o.cams_dir = cams;
    o.headline = *clipes::config::parse_enum<clipes::eval::MiouDefinition>(miou);
    o.pred_ignore = *clipes::config::parse_enum<clipes::eval::PredIgnore>(pred_ignore);
    o.backgrounds.clear();
    for (double a : bg_powers) o.backgrounds.push_back({BackgroundSetting::Kind::kPower, a});
    for (double t : bg_thresholds) {
      o.backgrounds.push_back({BackgroundSetting::Kind::kThreshold, t});
    }
  }
};

// --run: class names from the run's record; labels/ (before μ) when the run kept it, then masks/.
std::vector<std::pair<std::string, std::string>> run_passes(const std::filesystem::path& run,
                                                            clipes::eval::EvalOptions& o,
                                                            clipes::Reporter& reporter) {
  const auto record = clipes::data::find_mask_run(run / "masks");
  if (!record) {
    throw clipes::Error(fmt::format("--run {}: no run.json of clipes-generate there", run.string()));
  }
  o.class_names = {"background"};
  o.class_names.insert(o.class_names.end(), record->class_names.begin(),
                       record->class_names.end());
  std::vector<std::pair<std::string, std::string>> passes;
  if (record->labels && std::filesystem::is_directory(run / "labels")) {
    passes.emplace_back("before mu: labels/, the CRF argmax (the paper's pseudo-mask metric)",
                        (run / "labels").string());
  } else {
    reporter.warn(fmt::format("{} holds no labels/ (the masks before mu): only the masks after "
                              "mu are scored; run clipes-generate with --set outputs.labels=true "
                              "for the paper's pseudo-mask metric",
                              run.string()));
  }
  passes.emplace_back(fmt::format("after mu = {}: masks/ (255 below mu left out, see coverage)",
                                  record->confidence_threshold),
                      (run / "masks").string());
  return passes;
}

int report_failures(const clipes::eval::EvalResult& r, bool verbose, clipes::Reporter& reporter) {
  const std::size_t shown = verbose ? r.failures.size() : std::size_t{20};
  for (std::size_t i = 0; i < r.failures.size() && i < shown; ++i) {
    reporter.error(r.failures[i].id + ": " + r.failures[i].reason);
  }
  if (r.failures.size() > shown) {
    reporter.error(fmt::format("... and {} more (--verbose lists all; --split evaluates a subset)",
                               r.failures.size() - shown));
  }
  reporter.error(fmt::format(
      "evaluation failed: {} of {} images could not be evaluated (no scores reported)",
      r.failures.size(), r.images));
  return clipes::cli::kExitSomeFailed;
}

void write_confusion(const std::string& file, const clipes::eval::EvalResult& r) {
  const auto& best = r.settings[static_cast<std::size_t>(r.best)];
  clipes::eval::write_confusion_png(
      file, best.confusion, r.class_names,
      fmt::format("{} - mIoU {:.2f}% ({}), {} images, rows = ground truth",
                  r.cams ? "CAMs, background " + best.name : std::string("predictions"),
                  100.0 * clipes::eval::mean_iou(best.scores, r.headline),
                  clipes::eval::to_string(r.headline), r.images));
}

/// The reports gathered over the passes: JSON per run, Markdown tables.
struct Reports {
  nlohmann::ordered_json json_runs;
  std::string markdown;
};

/// Scores each (title, prediction folder) pass, prints its table and adds it to the reports;
/// returns an exit code when a pass cannot be scored.
std::optional<int> score_passes(const std::vector<std::pair<std::string, std::string>>& passes,
                                EvalCommand& c, Reports& reports, clipes::Reporter& reporter) {
  for (const auto& [title, folder] : passes) {
    c.o.pred_dir = folder;
    clipes::eval::EvalResult r;
    try {
      r = clipes::eval::evaluate(c.o, reporter);
    } catch (const std::exception& e) {  // no ids, unreadable split: before any image
      spdlog::error("{}", e.what());
      return cli::kExitUsage;
    }
    if (!r.ok()) return report_failures(r, c.verbose, reporter);
    if (!title.empty()) std::cout << "\n== " << title << "\n";
    std::cout << clipes::eval::format_table(r) << std::flush;
    reports.json_runs[title.empty() ? "result" : folder] =
        nlohmann::ordered_json::parse(format_json(r));
    reports.markdown += (title.empty() ? "" : "### " + title + "\n\n") + format_markdown(r);
    if (!c.confusion_png.empty()) write_confusion(c.confusion_png, r);
    reporter.info(
        fmt::format("{} images in {:.2f} s on {} threads", r.images, r.seconds, r.threads));
  }
  return std::nullopt;
}

/// --json and --markdown: one run's JSON alone, several under their folders.
int write_reports(const EvalCommand& c, const Reports& reports, std::size_t passes) {
  try {
    if (!c.json.empty()) {
      clipes::io::write_file_atomic(
          c.json, (passes == 1 ? reports.json_runs.front() : reports.json_runs).dump(2) + "\n");
    }
    if (!c.markdown.empty()) clipes::io::write_file_atomic(c.markdown, reports.markdown);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitSomeFailed;
  }
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{
      "clipes-eval: mIoU of predicted masks (--pred), CAMs (--cams) or a clipes-generate run "
      "(--run) against ground truth, with both mIoU definitions of the literature"};
  EvalCommand c;
  c.add(app);
  try {
    app.parse(argc, argv);
    if (c.pred.empty() + c.cams.empty() + c.run.empty() != 2) {
      throw CLI::ValidationError("give one of --pred, --cams and --run");
    }
  } catch (const CLI::ParseError& e) {
    return cli::parse_error_exit(app, e);
  }
  cli::setup_logging(c.verbose);
  cli::ConsoleReporter reporter(c.verbose);
  c.fill_eval_options();
  // What to score: (title, prediction folder); one pass for --pred and --cams.
  std::vector<std::pair<std::string, std::string>> passes{{"", c.pred}};
  try {
    if (!c.config.empty()) c.o.class_names = clipes::pipeline::read_config_class_names(c.config);
    if (!c.run.empty()) passes = run_passes(c.run, c.o, reporter);
    c.o.pred_dir = passes.front().second;
    clipes::eval::validate(c.o);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitUsage;
  }
  Reports reports;
  if (const auto failed = score_passes(passes, c, reports, reporter)) return *failed;
  return write_reports(c, reports, passes.size());
}
