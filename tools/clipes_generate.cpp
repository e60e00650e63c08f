// clipes-generate: pseudo masks, confidence maps and CAMs for a dataset with image-level labels
// (CLIP-ES: softmax-GradCAM, class-aware attention affinity, dense CRF); with --rank-prompts,
// the ranking of prompt templates by sharpness instead (spec §5). Exit codes (run_control.h): 0
// every image done, 1 some images failed or were skipped (listed in run.json /
// prompt_ranking.json and at the end), 2 usage or config error, 130 interrupted (run the same
// command again to resume).

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "clipes/clip/activation.h"
#include "clipes/core/blas.h"
#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/pipeline/generate.h"
#include "config_help.h"
#include "console_reporter.h"
#include "generate_cli.h"
#include "launch.h"
#include "process_setup.h"
#include "rank_prompts_cli.h"
#include "run_control.h"

namespace {

namespace cli = clipes::cli;
namespace pipeline = clipes::pipeline;

/// The command line: its flags, and the options they fill.
struct GenerateCommand {
  std::string config_file, data_root, split, labels, model, vocab, shard = "0/1", cam_dtype, rank;
  std::string model_config, model_act, model_heads;
  std::vector<std::string> overrides;
  pipeline::GenerateOptions options;
  int threads = 0;
  int crf_workers = -1;
  bool no_crf = false, no_cams = false, overlays = false, dry_run = false, verbose = false;
  bool exact_text = false;
  CLI::Option* out = nullptr;

  void add(CLI::App& app) {
    app.add_option("--config", config_file,
                   "config JSON (configs/voc.json, configs/coco.json, ...)")
        ->required()
        ->check(CLI::ExistingFile);
    clipes::cli::add_config_help(app, clipes::pipeline::GenerateConfig{});
    app.add_option("--data-root", data_root, "dataset folder (dataset.root)")
        ->check(CLI::ExistingDirectory);
    app.add_option("--split", split, "file of image ids (dataset.split)")->check(CLI::ExistingFile);
    app.add_option("--labels", labels, "labels file `<id> <class> ...` (dataset.labels)")
        ->check(CLI::ExistingFile);
    add_model_options(app);
    out = app.add_option("--out", options.out_dir, "output folder");
    add_run_options(app);
    add_output_options(app);
    app.add_option("--set", overrides,
                   "override a config key by its JSON path: --set crf.image=reference")
        ->take_all();
    app.add_flag("-v,--verbose", verbose, "debug messages");
    add_ranking_options(app);
  }

  void add_model_options(CLI::App& app) {
    app.add_option("--model", model,
                   "CLIP checkpoint: OpenAI's ViT-B-16.pt, open_clip_model.safetensors, a "
                   "transformers folder (config.json + model.safetensors) (model)");
    app.add_option("--model-config", model_config,
                   "open_clip model name (ViT-B-16, ViT-H-14, ...-quickgelu) or config JSON, for "
                   "checkpoints without one beside them (model_config)");
    app.add_option("--model-act", model_act,
                   "quick_gelu or gelu, for checkpoints that do not say (model_act)")
        ->check(clipes::cli::enum_check<clipes::clip::Activation>());
    app.add_option("--model-heads", model_heads,
                   "VISION,TEXT head counts, for checkpoints that do not say (model_heads)");
    app.add_option("--vocab", vocab, "bpe_simple_vocab_16e6.txt.gz (vocab)");
  }

  void add_run_options(CLI::App& app) {
    app.add_option("--device", options.device, "cpu, cuda or cuda:N")->capture_default_str();
    app.add_flag("--fp16", options.keep_fp16, "CUDA: keep the release float16 weights");
    app.add_option("--threads", threads, "LibTorch threads (0 = all cores)")
        ->check(CLI::NonNegativeNumber);
    app.add_option(
           "--crf-workers", crf_workers,
           "threads running the CRF beside CLIP (0: after it; default: by device and cores)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--limit", options.limit, "at most N images (of this shard)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--shard", shard,
                   "process shard I of N (0-based), e.g. 3/8; auto: the shard a SLURM array, "
                   "Kubernetes indexed job or torchrun/srun job gives this process");
  }

  void add_output_options(CLI::App& app) {
    app.add_flag("--no-crf", no_crf, "CAM stage only: no CRF, no masks (outputs.masks=false)");
    app.add_flag("--no-cams", no_cams, "do not write cams/<id>.npz (outputs.cams=false)");
    app.add_option("--cam-dtype", cam_dtype, "float16 or float32 (outputs.cam_dtype)")
        ->check(clipes::cli::enum_check<clipes::pipeline::CamDtype>());
    app.add_flag("--overlays", overlays, "write overlays/<id>.jpg (outputs.overlays=true)");
    app.add_flag("--overwrite", options.overwrite, "redo images whose outputs exist");
    app.add_flag("--dry-run", dry_run,
                 "load and check everything, print the setup, process nothing");
  }

  void add_ranking_options(CLI::App& app) {
    app.add_option("--rank-prompts", rank,
                   "rank the templates of this file (one per line, {} = class) by sharpness and "
                   "write prompt_ranking.json into --out (default: .) instead of generating")
        ->check(CLI::ExistingFile)
        ->excludes("--dry-run", "--no-crf", "--no-cams", "--cam-dtype", "--overlays", "--overwrite",
                   "--crf-workers");
    app.add_flag("--exact-text", exact_text,
                 "--rank-prompts: encode each sentence alone as the reference does (its exact "
                 "scores; the text side 10x slower) rather than one batch per template")
        ->needs("--rank-prompts");
  }

  /// After parsing: --out is needed to generate; --shard (or auto) becomes options.shard.
  void check_and_resolve_shard() {
    if (!dry_run && rank.empty() && options.out_dir.empty()) {
      throw CLI::RequiredError(out->get_name());
    }
    std::string shard_origin;
    options.shard = shard == "auto" ? clipes::data::shard_from_environment(
                                          cli::launch_environment(), &shard_origin)
                                    : clipes::data::parse_shard(shard);
    if (!shard_origin.empty()) {
      std::cerr << "clipes-generate: --shard auto: shard " << options.shard.index << "/"
                << options.shard.count << " of a " << shard_origin << "\n";
    }
  }

  /// Command-line flags are overrides of config keys, applied after the user's --set.
  void add_flag_overrides() {
    using cli::set_path;
    if (!data_root.empty()) overrides.push_back(set_path("dataset.root", data_root));
    if (!split.empty()) overrides.push_back(set_path("dataset.split", split));
    if (!labels.empty()) overrides.push_back(set_path("dataset.labels", labels));
    if (!model.empty()) overrides.push_back(set_path("model", model));
    if (!vocab.empty()) overrides.push_back(set_path("vocab", vocab));
    if (!model_config.empty()) {
      // A name open_clip knows stays a name; a file is made absolute like --model.
      overrides.push_back(
          set_path("model_config", model_config, std::filesystem::exists(model_config)));
    }
    if (!model_act.empty()) overrides.push_back(set_path("model_act", model_act, false));
    if (!model_heads.empty()) overrides.push_back("model_heads=[" + model_heads + "]");
    if (no_crf) overrides.push_back("outputs.masks=false");
    if (no_cams) overrides.push_back("outputs.cams=false");
    if (!cam_dtype.empty()) overrides.push_back(set_path("outputs.cam_dtype", cam_dtype, false));
    if (overlays) overrides.push_back("outputs.overlays=true");
    options.config_source = config_file;
    options.overrides = overrides;
  }

  /// --rank-prompts: ranks the templates instead of generating.
  int rank_prompts(const pipeline::GenerateConfig& config, clipes::Reporter& reporter) {
    spdlog::info("clipes-generate --rank-prompts: {} LibTorch threads, model {}",
                 cli::set_threads(threads), config.model);
    const pipeline::RankingOptions ranking{options.out_dir, options.device, options.keep_fp16,
                                           options.shard,   options.limit,  config_file,
                                           overrides,       rank,           exact_text};
    return cli::rank_prompts(config, rank, ranking, reporter, cli::install_stop_signals());
  }

  /// Splits the cores between LibTorch and the CRF workers, sets them and logs the setup.
  void set_workers_and_threads(const pipeline::GenerateConfig& config) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    options.crf_workers = crf_workers >= 0 ? crf_workers
                                           : pipeline::default_crf_workers(options.device, cores);
    // CRF workers on the CPU take their cores from LibTorch's share.
    if (threads == 0 && options.device == "cpu") threads = std::max(1, cores - options.crf_workers);
    spdlog::info("clipes-generate: {} LibTorch threads (OpenBLAS {}), {} CRF workers, model {}",
                 cli::set_threads(threads), clipes::openblas_core_name(), options.crf_workers,
                 config.model);
  }
};

/// --dry-run: prints the setup and the dataset's problems, processes nothing.
int print_dry_run(const pipeline::Generator& generator, const pipeline::GenerateConfig& config) {
  std::cout << generator.describe();
  const auto samples = clipes::data::read_dataset(config.dataset, config.class_names());
  std::size_t bad = 0;
  for (const auto& sample : samples) {
    if (!sample.ok() && bad++ < 10) std::cout << "  problem: " << sample.problem << "\n";
  }
  std::cout << fmt::format("dataset: {} images, {} with problems (they would be skipped)\n",
                           samples.size(), bad);
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kFastest);
  using namespace clipes;
  CLI::App app{
      "clipes-generate: CLIP-ES pseudo masks, confidence maps and CAMs from image-level "
      "labels"};
  GenerateCommand command;
  command.add(app);
  try {
    app.parse(argc, argv);
    command.check_and_resolve_shard();
  } catch (const CLI::ParseError& e) {
    return cli::parse_error_exit(app, e);
  } catch (const Error& e) {
    std::cerr << "clipes-generate: " << e.what() << "\n";
    return cli::kExitUsage;
  }
  cli::setup_logging(command.verbose);
  cli::ConsoleReporter reporter(command.verbose);
  command.add_flag_overrides();

  std::optional<pipeline::Generator> generator;
  try {
    const auto config = pipeline::load_generate_config(command.config_file, command.overrides);
    if (!command.rank.empty()) return command.rank_prompts(config, reporter);
    command.set_workers_and_threads(config);
    generator.emplace(
        pipeline::Generator::load(config, command.options.device, command.options.keep_fp16));
    if (command.dry_run) return print_dry_run(*generator, config);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitUsage;
  }
  const std::atomic<bool>* stop = cli::install_stop_signals();
  try {
    return cli::report_generate_summary(generator->run(command.options, reporter, stop));
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return cli::kExitUsage;
  }
}
