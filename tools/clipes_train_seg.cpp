// clipes-train-seg: trains DeepLab-v2 on pseudo masks (train) and predicts masks with it
// (predict). Spec §8; the work is done by clipes::seg::train_segmentation / predict_folder.
// Exit codes (run_control.h): 0 done; 1 some images failed to predict (listed), or training
// stopped on an error after iteration 1 (the last checkpoint stays); 2 usage, config or input
// error before any work (nothing written); 130 interrupted (a checkpoint was written: --resume).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "process_setup.h"
#include "clipes/core/error.h"
#include "clipes/crf/crf_config.h"
#include "clipes/seg/predict.h"
#include "clipes/seg/trainer.h"
#include "config_help.h"
#include "console_reporter.h"
#include "launch.h"
#include "run_control.h"

namespace {

struct Common {
  std::string device;
  int threads = 0;
  bool verbose = false;
  int nproc = 0;
};

void add_common(CLI::App* app, Common& c) {
  app->add_option("--device", c.device, "cpu, cuda or cuda:N (default: CUDA when available)");
  app->add_option("--threads", c.threads, "CPU threads for LibTorch and the CRF (0 = all cores)");
  app->add_flag("-v,--verbose", c.verbose, "debug messages");
  app->add_option("--nproc", c.nproc,
                  "start N local ranks of this command (as torchrun --nproc-per-node N)");
}

/// The command line without its --nproc option: what each local rank runs.
std::vector<char*> without_nproc(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc") {
      ++i;
    } else if (a.rfind("--nproc=", 0) != 0) {
      args.push_back(argv[i]);
    }
  }
  return args;
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

namespace cli = clipes::cli;

/// `train`: its flags and its run.
struct TrainCommand {
  CLI::App* app = nullptr;
  std::string config_file;
  std::vector<std::string> overrides;
  clipes::seg::TrainInputs inputs;
  std::string init;
  std::string confidence;
  std::string split;
  std::string dist_backend;
  int dist_timeout = 300;

  void add(CLI::App& parent, Common& common) {
    app = parent.add_subcommand("train", "train on images + pseudo masks");
    clipes::cli::add_config_help(*app, clipes::seg::TrainConfig{});
    app->add_option("--config", config_file, "training config (configs/train-voc.json)")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("--images", inputs.data.images, "folder of <id>.jpg images")->required();
    app->add_option("--masks", inputs.data.masks, "folder of <id>.png pseudo masks")->required();
    app->add_option("--confidence", confidence, "folder of <id>.png 16-bit confidence maps");
    app->add_option("--split", split, "file listing the ids to train on (default: every mask)");
    app->add_option("--out", inputs.out, "output folder (checkpoints, log, plot)")->required();
    app->add_option("--init", init, "initial weights (scripts/convert_init_weights.py)");
    app->add_flag("--resume", inputs.resume, "continue from <out>/checkpoint.pt");
    app->add_option("--stop-after", inputs.stop_after,
                    "stop with a checkpoint after this iteration (resume later)");
    app->add_option("--set", overrides, "override a config value: --set optim.lr=2e-4");
    app->add_option("--dist-backend", dist_backend,
                    "gloo or nccl (default: NCCL on CUDA, Gloo on the CPU) for several ranks")
        ->check(CLI::IsMember({"gloo", "nccl"}));
    app->add_option("--dist-timeout", dist_timeout,
                    "seconds a rank waits for the others (joining, each step) before it stops "
                    "with an error naming the missing rank")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    add_common(app, common);
  }

  int run(const Common& common, int threads, clipes::seg::DistConfig dist,
          clipes::Reporter& reporter) {
    dist.backend = dist_backend;
    dist.timeout = std::chrono::seconds(dist_timeout);
    inputs.dist = dist;
    const clipes::seg::TrainConfig config = clipes::seg::load_train_config(config_file, overrides);
    inputs.data.confidence = confidence;
    inputs.data.split = split;
    inputs.init_weights = init;
    inputs.device = common.device;
    inputs.config_source = config_file;
    inputs.stop = cli::install_stop_signals();
    reporter.info(fmt::format("{} CPU threads, {} data workers", threads, config.data.workers));
    const auto r = clipes::seg::train_segmentation(config, inputs, reporter);
    spdlog::info(
        "{} iterations done (of {}), last loss {:.4f}; {}", r.iteration, config.optim.iterations,
        r.last_loss,
        r.finished ? "model: " + r.final_model.string() : "checkpoint: " + r.checkpoint.string());
    return r.interrupted ? cli::kExitInterrupted : cli::kExitOk;
  }
};

/// `predict`: its flags and its run.
struct PredictCommand {
  CLI::App* app = nullptr;
  clipes::seg::PredictInputs inputs;
  clipes::seg::PredictConfig config;
  std::string scales = "1.0";
  std::string split;
  std::string crf_image = "rgb";

  void add(CLI::App& parent, Common& common) {
    app = parent.add_subcommand("predict", "predict masks for a folder of images");
    app->add_option("--checkpoint", inputs.checkpoint, "model_final.pt or checkpoint.pt")
        ->required();
    app->add_option("--images", inputs.images, "folder of images")->required();
    app->add_option("--split", split, "file listing the ids to predict");
    app->add_option("--out", inputs.out, "folder for the <id>.png masks")->required();
    app->add_option("--scales", scales, "input scales, e.g. 0.5,0.75,1.0,1.25,1.5")
        ->capture_default_str();
    app->add_flag("--flip", config.flip, "also average the mirrored image");
    app->add_flag("--crf", config.crf,
                  "refine with the dense CRF, DeepLab's parameters: 10 iterations, "
                  "position weight 3 / sxy 1, bilateral weight 4 / sxy 67 / srgb 3");
    app->add_option("--crf-image", crf_image,
                    "image the CRF's bilateral kernel sees: rgb, or reference (BGR minus "
                    "the mean, wrapped to uint8, as the CLIP-ES reference code fed it)")
        ->capture_default_str()
        ->check(clipes::cli::enum_check<clipes::crf::CrfImageMode>());
    add_common(app, common);
  }

  int run(const Common& common, int threads, const clipes::seg::DistConfig& dist,
          clipes::Reporter& reporter) {
    inputs.split = split;
    inputs.device = clipes::seg::rank_device(common.device, dist);
    inputs.shard = {dist.rank, dist.world_size};  // ranks share the images, no process group
    config.scales = parse_scales(scales);
    config.crf_config.image = *clipes::config::parse_enum<clipes::crf::CrfImageMode>(crf_image);
    config.crf_config.threads = threads;
    const auto s = clipes::seg::predict_folder(inputs, config, reporter);
    spdlog::info("{} masks written to {}, {} images failed", s.written, inputs.out.string(),
                 s.failures.size());
    for (const auto& [id, reason] : s.failures) spdlog::error("failed: {}: {}", id, reason);
    return s.failures.empty() ? cli::kExitOk : cli::kExitSomeFailed;
  }
};

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  CLI::App app{
      "clipes-train-seg: train DeepLab-v2 (ResNet-101, MSC) on pseudo masks with the "
      "confidence-guided loss, and predict segmentation masks with it"};
  app.require_subcommand(1);
  Common common;
  TrainCommand train;
  train.add(app, common);
  PredictCommand predict;
  predict.add(app, common);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli::parse_error_exit(app, e);
  }
  cli::setup_logging(common.verbose);
  cli::ConsoleReporter reporter(common.verbose);
  try {
    if (common.nproc > 0) {  // this process only starts and waits for the ranks
      std::vector<char*> args = without_nproc(argc, argv);
      return cli::run_local_ranks(common.nproc, static_cast<int>(args.size()), args.data());
    }
    const int threads = cli::set_threads(common.threads);
    const clipes::seg::DistConfig dist =
        clipes::seg::dist_config_from_env(cli::launch_environment());
    cli::tag_logging_for_rank(dist.rank, dist.world_size, common.verbose);
    return train.app->parsed() ? train.run(common, threads, dist, reporter)
                               : predict.run(common, threads, dist, reporter);
  } catch (const clipes::WorkError& e) {
    spdlog::error("{}", e.what());
    return cli::kExitSomeFailed;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitUsage;
  }
}
