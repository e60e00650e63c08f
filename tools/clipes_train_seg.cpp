// clipes-train-seg: trains DeepLab-v2 on pseudo masks (train) and predicts masks with it
// (predict). Spec §8; the work is done by clipes::seg::train_segmentation / predict_folder.
// Exit codes (run_control.h): 0 done; 1 some images failed to predict (listed), or training
// stopped on an error after iteration 1 (the last checkpoint stays); 2 usage, config or input
// error before any work (nothing written); 130 interrupted (a checkpoint was written: --resume).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "process_setup.h"
#include "clipes/core/error.h"
#include "clipes/crf/crf_config.h"
#include "clipes/seg/predict.h"
#include "clipes/seg/trainer.h"
#include "console_reporter.h"
#include "run_control.h"

namespace {

struct Common {
  std::string device;
  int threads = 0;
  bool verbose = false;
};

void add_common(CLI::App* app, Common& c) {
  app->add_option("--device", c.device, "cpu, cuda or cuda:N (default: CUDA when available)");
  app->add_option("--threads", c.threads, "CPU threads for LibTorch and the CRF (0 = all cores)");
  app->add_flag("-v,--verbose", c.verbose, "debug messages");
}

std::vector<double> parse_scales(const std::string& text) {
  std::vector<double> scales;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      std::size_t used = 0;
      scales.push_back(std::stod(item, &used));
      if (used != item.size() || !(scales.back() > 0)) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw clipes::Error(
          fmt::format("--scales: expected positive numbers separated by commas, "
                      "got \"{}\"",
                      text));
    }
  }
  if (scales.empty()) throw clipes::Error("--scales: no scale given");
  return scales;
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{
      "clipes-train-seg: train DeepLab-v2 (ResNet-101, MSC) on pseudo masks with the "
      "confidence-guided loss, and predict segmentation masks with it"};
  app.require_subcommand(1);

  Common common;
  std::string config_file;
  std::vector<std::string> overrides;
  clipes::seg::TrainInputs train;
  std::string init;
  std::string confidence;
  std::string split;
  CLI::App* train_cmd = app.add_subcommand("train", "train on images + pseudo masks");
  train_cmd->add_option("--config", config_file, "training config (configs/train-voc.json)")
      ->required()
      ->check(CLI::ExistingFile);
  train_cmd->add_option("--images", train.data.images, "folder of <id>.jpg images")->required();
  train_cmd->add_option("--masks", train.data.masks, "folder of <id>.png pseudo masks")->required();
  train_cmd->add_option("--confidence", confidence, "folder of <id>.png 16-bit confidence maps");
  train_cmd->add_option("--split", split, "file listing the ids to train on (default: every mask)");
  train_cmd->add_option("--out", train.out, "output folder (checkpoints, log, plot)")->required();
  train_cmd->add_option("--init", init, "initial weights (scripts/convert_init_weights.py)");
  train_cmd->add_flag("--resume", train.resume, "continue from <out>/checkpoint.pt");
  train_cmd->add_option("--stop-after", train.stop_after,
                        "stop with a checkpoint after this iteration (resume later)");
  train_cmd->add_option("--set", overrides, "override a config value: --set optim.lr=2e-4");
  add_common(train_cmd, common);

  clipes::seg::PredictInputs predict;
  clipes::seg::PredictConfig predict_config;
  std::string scales = "1.0";
  std::string predict_split;
  std::string crf_image = "rgb";
  CLI::App* predict_cmd = app.add_subcommand("predict", "predict masks for a folder of images");
  predict_cmd->add_option("--checkpoint", predict.checkpoint, "model_final.pt or checkpoint.pt")
      ->required();
  predict_cmd->add_option("--images", predict.images, "folder of images")->required();
  predict_cmd->add_option("--split", predict_split, "file listing the ids to predict");
  predict_cmd->add_option("--out", predict.out, "folder for the <id>.png masks")->required();
  predict_cmd->add_option("--scales", scales, "input scales, e.g. 0.5,0.75,1.0,1.25,1.5")
      ->capture_default_str();
  predict_cmd->add_flag("--flip", predict_config.flip, "also average the mirrored image");
  predict_cmd->add_flag("--crf", predict_config.crf,
                        "refine with the dense CRF, DeepLab's parameters: 10 iterations, "
                        "position weight 3 / sxy 1, bilateral weight 4 / sxy 67 / srgb 3");
  predict_cmd
      ->add_option("--crf-image", crf_image,
                   "image the CRF's bilateral kernel sees: rgb, or reference (BGR minus "
                   "the mean, wrapped to uint8, as the CLIP-ES reference code fed it)")
      ->capture_default_str();
  add_common(predict_cmd, common);

  namespace cli = clipes::cli;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli::parse_error_exit(app, e);
  }
  cli::setup_logging(common.verbose);
  cli::ConsoleReporter reporter(common.verbose);
  try {
    const int threads = cli::set_threads(common.threads);
    if (train_cmd->parsed()) {
      const clipes::seg::TrainConfig config =
          clipes::seg::load_train_config(config_file, overrides);
      train.data.confidence = confidence;
      train.data.split = split;
      train.init_weights = init;
      train.device = common.device;
      train.config_source = config_file;
      train.stop = cli::install_stop_signals();
      reporter.info(fmt::format("{} CPU threads, {} data workers", threads, config.data.workers));
      const auto r = clipes::seg::train_segmentation(config, train, reporter);
      spdlog::info(
          "{} iterations done (of {}), last loss {:.4f}; {}", r.iteration, config.optim.iterations,
          r.last_loss,
          r.finished ? "model: " + r.final_model.string() : "checkpoint: " + r.checkpoint.string());
      return r.interrupted ? cli::kExitInterrupted : cli::kExitOk;
    }
    predict.split = predict_split;
    predict.device = common.device;
    predict_config.scales = parse_scales(scales);
    predict_config.crf_config.image = clipes::crf::parse_crf_image_mode(crf_image, "--crf-image");
    predict_config.crf_config.threads = threads;
    const auto s = clipes::seg::predict_folder(predict, predict_config, reporter);
    spdlog::info("{} masks written to {}, {} images failed", s.written, predict.out.string(),
                 s.failures.size());
    for (const auto& [id, reason] : s.failures) spdlog::error("failed: {}: {}", id, reason);
    return s.failures.empty() ? cli::kExitOk : cli::kExitSomeFailed;
  } catch (const clipes::WorkError& e) {
    spdlog::error("{}", e.what());
    return cli::kExitSomeFailed;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitUsage;
  }
}
