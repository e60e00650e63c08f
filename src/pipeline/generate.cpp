#include "clipes/pipeline/generate.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "clipes/clip/model.h"
#include "clipes/clip/preprocess.h"
#include "clipes/clip/text_bank.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/blas.h"
#include "clipes/core/error.h"
#include "clipes/crf/pseudo_mask.h"
#include "clipes/data/batch_runner.h"
#include "clipes/data/image.h"
#include "clipes/io/files.h"
#include "clipes/pipeline/image_cams.h"
#include "clipes/pipeline/outputs.h"
#include "clip_session.h"

namespace clipes::pipeline {

namespace {

using detail::Clock;
using data::failure_reason;

// The CLIP stage's product for one image, handed to a CRF/writer thread.
struct Job {
  std::string id;
  std::vector<int> labels;
  cv::Mat rgb;  // CV_8UC3, original size
  ImageCams cams;
};

// A bounded queue between the CLIP stage and the workers.
class JobQueue {
 public:
  explicit JobQueue(std::size_t capacity) : capacity_(capacity) {}
  void push(Job job) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return jobs_.size() < capacity_; });
    jobs_.push_back(std::move(job));
    not_empty_.notify_one();
  }
  std::optional<Job> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return !jobs_.empty() || closed_; });
    if (jobs_.empty()) return std::nullopt;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    not_full_.notify_one();
    return job;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Job> jobs_;
  bool closed_ = false;
};

// Seconds per stage, summed by the CLIP stage and the workers.
class StageTimes {
 public:
  void add(double StageSeconds::*stage, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    seconds_.*stage += seconds;
  }
  StageSeconds total() {
    std::lock_guard<std::mutex> lock(mutex_);
    return seconds_;
  }

 private:
  std::mutex mutex_;
  StageSeconds seconds_;
};

// The CRF and the writing of one image's outputs, on a worker or the calling thread; reports
// the image done or failed to the runner.
class ImageFinisher {
 public:
  ImageFinisher(const GenerateConfig& config, const GenerateOptions& options,
                data::BatchRunner& runner, StageTimes& times)
      : config_(config), options_(options), runner_(runner), times_(times),
        class_names_(config.class_names()), mask_config_(config.pseudo_mask()) {
    // The CRF runs inside one image with as many threads as LibTorch has when it runs on the
    // calling thread (crf_workers 0), single-threaded on each worker thread otherwise.
    mask_config_.crf.threads = options.crf_workers == 0 ? at::get_num_threads() : 1;
  }

  // workspace: the running thread's (CRF buffers and position kernels reused image to image).
  void operator()(const Job& job, crf::CrfWorkspace& workspace) const {
    try {
      ImageOutputs outputs;
      outputs.keys.assign(job.labels.begin(), job.labels.end());
      outputs.cams = job.cams.refined;
      outputs.initial = job.cams.initial;
      outputs.image_rgb = job.rgb;
      if (config_.outputs.masks) add_mask(job, workspace, outputs);
      const auto start = Clock::now();
      write_image_outputs(options_.out_dir, job.id, outputs, config_.outputs, class_names_);
      times_.add(&StageSeconds::write, seconds_since(start));
      runner_.item_done();
    } catch (const std::exception& e) {
      runner_.item_failed(job.id, failure_reason(e));
    }
  }

 private:
  void add_mask(const Job& job, crf::CrfWorkspace& workspace, ImageOutputs& outputs) const {
    const auto start = Clock::now();
    const auto& refined = job.cams.refined;
    const crf::PlanarView cams{refined.data_ptr<float>(), static_cast<int>(refined.size(0)),
                               static_cast<int>(refined.size(1)),
                               static_cast<int>(refined.size(2))};
    auto mask = crf::make_pseudo_mask(cams, job.labels, job.rgb, mask_config_, &workspace);
    outputs.mask = mask.labels;
    outputs.confidence = mask.confidence;
    outputs.labels = mask.argmax;
    times_.add(&StageSeconds::crf, seconds_since(start));
  }

  const GenerateConfig& config_;
  const GenerateOptions& options_;
  data::BatchRunner& runner_;
  StageTimes& times_;
  std::vector<std::string> class_names_;
  crf::PseudoMaskConfig mask_config_;
};

// The output folder, created, without the temporaries an interrupted run left.
void prepare_output_folder(const std::filesystem::path& out_dir, Reporter& reporter) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    throw Error(
        fmt::format("cannot create the output folder {}: {}", out_dir.string(), ec.message()));
  }
  const auto stale = remove_stale_temporaries(out_dir, std::chrono::minutes(10));
  if (stale > 0) {
    reporter.info(fmt::format("removed {} temporary files left by an interrupted run", stale));
  }
}

nlohmann::json seconds_json(const StageSeconds& s) {
  return {{"decode", s.decode}, {"preprocess", s.preprocess},
          {"trunk", s.trunk},   {"last_block", s.last_block},
          {"caa", s.caa},       {"crf", s.crf},
          {"write", s.write}};
}

// run.json's "outputs": what each output folder holds.
nlohmann::json outputs_json(const GenerateConfig& c) {
  nlohmann::json outputs;
  if (c.outputs.masks) {
    outputs["masks"] = {
        {"folder", "masks"},
        {"format", "8-bit palette PNG, PASCAL VOC colour map"},
        {"values", "0 background, c+1 for class c (0-based index in config.classes), 255 ignored"},
        {"stage",
         "dense CRF on P = [1 - max_k cam_k, cam_1..cam_K] (background power 1, spec "
         "§7), unary -log(clip(P, 1e-5, 1)); label = argmax Q"},
        {"ignored", fmt::format("max Q < mu = {}", c.mask.confidence_threshold)},
        {"crf_image", crf::to_string(c.crf.image)}};
    if (c.outputs.labels) {
      outputs["labels"] = {{"folder", "labels"},
                           {"format", "8-bit palette PNG, PASCAL VOC colour map"},
                           {"values", "the masks before mu: argmax Q everywhere"}};
    }
    outputs["confidence"] = {{"folder", "confidence"},
                             {"format", "16-bit grey PNG"},
                             {"values", "round(max Q * 65535)"}};
  }
  if (c.outputs.cams) {
    outputs["cams"] = {
        {"folder", "cams"},
        {"format", "npz: keys int64 [K], cams [K,H,W], initial float32 [K,h,w]"},
        {"cams", fmt::format("refined CAMs after CAA, min-max normalised, resized to the image "
                             "(the reference's attn_highres), {}",
                             to_string(c.outputs.cam_dtype))},
        {"initial",
         "softmax-GradCAM before CAA on the patch grid (the reference's "
         "grayscale_cam)"},
        {"keys", "0-based class indices in label order (the channel order)"}};
  }
  if (c.outputs.overlays) {
    outputs["overlays"] = {{"folder", "overlays"}, {"format", "JPEG: image + mask colours"}};
  }
  return outputs;
}

// run.json (run-<I>of<N>.json for a shard): what was written, from which model, with which
// settings, and how fast. Returns the file written.
std::filesystem::path write_run_record(const GenerateOptions& options,
                                       const GenerateSummary& summary, const std::string& started,
                                       const GenerateConfig& config,
                                       const detail::LoadedClip& clip) {
  RunRecord record = detail::clip_run_record("clipes-generate", config, clip);
  record.started = started;
  record.finished = utc_now();
  record.config_file = options.config_source;
  record.overrides = options.overrides;
  record.device = options.device;
  record.threads = at::get_num_threads();
  record.shard_index = options.shard.index;
  record.shard_count = options.shard.count;
  record.limit = options.limit;
  record.counts = {summary.dataset_images, summary.selected, summary.skipped, summary.written,
                   static_cast<std::int64_t>(summary.failures.size())};
  for (const auto& failure : summary.failures) record.failures.push_back({failure.id, failure.reason});
  record.interrupted = summary.interrupted;
  record.wall_seconds = summary.wall_seconds;
  nlohmann::json run = detail::clip_run_record_json(record, config, clip);
  run["blas"] = openblas_core_name();
  run["crf_workers"] = options.crf_workers;
  run["outputs"] = outputs_json(config);
  run["counts"]["written"] = summary.written;
  run["seconds"] = seconds_json(summary.seconds);
  if (summary.written > 0) {
    const double n = static_cast<double>(summary.written);
    const auto& s = summary.seconds;
    run["seconds_per_image"] = seconds_json({s.decode / n, s.preprocess / n, s.trunk / n,
                                             s.last_block / n, s.caa / n, s.crf / n, s.write / n});
    run["images_per_second"] = n / summary.wall_seconds;
  }
  const auto file = options.out_dir /
                    (options.shard.count > 1
                         ? fmt::format("run-{}of{}.json", options.shard.index, options.shard.count)
                         : std::string("run.json"));
  io::write_file_atomic(file, run.dump(2) + "\n");
  return file;
}

}  // namespace

int default_crf_workers(const std::string& device, int cores) {
  if (device.rfind("cuda", 0) == 0) return std::max(1, cores - 1);
  return cores <= 4 ? 0 : cores / 4;
}

struct Generator::Impl {
  GenerateConfig config;
  detail::LoadedClip clip;  // load_seconds includes the text bank
  clip::TextBank bank;

  // Decoding, preprocessing, CAMs and CAA of one image, on the calling thread.
  Job clip_stage(const data::Sample& sample, StageTimes& times) const {
    const auto patch = static_cast<int>(clip.model.architecture().vision_patch_size);
    auto start = Clock::now();
    const data::LoadedImage image = data::load_image(sample.image, config.input.exif_orientation);
    times.add(&StageSeconds::decode, seconds_since(start));
    start = Clock::now();
    const at::Tensor pixels = detail::clip_input(image.decoded, config.input, patch);
    times.add(&StageSeconds::preprocess, seconds_since(start));
    Job job{sample.id, sample.labels, image.rgb,
            compute_image_cams(clip.model, pixels, bank.text_matrix(sample.labels),
                               static_cast<std::int64_t>(sample.labels.size()), image.rgb.cols,
                               image.rgb.rows, config.cam, config.caa)};
    times.add(&StageSeconds::trunk, job.cams.timings.trunk);
    times.add(&StageSeconds::last_block, job.cams.timings.last_block);
    times.add(&StageSeconds::caa, job.cams.timings.caa);
    return job;
  }
};

Generator::Generator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;
Generator::~Generator() = default;

const GenerateConfig& Generator::config() const { return impl_->config; }

Generator Generator::load(const GenerateConfig& config, const std::string& device, bool keep_fp16) {
  const auto start = Clock::now();
  auto loaded = detail::load_clip(config, device, keep_fp16);
  const PromptTexts prompts = build_prompt_texts(config);
  auto bank =
      clip::build_text_bank(loaded.model, loaded.tokenizer, prompts.foreground, prompts.background);
  loaded.model.release_text_tower();  // the bank is all the run needs of the text side
  loaded.load_seconds = seconds_since(start);
  return Generator(std::unique_ptr<Impl>(new Impl{config, std::move(loaded), std::move(bank)}));
}

std::string Generator::describe() const {
  const auto& c = impl_->config;
  const auto& tokenizer = impl_->clip.tokenizer;
  const auto& checkpoint = impl_->clip.model.checkpoint();
  std::string out = fmt::format("model: {}\n  format: {}\n", c.model, checkpoint.format);
  if (checkpoint.weights != std::filesystem::path(c.model)) {
    out += fmt::format("  weights: {}\n", checkpoint.weights.string());
  }
  if (!checkpoint.config.empty()) out += fmt::format("  config: {}\n", checkpoint.config.string());
  out += fmt::format("  sha256: {}\n", impl_->clip.model_sha256);
  std::string architecture = impl_->clip.model.architecture().describe();
  for (std::size_t at = 0, next; at < architecture.size(); at = next + 1) {
    next = architecture.find('\n', at);
    if (next == std::string::npos) next = architecture.size();
    if (next > at) out += "  " + architecture.substr(at, next - at) + "\n";
  }
  out += fmt::format("vocabulary: {} ({} merges)\n", c.vocab, tokenizer.num_merges());
  out += fmt::format("template: \"{}\"\n", c.prompt_template);
  const PromptTexts prompts = build_prompt_texts(c);
  const auto context = static_cast<std::size_t>(impl_->clip.model.architecture().context_length);
  out += fmt::format("classes ({}):\n", c.classes.size());
  for (std::size_t i = 0; i < c.classes.size(); ++i) {
    out +=
        fmt::format("  {:>3} {:<24} \"{}\" ({} of {} tokens)\n", i, c.classes[i].name,
                    prompts.foreground[i], tokenizer.token_count(prompts.foreground[i]), context);
  }
  out += fmt::format("background ({}):\n", c.background.size());
  for (const auto& sentence : prompts.background) {
    out += fmt::format("      \"{}\" ({} tokens)\n", sentence, tokenizer.token_count(sentence));
  }
  out += fmt::format(
      "CAM: mean attention of the last {} blocks; CAA: box threshold {}, {} "
      "Sinkhorn rounds, power {}\n",
      c.cam.attention_blocks, c.caa.box_threshold, c.caa.sinkhorn_rounds, c.caa.power);
  if (c.outputs.masks) {
    const auto& crf = c.crf;
    out += fmt::format(
        "CRF: {} iterations, Gaussian σ {} w {}, bilateral σ {} σ_rgb {} w {}, "
        "image {}; confidence threshold μ {}\n",
        crf.iterations, crf.pos_std, crf.pos_weight, crf.bilateral_std, crf.bilateral_rgb_std,
        crf.bilateral_weight, crf::to_string(crf.image), c.mask.confidence_threshold);
  } else {
    out += "CRF: off (CAM stage only)\n";
  }
  out += fmt::format("input: max side {}, max patch tokens {}\n", c.input.max_side,
                     c.input.max_tokens);
  return out;
}

GenerateSummary Generator::run(const GenerateOptions& options, Reporter& reporter,
                               const std::atomic<bool>* stop) const {
  const auto& config = impl_->config;
  if (options.out_dir.empty()) throw Error("generate: no output folder given");
  if (options.crf_workers < 0) {
    throw Error(fmt::format("generate: crf_workers must be >= 0, got {}", options.crf_workers));
  }
  const auto run_start = Clock::now();
  const std::string started = utc_now();
  prepare_output_folder(options.out_dir, reporter);
  const auto samples = data::read_dataset(config.dataset, config.class_names());
  data::BatchRunner runner(data::batch_items(samples),
                           {"generate", options.shard, options.limit, stop}, reporter);
  if (!options.overwrite) {
    runner.resume(find_complete_ids(options.out_dir, runner.selected_ids(), config.outputs));
  }
  const RunCounts counts = runner.counts();
  reporter.info(
      fmt::format("{} images in the dataset, {} selected{}, {} already done, {} to do",
                  counts.dataset, counts.selected,
                  options.shard.count > 1
                      ? fmt::format(" (shard {}/{})", options.shard.index, options.shard.count)
                      : "",
                  counts.skipped, counts.selected - counts.skipped));

  StageTimes times;
  const ImageFinisher finish(config, options, runner, times);
  JobQueue queue(static_cast<std::size_t>(options.crf_workers) + 1);
  std::vector<std::thread> workers;
  for (int i = 0; i < options.crf_workers; ++i) {
    workers.emplace_back([&] {
      crf::CrfWorkspace workspace;
      while (auto job = queue.pop()) finish(*job, workspace);
    });
  }
  crf::CrfWorkspace workspace;  // this thread's, for crf_workers 0
  runner.run([&](std::size_t index) {
    Job job = impl_->clip_stage(samples[index], times);
    if (options.crf_workers == 0) {
      finish(job, workspace);
    } else {
      queue.push(std::move(job));
    }
    return data::ItemOutcome::kHandedOff;  // the finisher reports it
  });
  queue.close();
  for (auto& thread : workers) thread.join();

  GenerateSummary summary;
  const RunCounts done = runner.counts();
  summary.dataset_images = done.dataset;
  summary.selected = done.selected;
  summary.skipped = done.skipped;
  summary.written = done.done;
  summary.failures = runner.failures();
  summary.interrupted = runner.interrupted();
  summary.seconds = times.total();
  summary.wall_seconds = seconds_since(run_start);
  summary.run_file = write_run_record(options, summary, started, impl_->config, impl_->clip);
  return summary;
}

}  // namespace clipes::pipeline
