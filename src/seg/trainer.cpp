#include "clipes/seg/trainer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <fstream>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/seg/checkpoint.h"
#include "clipes/seg/distributed.h"
#include "clipes/seg/deeplab.h"
#include "clipes/seg/init_weights.h"
#include "clipes/seg/loss.h"
#include "clipes/seg/loss_plot.h"
#include "clipes/seg/optimizer.h"

namespace clipes::seg {

namespace fs = std::filesystem;

namespace {

std::string duration_text(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, static_cast<int>((s % 3600) / 60));
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, static_cast<int>(s % 60));
  return fmt::format("{}s", s);
}

std::string log_line(const HistoryRow& row) {
  return fmt::format(
      "{{\"iteration\": {}, \"loss\": {:.6f}, \"lr\": {:.6e}, \"seconds\": {:.4f}}}\n",
      row.iteration, row.loss, row.lr, row.seconds);
}

}  // namespace

std::string resolve_device(const std::string& requested) {
  if (requested.empty()) return torch::cuda::is_available() ? "cuda" : "cpu";
  if (requested.rfind("cuda", 0) == 0 && !torch::cuda::is_available()) {
    throw Error(
        fmt::format("device {} requested but LibTorch sees no CUDA GPU (this build or "
                    "machine is CPU-only); use --device cpu",
                    requested));
  }
  if (requested != "cpu" && requested.rfind("cuda", 0) != 0) {
    throw Error(fmt::format("device must be cpu, cuda or cuda:N, got \"{}\"", requested));
  }
  return requested;
}

std::string rank_device(const std::string& requested, const DistConfig& dist) {
  const std::string device = resolve_device(requested);
  return dist.world_size > 1 && device == "cuda" ? fmt::format("cuda:{}", dist.local_rank)
                                                 : device;
}

double train_step(DeepLabImpl& model, torch::optim::SGD& optimizer,
                  const std::vector<Batch>& batches, LossKind loss_kind, const std::string& device,
                  Communicator* group) {
  const c10::Device dev(device);
  const auto passes = static_cast<double>(batches.size());
  optimizer.zero_grad();
  double total = 0;
  for (const auto& batch : batches) {
    const at::Tensor images = batch.images.to(dev);
    const at::Tensor labels = batch.labels.to(dev);
    const LossTerms terms = multi_scale_loss_terms(model.forward_all(images), labels, loss_kind);
    if (group == nullptr) {
      at::Tensor loss = combine_loss_terms(terms.sums, terms.counts, loss_kind) / passes;
      loss.backward();
      total += loss.item<double>();
      continue;
    }
    // One all-reduce per pass: the global batch's pixel counts and summed losses.
    std::vector<double> local = terms.counts;
    for (const auto& sum : terms.sums) local.push_back(sum.item<double>());
    const std::vector<double> global = group->all_reduce_sum(local);
    const std::size_t n = terms.counts.size();
    const std::vector<double> counts(global.begin(), global.begin() + n);
    const std::vector<double> sums(global.begin() + n, global.end());
    (combine_loss_terms(terms.sums, counts, loss_kind) / passes).backward();
    total += combine_loss_terms(sums, counts, loss_kind) / passes;
  }
  if (group != nullptr) {
    std::vector<at::Tensor> grads;
    for (auto& p : model.parameters()) {
      if (p.requires_grad() && p.grad().defined()) grads.push_back(p.mutable_grad());
    }
    group->all_reduce_sum(grads);
  }
  optimizer.step();
  return total;
}

namespace {

/// Everything one training run holds, shared by its steps.
struct Run {
  TrainConfig config;
  const TrainInputs& inputs;
  Reporter& reporter;
  TrainResult result;
  std::unique_ptr<Communicator> group;  ///< null when training alone
  bool writer = true;                   ///< rank 0: the only rank that writes files
  std::optional<SegDataset> dataset;
  std::string fingerprint;
  DeepLab model{nullptr};
  std::unique_ptr<torch::optim::SGD> optimizer;
  CheckpointState state;

  Run(const TrainConfig& c, const TrainInputs& i, Reporter& r)
      : config(c), inputs(i), reporter(r) {}

  /// Runs `step` on every rank and stops them all when it failed on any (see agree()).
  template <typename Step>
  void together(const std::string& what, Step&& step) {
    if (!group) return step();
    std::string error;
    try {
      step();
    } catch (const std::exception& e) {
      error = e.what();
    }
    group->agree(error, what);
  }

  std::string workers_text() const {
    return group ? fmt::format(" ({} ranks over {}, batch {} per rank)", group->world_size(),
                               group->backend(), config.optim.batch_size / group->world_size())
                 : std::string();
  }
};

/// The job: the device of this rank and, with several ranks, the connected process group.
void join_job(Run& run) {
  const DistConfig& dist = run.inputs.dist;
  const std::string device = rank_device(run.inputs.device, dist);
  run.result.rank = dist.rank;
  run.result.world_size = dist.world_size;
  run.writer = dist.rank == 0;
  if (dist.world_size > 1) {
    if (run.config.optim.batch_size % dist.world_size != 0) {
      throw Error(fmt::format(
          "{}: optim.batch_size {} is the global batch and must be a multiple of the {} ranks "
          "of the job (set it to {} or launch {} ranks)",
          run.inputs.config_source, run.config.optim.batch_size, dist.world_size,
          (run.config.optim.batch_size / dist.world_size + 1) * dist.world_size,
          run.config.optim.batch_size));
    }
    run.group = std::make_unique<Communicator>(dist, device);
    run.reporter.info(fmt::format("rank {} of {} ({}, {} backend) on {}", dist.rank,
                                  dist.world_size, dist.origin, run.group->backend(), device));
  }
  run.result.device = device;
}

/// The dataset, checked (each rank decodes its share), and the output folder made ready.
void open_data(Run& run) {
  const TrainInputs& inputs = run.inputs;
  run.reporter.info(follow_mask_run(run.config, inputs.config_source, inputs.data.masks));
  run.dataset.emplace(inputs.data, run.config.model.num_classes,
                      run.config.data.confidence_threshold, exif_policy(run.config.input));
  const LoaderShard shard{run.result.rank, run.result.world_size};
  const auto check_start = std::chrono::steady_clock::now();
  throw_if_problems(check_training_data(*run.dataset, inputs.check_threads, shard),
                    fmt::format("training data ({} images; nothing was written)",
                                run.dataset->size()));
  run.reporter.info(fmt::format(
      "checked {} images, masks{} in {:.1f} s: all present, decodable, of matching sizes, "
      "values within the {} classes or 255{}",
      run.dataset->size(), inputs.data.confidence.empty() ? "" : " and confidence maps",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - check_start).count(),
      run.config.model.num_classes,
      shard.count > 1 ? fmt::format(" (this rank decoded 1 in {})", shard.count) : ""));
  run.fingerprint = fingerprint_ids(run.dataset->ids());
  run.result.checkpoint = inputs.out / "checkpoint.pt";
  run.result.log = inputs.out / "train_log.jsonl";
  if (!run.writer) return;
  fs::create_directories(inputs.out);
  for (const auto& entry : fs::directory_iterator(inputs.out)) {  // leftovers of a killed run
    if (entry.is_regular_file() && io::is_atomic_temporary(entry.path())) {
      run.reporter.debug(fmt::format("removing the unfinished file {}", entry.path().string()));
      fs::remove(entry.path());
    }
  }
  if (!inputs.resume && fs::exists(run.result.checkpoint)) {
    throw Error(fmt::format(
        "{} already holds a checkpoint: pass --resume to continue it, or choose another output "
        "folder",
        inputs.out.string()));
  }
}

/// Reads <out>/checkpoint.pt into the model and state after checking that it continues this
/// run; returns the reader (its optimiser state is loaded once the optimiser exists).
std::unique_ptr<CheckpointReader> open_resume(Run& run) {
  const fs::path& file = run.result.checkpoint;
  if (!fs::exists(file)) {
    throw Error(fmt::format("--resume: no checkpoint {} to resume from{}", file.string(),
                            run.writer ? "" : " (every rank reads it: --out must be on a file "
                                              "system all machines of the job see)"));
  }
  auto reader = std::make_unique<CheckpointReader>(file, run.result.device);
  const CheckpointState& saved = reader->state();
  const std::string diff = first_config_difference(saved.config, run.config);
  if (!diff.empty()) {
    throw Error(fmt::format(
        "--resume: the config differs from the one {} was trained with (first difference: {}); "
        "resume with the same config",
        file.string(), diff));
  }
  if (saved.dataset_fingerprint != run.fingerprint) {
    throw Error(fmt::format(
        "--resume: the image list differs from the one {} was trained on ({} vs {} "
        "ids/fingerprint)",
        file.string(), run.fingerprint, saved.dataset_fingerprint));
  }
  if (saved.world_size != run.result.world_size) {
    throw Error(fmt::format(
        "--resume: {} was trained by {} process{} and this job has {}: each rank's share of the "
        "batches depends on it; resume with {} (torchrun --nproc-per-node, srun -n, or --nproc)",
        file.string(), saved.world_size, saved.world_size == 1 ? "" : "es",
        run.result.world_size, saved.world_size));
  }
  reader->load_model(*run.model);
  run.state.iteration = saved.iteration;
  run.state.history = saved.history;
  run.state.sampler_state = saved.sampler_state;
  run.reporter.info(fmt::format("resuming from {} at iteration {}", file.string(),
                                run.state.iteration));
  return reader;
}

/// Up to 8 training samples, augmented with their own seeds, that calibrate the frozen
/// normalisation of a network trained from scratch (the same whatever the world size).
at::Tensor calibration_images(const Run& run) {
  std::vector<at::Tensor> images;
  const std::int64_t n = std::min<std::int64_t>(run.dataset->size(), 8);
  for (std::int64_t i = 0; i < n; ++i) {
    images.push_back(augment_sample(read_labelled_image(*run.dataset, i), run.config.data,
                                    run.config.input, run.config.seed + 0x9e3779b97f4a7c15ULL + i)
                         .image);
  }
  return at::stack(images);
}

/// Initial weights on rank 0 (the init file, or from scratch with calibrated normalisation).
void initialise(Run& run) {
  const TrainInputs& inputs = run.inputs;
  if (!inputs.init_weights.empty()) {
    const InitWeightsReport r = load_init_weights(*run.model, inputs.init_weights);
    run.reporter.info(fmt::format(
        "initial weights {}: {} backbone tensors{}{}", inputs.init_weights.string(),
        r.backbone_tensors, r.classifier_loaded ? " and the ASPP classifier" : "",
        r.unused.empty() ? "" : fmt::format(", {} unused", r.unused.size())));
    if (!r.classifier_loaded) run.reporter.debug(r.classifier_note);
    return;
  }
  const at::Tensor images = calibration_images(run);
  run.model->calibrate_normalisation(images);
  run.reporter.warn(fmt::format(
      "no initial weights: training from scratch, batch norm statistics calibrated on {} "
      "training images (fine for tests and small data, not for real runs: pass the converted "
      "ImageNet or COCO init)",
      images.size(0)));
}

/// The model, the optimiser and the state to start from, identical on every rank.
void build_model(Run& run) {
  run.model = DeepLab(run.config.model, run.config.seed);
  run.state.config = run.config;
  run.state.dataset_fingerprint = run.fingerprint;
  run.state.world_size = run.result.world_size;
  std::unique_ptr<CheckpointReader> reader;
  run.together("resuming", [&] {
    if (run.inputs.resume) {
      reader = open_resume(run);
    } else if (run.writer) {
      initialise(run);
    }
  });
  run.model->to(c10::Device(run.result.device));
  run.model->train();
  run.optimizer = make_optimizer(*run.model, run.config.optim);
  if (reader) reader->load_optimizer(*run.optimizer);
  if (run.group) {  // rank 0's weights (and frozen statistics) everywhere
    std::vector<at::Tensor> tensors;
    at::NoGradGuard no_grad;
    for (auto& p : run.model->parameters()) tensors.push_back(p);
    for (auto& b : run.model->buffers()) tensors.push_back(b);
    run.group->broadcast(tensors);
  }
  run.result.start_iteration = run.state.iteration;
}

/// The log holds exactly the steps of the checkpoint (lines of an interrupted run after it go)
/// and config.json the resolved config. Rank 0 only.
std::ofstream start_files(const Run& run) {
  std::string text;
  for (const auto& row : run.state.history) text += log_line(row);
  io::write_file_atomic(run.result.log, text);
  io::write_file_atomic(run.inputs.out / "config.json", dump_train_config(run.config) + "\n");
  std::ofstream log(run.result.log, std::ios::app);
  if (!log) throw Error(fmt::format("cannot append to {}", run.result.log.string()));
  return log;
}

/// Whether to stop after this step: a stop request on any rank stops them all together.
bool stop_requested(Run& run) {
  const bool local = run.inputs.stop != nullptr && run.inputs.stop->load();
  if (!run.group) return local;
  return run.group->all_reduce_sum({local ? 1.0 : 0.0}).at(0) > 0;
}

/// A progress line every log_every steps: the mean loss of the window, LR, speed and ETA.
class ProgressLog {
 public:
  ProgressLog(Reporter& reporter, std::int64_t start, std::int64_t total)
      : reporter_(reporter), start_(start), total_(total) {}

  void step(std::int64_t it, double loss, double lr, bool show) {
    loss_ += loss;
    ++count_;
    reporter_.progress("train", it, total_);
    if (!show) return;
    const double elapsed = std::chrono::duration<double>(clock::now() - t0_).count();
    const double per_iteration = elapsed / static_cast<double>(it - start_);
    reporter_.info(fmt::format(
        "iteration {}/{}: loss {:.4f} (mean of {}), lr {:.3e}, {:.2f} s/it, ETA {}", it, total_,
        loss_ / static_cast<double>(count_), count_, lr, per_iteration,
        duration_text(per_iteration * static_cast<double>(total_ - it))));
    loss_ = 0;
    count_ = 0;
  }

 private:
  using clock = std::chrono::steady_clock;
  Reporter& reporter_;
  std::int64_t start_;
  std::int64_t total_;
  clock::time_point t0_ = clock::now();
  double loss_ = 0;
  std::int64_t count_ = 0;
};

/// One iteration: LR, batches, step, log line, checkpoint. Returns whether to stop early.
bool iterate(Run& run, BatchLoader& loader, std::ofstream& log, ProgressLog& progress,
             std::int64_t it, std::int64_t end) {
  const TrainConfig& config = run.config;
  const auto t0 = std::chrono::steady_clock::now();
  const double lr =
      poly_learning_rate(config.optim.lr, it - 1, config.optim.iterations, config.optim.lr_poly_power);
  set_learning_rate(*run.optimizer, config.optim, lr);
  std::vector<Batch> batches;
  for (int k = 0; k < config.optim.iter_size; ++k) batches.push_back(loader.next());
  const double loss = train_step(*run.model, *run.optimizer, batches, config.loss,
                                 run.result.device, run.group.get());
  if (!std::isfinite(loss)) {
    throw WorkError(fmt::format("the loss became {} at iteration {} (lr {:.3g}); the last "
                                "checkpoint is {}",
                                loss, it, lr, run.result.checkpoint.string()));
  }
  const HistoryRow row{it, loss, lr,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
  run.state.history.push_back(row);
  run.state.iteration = it;
  run.result.last_loss = loss;
  if (run.writer) log << log_line(row) << std::flush;
  progress.step(it, loss, lr, it % config.log_every == 0 || it == end);
  const bool stopping = stop_requested(run) && it < end;
  if (it % config.checkpoint_every == 0 || it == end || stopping) {
    run.state.sampler_state = loader.sampler_state();
    if (run.writer) {
      save_checkpoint(run.result.checkpoint, *run.model, run.optimizer.get(), run.state);
      run.reporter.debug(
          fmt::format("checkpoint {} at iteration {}", run.result.checkpoint.string(), it));
    }
  }
  return stopping;
}

/// The iterations from the state's to `end`; errors become WorkErrors naming the checkpoint.
void train_loop(Run& run) {
  const TrainConfig& config = run.config;
  std::ofstream log;
  run.together("writing the log", [&] {
    if (run.writer) log = start_files(run);
  });
  BatchSampler sampler(run.dataset->size(), config.seed);
  if (!run.state.sampler_state.empty()) sampler.restore(run.state.sampler_state);
  BatchLoader loader(*run.dataset, config.data, config.input, std::move(sampler),
                     config.optim.batch_size, {run.result.rank, run.result.world_size});
  const std::int64_t total = config.optim.iterations;
  const std::int64_t end =
      run.inputs.stop_after > 0 ? std::min(run.inputs.stop_after, total) : total;
  ProgressLog progress(run.reporter, run.result.start_iteration, total);
  for (std::int64_t it = run.state.iteration + 1; it <= end; ++it) try {
      if (iterate(run, loader, log, progress, it, end)) {
        run.result.interrupted = true;
        break;
      }
    } catch (const std::exception& e) {
      const bool work = dynamic_cast<const WorkError*>(&e) != nullptr;
      const std::string message =
          work ? e.what()
               : fmt::format("iteration {}: {}; the last checkpoint is {}", it, e.what(),
                             fs::exists(run.result.checkpoint) ? run.result.checkpoint.string()
                                                               : std::string("(none yet)"));
      if (run.group) run.group->leave_error(message);
      throw WorkError(message);
    }
  run.result.iteration = run.state.iteration;
  run.result.finished = run.state.iteration >= total;
}

/// The final model and loss plot (rank 0), or how to continue.
void finish(Run& run) {
  TrainResult& result = run.result;
  if (!result.finished) {
    run.reporter.info(fmt::format("{} after iteration {} (checkpoint {}); continue with --resume",
                                  result.interrupted ? "interrupted" : "stopped", result.iteration,
                                  result.checkpoint.string()));
    return;
  }
  result.final_model = run.inputs.out / "model_final.pt";
  result.plot = run.inputs.out / "loss.png";
  if (run.writer) {
    save_checkpoint(result.final_model, *run.model, nullptr, run.state);
    write_loss_plot(result.plot, run.state.history);
  }
  run.reporter.info(
      fmt::format("finished: {} and {}", result.final_model.string(), result.plot.string()));
}

}  // namespace

TrainResult train_segmentation(const TrainConfig& given, const TrainInputs& inputs,
                               Reporter& reporter) {
  validate(given, inputs.config_source);
  Run run(given, inputs, reporter);
  join_job(run);
  run.together("checking the training data", [&] { open_data(run); });
  reporter.info(fmt::format("{} training images; {} iterations of {} x {} samples{}, crop {}, "
                            "ResNet-{}{} on {}",
                            run.dataset->size(), run.config.optim.iterations,
                            run.config.optim.batch_size, run.config.optim.iter_size,
                            run.workers_text(), run.config.data.crop_size, run.config.model.depth,
                            run.config.model.msc ? " MSC" : "", run.result.device));
  build_model(run);
  train_loop(run);
  try {
    run.together("writing the final model", [&] { finish(run); });
  } catch (const WorkError&) {
    throw;
  } catch (const std::exception& e) {
    throw WorkError(e.what());
  }
  return run.result;
}

}  // namespace clipes::seg
