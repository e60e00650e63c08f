#include "clipes/seg/trainer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/seg/checkpoint.h"
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

double train_step(DeepLabImpl& model, torch::optim::SGD& optimizer,
                  const std::vector<Batch>& batches, LossKind loss_kind,
                  const std::string& device) {
  const c10::Device dev(device);
  optimizer.zero_grad();
  double total = 0;
  for (const auto& batch : batches) {
    const at::Tensor images = batch.images.to(dev);
    const at::Tensor labels = batch.labels.to(dev);
    at::Tensor loss = multi_scale_loss(model.forward_all(images), labels, loss_kind) /
                      static_cast<double>(batches.size());
    loss.backward();
    total += loss.item<double>();
  }
  optimizer.step();
  return total;
}

TrainResult train_segmentation(const TrainConfig& given, const TrainInputs& inputs,
                               Reporter& reporter) {
  validate(given, inputs.config_source);
  TrainConfig config = given;
  reporter.info(follow_mask_run(config, inputs.config_source, inputs.data.masks));
  TrainResult result;
  result.device = resolve_device(inputs.device);

  SegDataset dataset(inputs.data, config.model.num_classes, config.data.confidence_threshold,
                     exif_policy(config.input));
  const auto check_start = std::chrono::steady_clock::now();
  throw_if_problems(check_training_data(dataset, inputs.check_threads),
                    fmt::format("training data ({} images; nothing was written)", dataset.size()));
  reporter.info(fmt::format(
      "checked {} images, masks{} in {:.1f} s: all present, decodable, of matching sizes, "
      "values within the {} classes or 255",
      dataset.size(), inputs.data.confidence.empty() ? "" : " and confidence maps",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - check_start).count(),
      config.model.num_classes));
  fs::create_directories(inputs.out);
  for (const auto& entry : fs::directory_iterator(inputs.out)) {  // leftovers of a killed run
    if (entry.is_regular_file() && io::is_atomic_temporary(entry.path())) {
      reporter.debug(fmt::format("removing the unfinished file {}", entry.path().string()));
      fs::remove(entry.path());
    }
  }
  result.checkpoint = inputs.out / "checkpoint.pt";
  result.log = inputs.out / "train_log.jsonl";
  const std::int64_t total = config.optim.iterations;

  const std::string fingerprint = fingerprint_ids(dataset.ids());
  reporter.info(fmt::format(
      "{} training images; {} iterations of {} x {} samples, crop {}, "
      "ResNet-{}{} on {}",
      dataset.size(), total, config.optim.batch_size, config.optim.iter_size, config.data.crop_size,
      config.model.depth, config.model.msc ? " MSC" : "", result.device));

  DeepLab model(config.model, config.seed);
  CheckpointState state;
  state.config = config;
  state.dataset_fingerprint = fingerprint;
  std::unique_ptr<CheckpointReader> reader;
  if (inputs.resume) {
    if (!fs::exists(result.checkpoint)) {
      throw Error(
          fmt::format("--resume: no checkpoint {} to resume from", result.checkpoint.string()));
    }
    reader = std::make_unique<CheckpointReader>(result.checkpoint, result.device);
    const std::string diff = first_config_difference(reader->state().config, config);
    if (!diff.empty()) {
      throw Error(
          fmt::format("--resume: the config differs from the one {} was trained with "
                      "(first difference: {}); resume with the same config",
                      result.checkpoint.string(), diff));
    }
    if (reader->state().dataset_fingerprint != fingerprint) {
      throw Error(fmt::format(
          "--resume: the image list differs from the one {} was trained "
          "on ({} vs {} ids/fingerprint)",
          result.checkpoint.string(), fingerprint, reader->state().dataset_fingerprint));
    }
    reader->load_model(*model);
    state.iteration = reader->state().iteration;
    state.history = reader->state().history;
    state.sampler_state = reader->state().sampler_state;
    reporter.info(fmt::format("resuming from {} at iteration {}", result.checkpoint.string(),
                              state.iteration));
  } else {
    if (fs::exists(result.checkpoint)) {
      throw Error(
          fmt::format("{} already holds a checkpoint: pass --resume to continue it, or "
                      "choose another output folder",
                      inputs.out.string()));
    }
    if (!inputs.init_weights.empty()) {
      const InitWeightsReport r = load_init_weights(*model, inputs.init_weights);
      reporter.info(
          fmt::format("initial weights {}: {} backbone tensors{}{}", inputs.init_weights.string(),
                      r.backbone_tensors, r.classifier_loaded ? " and the ASPP classifier" : "",
                      r.unused.empty() ? "" : fmt::format(", {} unused", r.unused.size())));
      if (!r.classifier_loaded) reporter.debug(r.classifier_note);
    } else {
      reporter.warn(
          "no initial weights: training from scratch (fine for tests, not for real "
          "runs: pass the converted ImageNet or COCO init)");
    }
  }
  model->to(c10::Device(result.device));
  model->train();
  std::unique_ptr<torch::optim::SGD> optimizer = make_optimizer(*model, config.optim);
  if (reader) reader->load_optimizer(*optimizer);
  reader.reset();
  result.start_iteration = state.iteration;

  // The log holds exactly the steps of the checkpoint; lines of an interrupted run after it go.
  {
    std::string text;
    for (const auto& row : state.history) text += log_line(row);
    io::write_file_atomic(result.log, text);
  }
  io::write_file_atomic(inputs.out / "config.json", dump_train_config(config) + "\n");
  std::ofstream log(result.log, std::ios::app);
  if (!log) throw Error(fmt::format("cannot append to {}", result.log.string()));

  BatchSampler sampler(dataset.size(), config.seed);
  if (!state.sampler_state.empty()) sampler.restore(state.sampler_state);
  BatchLoader loader(dataset, config.data, config.input, std::move(sampler),
                     config.optim.batch_size);

  const std::int64_t end = inputs.stop_after > 0 ? std::min(inputs.stop_after, total) : total;
  const auto run_start = std::chrono::steady_clock::now();
  double window_loss = 0;
  std::int64_t window_count = 0;
  for (std::int64_t it = state.iteration + 1; it <= end; ++it) try {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr =
        poly_learning_rate(config.optim.lr, it - 1, total, config.optim.lr_poly_power);
    set_learning_rate(*optimizer, config.optim, lr);
    std::vector<Batch> batches;
    for (int k = 0; k < config.optim.iter_size; ++k) batches.push_back(loader.next());
    const double loss = train_step(*model, *optimizer, batches, config.loss, result.device);
    if (!std::isfinite(loss)) {
      throw WorkError(
          fmt::format("the loss became {} at iteration {} (lr {:.3g}); the last "
                      "checkpoint is {}",
                      loss, it, lr, result.checkpoint.string()));
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const HistoryRow row{it, loss, lr, seconds};
    state.history.push_back(row);
    state.iteration = it;
    log << log_line(row) << std::flush;
    result.last_loss = loss;
    window_loss += loss;
    ++window_count;
    reporter.progress("train", it, total);
    if (it % config.log_every == 0 || it == end) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
      const double per_iteration = elapsed / static_cast<double>(it - result.start_iteration);
      reporter.info(fmt::format(
          "iteration {}/{}: loss {:.4f} (mean of {}), lr {:.3e}, "
          "{:.2f} s/it, ETA {}",
          it, total, window_loss / static_cast<double>(window_count), window_count, lr,
          per_iteration, duration_text(per_iteration * static_cast<double>(total - it))));
      window_loss = 0;
      window_count = 0;
    }
    const bool stopping = inputs.stop != nullptr && inputs.stop->load() && it < end;
    if (it % config.checkpoint_every == 0 || it == end || stopping) {
      state.sampler_state = loader.sampler_state();
      save_checkpoint(result.checkpoint, *model, optimizer.get(), state);
      reporter.debug(fmt::format("checkpoint {} at iteration {}", result.checkpoint.string(), it));
    }
    if (stopping) {
      result.interrupted = true;
      break;
    }
  } catch (const WorkError&) {
    throw;
  } catch (const std::exception& e) {
    throw WorkError(fmt::format("iteration {}: {}; the last checkpoint is {}", it, e.what(),
                                fs::exists(result.checkpoint) ? result.checkpoint.string()
                                                              : std::string("(none yet)")));
  }
  result.iteration = state.iteration;
  result.finished = state.iteration >= total;
  if (result.finished) {
    result.final_model = inputs.out / "model_final.pt";
    save_checkpoint(result.final_model, *model, nullptr, state);
    result.plot = inputs.out / "loss.png";
    write_loss_plot(result.plot, state.history);
    reporter.info(
        fmt::format("finished: {} and {}", result.final_model.string(), result.plot.string()));
  } else {
    reporter.info(fmt::format("{} after iteration {} (checkpoint {}); continue with --resume",
                              result.interrupted ? "interrupted" : "stopped", result.iteration,
                              result.checkpoint.string()));
  }
  return result;
}

}  // namespace clipes::seg
