// clipes-eval: mIoU of predicted masks or CAMs against ground-truth PNGs (spec §6), with the
// numbers of the reference's confusion-matrix scores(). Exit codes: 0 ok, 1 the evaluation failed
// on the data (missing or unreadable file, size mismatch, value beyond the classes), 2 usage.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "clipes/core/blas.h"
#include "clipes/core/error.h"
#include "clipes/eval/confusion_plot.h"
#include "clipes/eval/evaluate.h"
#include "clipes/eval/report.h"
#include "clipes/io/files.h"
#include "console_reporter.h"

namespace {

struct Options {
  std::string config, pred_ignore = "exclude", json, markdown, confusion_png;
  std::vector<double> bg_powers = {1.0, 2.0}, bg_thresholds;
  bool verbose = false;
};

}  // namespace

int main(int argc, char** argv) {
  clipes::reexec_with_runtime_settings(argv, clipes::BlasKernels::kFastest);
  using clipes::eval::BackgroundSetting;
  CLI::App app{
      "clipes-eval: mIoU of predicted masks (--pred) or CAMs (--cams) against ground "
      "truth, computed as the reference's confusion-matrix scores()"};
  clipes::eval::EvalOptions o;
  Options cli;
  std::string gt, split, pred, cams;
  app.add_option("--gt", gt, "ground-truth folder of <id>.png (255 = ignore)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--split", split, "ids to evaluate, one per line (default: every GT png)")
      ->check(CLI::ExistingFile);
  auto* pred_opt = app.add_option("--pred", pred, "predicted masks <id>.png (255 = no prediction)")
                       ->check(CLI::ExistingDirectory);
  auto* cams_opt = app.add_option("--cams", cams, "CAM archives <id>.npz (keys, cams)")
                       ->check(CLI::ExistingDirectory);
  pred_opt->excludes(cams_opt);
  auto* config_opt = app.add_option("--config", cli.config,
                                    "clipes generate config: class names from its \"classes\"")
                         ->check(CLI::ExistingFile);
  app.add_option("--num-classes", o.num_classes,
                 "classes with background (default: inferred, VOC 21 or COCO 81)")
      ->check(CLI::Range(1, clipes::eval::kMaxClasses))
      ->excludes(config_opt);
  app.add_option("--pred-ignore", cli.pred_ignore,
                 "predicted 255: 'exclude' (left out, reported as coverage) or 'background'")
      ->check(CLI::IsMember({"exclude", "background"}))
      ->capture_default_str()
      ->needs(pred_opt);
  app.add_option("--bg-power", cli.bg_powers, "CAMs: background = (1 - max cam)^alpha, alphas")
      ->delimiter(',')
      ->capture_default_str()
      ->needs(cams_opt);
  app.add_option("--bg-threshold", cli.bg_thresholds, "CAMs: constant background scores t1,t2,...")
      ->delimiter(',')
      ->needs(cams_opt);
  app.add_flag("--allow-missing", o.allow_missing,
               "count a missing prediction as all background (and say how many)");
  app.add_option("--json", cli.json, "write every number as JSON");
  app.add_option("--markdown", cli.markdown, "write the tables as Markdown");
  app.add_option("--confusion-png", cli.confusion_png,
                 "write a heat map of the row-normalised confusion matrix");
  app.add_option("--threads", o.threads, "decoding threads (0 = one per core)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("-v,--verbose", cli.verbose, "debug messages");
  try {
    app.parse(argc, argv);
    if (pred.empty() == cams.empty()) throw CLI::ValidationError("give one of --pred and --cams");
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  clipes::cli::setup_logging(cli.verbose);
  clipes::cli::ConsoleReporter reporter(cli.verbose);

  o.gt_dir = gt;
  o.split_file = split;
  o.pred_dir = pred;
  o.cams_dir = cams;
  o.pred_ignore = cli.pred_ignore == "background" ? clipes::eval::PredIgnore::kBackground
                                                  : clipes::eval::PredIgnore::kExclude;
  o.backgrounds.clear();
  for (double a : cli.bg_powers) o.backgrounds.push_back({BackgroundSetting::Kind::kPower, a});
  for (double t : cli.bg_thresholds) {
    o.backgrounds.push_back({BackgroundSetting::Kind::kThreshold, t});
  }
  try {
    if (!cli.config.empty()) o.class_names = clipes::eval::read_config_class_names(cli.config);
    clipes::eval::validate(o);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }

  try {
    const clipes::eval::EvalResult r = clipes::eval::evaluate(o, reporter);
    if (!r.ok()) {
      const std::size_t shown = cli.verbose ? r.failures.size() : std::size_t{20};
      for (std::size_t i = 0; i < r.failures.size() && i < shown; ++i) {
        reporter.error(r.failures[i].id + ": " + r.failures[i].reason);
      }
      if (r.failures.size() > shown) {
        reporter.error(
            fmt::format("... and {} more (--verbose lists all; --split evaluates a "
                        "subset)",
                        r.failures.size() - shown));
      }
      reporter.error(
          fmt::format("evaluation failed: {} of {} images could not be evaluated (no "
                      "scores reported)",
                      r.failures.size(), r.images));
      return 1;
    }
    std::cout << clipes::eval::format_table(r) << std::flush;
    if (!cli.json.empty()) clipes::io::write_file_atomic(cli.json, clipes::eval::format_json(r));
    if (!cli.markdown.empty()) {
      clipes::io::write_file_atomic(cli.markdown, clipes::eval::format_markdown(r));
    }
    if (!cli.confusion_png.empty()) {
      const auto& best = r.settings[static_cast<std::size_t>(r.best)];
      clipes::eval::write_confusion_png(
          cli.confusion_png, best.confusion, r.class_names,
          fmt::format("{} - mIoU {:.2f}%, {} images, rows = ground truth",
                      r.cams ? "CAMs, background " + best.name : std::string("predictions"),
                      100.0 * best.scores.mean_iou, r.images));
    }
    reporter.info(
        fmt::format("{} images in {:.2f} s on {} threads", r.images, r.seconds, r.threads));
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
