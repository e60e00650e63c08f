#include "clipes/seg/seg_data.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <thread>

#include "clipes/core/error.h"
#include "clipes/data/dataset.h"
#include "clipes/io/png.h"
#include "clipes/seg/loss.h"

namespace clipes::seg {

namespace fs = std::filesystem;

namespace {

constexpr std::array<const char*, 5> kImageExtensions{".jpg", ".jpeg", ".png", ".JPG", ".JPEG"};

fs::path find_image(const fs::path& folder, const std::string& id) {
  for (const char* ext : kImageExtensions) {
    fs::path candidate = folder / (id + ext);
    if (fs::is_regular_file(candidate)) return candidate;
  }
  return {};
}

// Runs check(i) for i in [0, n) on `threads` threads (0: one per core); returns the messages of
// what they threw, in index order.
std::vector<std::string> problems_in_parallel(std::int64_t n, int threads,
                                              const std::function<void(std::int64_t)>& check) {
  std::vector<std::string> found(static_cast<std::size_t>(n));
  std::atomic<std::int64_t> next{0};
  const auto work = [&] {
    for (std::int64_t i = next++; i < n; i = next++) {
      try {
        check(i);
      } catch (const std::exception& e) {
        found[static_cast<std::size_t>(i)] = e.what();
      }
    }
  };
  const std::int64_t wanted =
      threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  const int count = static_cast<int>(std::max<std::int64_t>(1, std::min(n, wanted)));
  std::vector<std::thread> pool;
  for (int t = 1; t < count; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  std::vector<std::string> problems;
  for (auto& f : found) {
    if (!f.empty()) problems.push_back(std::move(f));
  }
  return problems;
}

void require_folder(const fs::path& folder, const char* what) {
  if (!fs::is_directory(folder)) {
    throw Error(fmt::format("{} folder {} does not exist", what, folder.string()));
  }
}

/// A uniform integer in [0, n) from the top 53 bits of one draw (portable across libraries).
std::int64_t uniform_index(std::mt19937_64& rng, std::int64_t n) {
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  return std::min<std::int64_t>(static_cast<std::int64_t>(u * static_cast<double>(n)), n - 1);
}

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

/// PIL-style nearest resize of an 8-bit label map (source index floor((i + 0.5) * in / out)).
cv::Mat resize_label(const cv::Mat& label, int height, int width) {
  if (label.rows == height && label.cols == width) return label.clone();
  std::vector<int> cols(static_cast<std::size_t>(width));
  for (int x = 0; x < width; ++x) {
    cols[x] = std::min(label.cols - 1, static_cast<int>((x + 0.5) * label.cols / width));
  }
  cv::Mat out(height, width, CV_8UC1);
  for (int y = 0; y < height; ++y) {
    const int sy = std::min(label.rows - 1, static_cast<int>((y + 0.5) * label.rows / height));
    const std::uint8_t* src = label.ptr<std::uint8_t>(sy);
    std::uint8_t* dst = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < width; ++x) dst[x] = src[cols[x]];
  }
  return out;
}

}  // namespace

// ---- dataset ----------------------------------------------------------------------------------

data::ExifOrientation exif_policy(const InputConfig& input) {
  return data::parse_exif_orientation(input.exif_orientation)
      .value_or(data::ExifOrientation::kStored);
}

std::string follow_mask_run(TrainConfig& config, const std::string& config_source,
                            const fs::path& masks) {
  const auto run = data::find_mask_run(masks);
  if (!run) {
    return fmt::format(
        "{} has no run.json beside it (masks not written by clipes-generate): the config {} "
        "is used as it is (model.num_classes {}, data.confidence_threshold {}, "
        "input.exif_orientation \"{}\")",
        masks.string(), config_source, config.model.num_classes,
        config.data.confidence_threshold, data::to_string(exif_policy(config.input)));
  }
  const std::string run_file = run->file.string();
  if (config.model.num_classes != run->num_classes()) {
    throw Error(fmt::format(
        "model.num_classes is {} in {} but the masks' run {} has {} classes + background = {}: "
        "set model.num_classes to {}",
        config.model.num_classes, config_source, run_file, run->class_names.size(),
        run->num_classes(), run->num_classes()));
  }
  if (config.data.confidence_threshold < run->confidence_threshold) {
    throw Error(fmt::format(
        "data.confidence_threshold (μ) is {} in {} but the masks' run {} used μ = {}: its masks "
        "already hold 255 wherever the confidence is below {}, so a lower μ cannot bring those "
        "pixels back (μ can only tighten); use μ >= {}, or run clipes-generate again with --set "
        "mask.confidence_threshold={}",
        config.data.confidence_threshold, config_source, run_file, run->confidence_threshold,
        run->confidence_threshold, run->confidence_threshold, config.data.confidence_threshold));
  }
  const std::string run_policy(data::to_string(run->exif));
  if (!config.input.exif_orientation.empty() && config.input.exif_orientation != run_policy) {
    throw Error(fmt::format(
        "input.exif_orientation is \"{}\" in {} but the masks' run {} decoded its images with "
        "\"{}\": the masks would not line up with the pixels; remove the key or set it to \"{}\"",
        config.input.exif_orientation, config_source, run_file, run_policy, run_policy));
  }
  config.input.exif_orientation = run_policy;
  return fmt::format(
      "following the generate run {}: {} classes + background, its μ {} (training μ {}), "
      "images decoded as \"{}\"",
      run_file, run->class_names.size(), run->confidence_threshold,
      config.data.confidence_threshold, run_policy);
}

SegDataset::SegDataset(SegDataPaths paths, int num_classes, float confidence_threshold,
                       data::ExifOrientation exif)
    : paths_(std::move(paths)),
      num_classes_(num_classes),
      confidence_threshold_(confidence_threshold),
      exif_(exif) {
  require_folder(paths_.images, "image");
  require_folder(paths_.masks, "mask");
  if (!paths_.confidence.empty()) require_folder(paths_.confidence, "confidence");
  if (!paths_.split.empty()) {
    ids_ = data::read_split_ids(paths_.split);
  } else {
    for (const auto& entry : fs::directory_iterator(paths_.masks)) {
      if (entry.is_regular_file() && entry.path().extension() == ".png" &&
          entry.path().filename().string().front() != '.') {
        ids_.push_back(entry.path().stem().string());
      }
    }
    std::sort(ids_.begin(), ids_.end());
    if (ids_.empty()) {
      throw Error(fmt::format("mask folder {} holds no .png masks", paths_.masks.string()));
    }
  }
  images_.reserve(ids_.size());
  for (const auto& id : ids_) {
    fs::path image = find_image(paths_.images, id);
    bool complete = true;
    if (image.empty()) {
      problems_.push_back(fmt::format("{}: missing (no {}.jpg, .jpeg or .png for id {})",
                                      (paths_.images / id).string(), id, id));
      complete = false;
    }
    images_.push_back(std::move(image));
    if (!fs::is_regular_file(paths_.masks / (id + ".png"))) {
      problems_.push_back(fmt::format("{}: missing (the mask of id {})",
                                      (paths_.masks / (id + ".png")).string(), id));
      complete = false;
    }
    if (!paths_.confidence.empty() && !fs::is_regular_file(paths_.confidence / (id + ".png"))) {
      problems_.push_back(fmt::format("{}: missing (the confidence map of id {})",
                                      (paths_.confidence / (id + ".png")).string(), id));
      complete = false;
    }
    complete_.push_back(complete ? 1 : 0);
  }
}

std::vector<std::string> check_training_data(const SegDataset& dataset, int threads,
                                             LoaderShard shard) {
  std::vector<std::string> problems = dataset.problems();
  const std::int64_t count = (dataset.size() - shard.index + shard.count - 1) / shard.count;
  const auto decoded = problems_in_parallel(count, threads, [&](std::int64_t j) {
    const std::int64_t i = shard.index + j * shard.count;
    if (dataset.complete(i)) read_labelled_image(dataset, i);
  });
  problems.insert(problems.end(), decoded.begin(), decoded.end());
  return problems;
}

std::vector<std::string> check_images(const std::vector<std::pair<std::string, fs::path>>& images,
                                      data::ExifOrientation exif, int threads) {
  return problems_in_parallel(static_cast<std::int64_t>(images.size()), threads,
                              [&](std::int64_t i) {
                                data::decode_image(images[static_cast<std::size_t>(i)].second, exif);
                              });
}

void throw_if_problems(const std::vector<std::string>& problems, const std::string& what,
                       std::size_t shown) {
  if (problems.empty()) return;
  std::string text = fmt::format("{}: {} problem{}", what, problems.size(),
                                 problems.size() == 1 ? "" : "s");
  for (std::size_t i = 0; i < problems.size() && i < shown; ++i) text += "\n  " + problems[i];
  if (problems.size() > shown) text += fmt::format("\n  ... and {} more", problems.size() - shown);
  throw Error(text);
}

fs::path SegDataset::mask_file(std::int64_t index) const {
  return paths_.masks / (ids_.at(index) + ".png");
}

fs::path SegDataset::confidence_file(std::int64_t index) const {
  return paths_.confidence.empty() ? fs::path() : paths_.confidence / (ids_.at(index) + ".png");
}

std::vector<std::pair<std::string, fs::path>> list_images(const fs::path& images,
                                                          const fs::path& split) {
  require_folder(images, "image");
  std::vector<std::pair<std::string, fs::path>> out;
  if (!split.empty()) {
    std::vector<std::string> missing;
    for (const auto& id : data::read_split_ids(split)) {
      fs::path file = find_image(images, id);
      if (file.empty()) {
        missing.push_back(fmt::format("image {} (listed in {}): no {}.jpg, .jpeg or .png in {}",
                                      id, split.string(), id, images.string()));
      }
      out.emplace_back(id, std::move(file));
    }
    throw_if_problems(missing, "images to predict");
    return out;
  }
  for (const auto& entry : fs::directory_iterator(images)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) !=
            kImageExtensions.end() &&
        entry.path().filename().string().front() != '.') {
      out.emplace_back(entry.path().stem().string(), entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw Error(fmt::format("image folder {} holds no images", images.string()));
  return out;
}

cv::Mat read_image_bgr(const fs::path& file, data::ExifOrientation exif) {
  cv::Mat bgr;
  cv::cvtColor(data::load_image(file, exif).rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

LabelledImage read_labelled_image(const SegDataset& dataset, std::int64_t index) {
  LabelledImage out;
  const fs::path image_file = dataset.image_file(index);
  const fs::path mask_file = dataset.mask_file(index);
  out.image = read_image_bgr(image_file, dataset.exif());
  out.label = io::read_png_u8(mask_file);
  if (out.label.size() != out.image.size()) {
    throw Error(fmt::format("mask {} is {}x{} but image {} is {}x{} (width x height)",
                            mask_file.string(), out.label.cols, out.label.rows, image_file.string(),
                            out.image.cols, out.image.rows));
  }
  const int classes = dataset.num_classes();
  for (int y = 0; y < out.label.rows; ++y) {
    const std::uint8_t* row = out.label.ptr<std::uint8_t>(y);
    for (int x = 0; x < out.label.cols; ++x) {
      if (row[x] >= classes && row[x] != kIgnoreLabel) {
        throw Error(
            fmt::format("mask {}: value {} at (x={}, y={}) is beyond the {} classes "
                        "(expected 0..{} or 255)",
                        mask_file.string(), row[x], x, y, classes, classes - 1));
      }
    }
  }
  const fs::path confidence_file = dataset.confidence_file(index);
  if (!confidence_file.empty()) {
    const cv::Mat confidence = io::read_png_u16(confidence_file);
    if (confidence.size() != out.label.size()) {
      throw Error(fmt::format("confidence map {} is {}x{} but mask {} is {}x{}",
                              confidence_file.string(), confidence.cols, confidence.rows,
                              mask_file.string(), out.label.cols, out.label.rows));
    }
    // μ on the stored 16-bit scale (exact integers), so that a confidence of exactly μ (stored
    // as round(μ * 65535)) counts as confident, as it did when clipes-generate thresholded it.
    data::ignore_below_threshold(out.label, confidence, dataset.confidence_threshold());
  }
  return out;
}

at::Tensor image_to_input(const cv::Mat& bgr, const InputConfig& input) {
  TORCH_CHECK(bgr.type() == CV_8UC3 || bgr.type() == CV_32FC3,
              "image_to_input: expected an 8-bit or float 3-channel image");
  cv::Mat f;
  if (bgr.type() == CV_32FC3 && bgr.isContinuous()) {
    f = bgr;
  } else {
    bgr.convertTo(f, CV_32FC3);
  }
  at::Tensor x = at::from_blob(f.data, {f.rows, f.cols, 3}, at::kFloat).permute({2, 0, 1});
  if (!input.bgr) x = x.flip({0});
  const at::Tensor mean = at::tensor(input.mean, at::kFloat).view({3, 1, 1});
  const at::Tensor std = at::tensor(input.std, at::kFloat).view({3, 1, 1});
  return ((x - mean) / std).contiguous();
}

TrainingSample augment_sample(const LabelledImage& sample, const AugmentConfig& augment,
                              const InputConfig& input, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const double scale = augment.scales.at(static_cast<std::size_t>(
      uniform_index(rng, static_cast<std::int64_t>(augment.scales.size()))));
  const int h = std::max(1, static_cast<int>(sample.image.rows * scale));
  const int w = std::max(1, static_cast<int>(sample.image.cols * scale));
  cv::Mat image;
  sample.image.convertTo(image, CV_32FC3);
  if (h != image.rows || w != image.cols) {
    cv::resize(image, image, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  }
  const cv::Mat label8 = resize_label(sample.label, h, w);

  at::Tensor x = image_to_input(image, input);  // the mean becomes 0: pad with 0
  at::Tensor y =
      at::from_blob(const_cast<std::uint8_t*>(label8.ptr<std::uint8_t>()), {h, w}, at::kByte)
          .to(at::kLong);
  const int crop = augment.crop_size;
  const int pad_h = std::max(crop - h, 0);
  const int pad_w = std::max(crop - w, 0);
  if (pad_h > 0 || pad_w > 0) {  // bottom and right, as the recipe
    x = at::constant_pad_nd(x, {0, pad_w, 0, pad_h}, 0.0);
    y = at::constant_pad_nd(y, {0, pad_w, 0, pad_h}, static_cast<double>(kIgnoreLabel));
  }
  const std::int64_t start_h = uniform_index(rng, y.size(0) - crop + 1);
  const std::int64_t start_w = uniform_index(rng, y.size(1) - crop + 1);
  x = x.slice(1, start_h, start_h + crop).slice(2, start_w, start_w + crop);
  y = y.slice(0, start_h, start_h + crop).slice(1, start_w, start_w + crop);
  if (augment.flip && uniform01(rng) < 0.5) {
    x = x.flip({2});
    y = y.flip({1});
  }
  return {x.contiguous(), y.contiguous()};
}

// ---- sampler ----------------------------------------------------------------------------------

BatchSampler::BatchSampler(std::int64_t dataset_size, std::uint64_t seed)
    : size_(dataset_size), rng_(seed) {
  if (dataset_size <= 0) throw Error("BatchSampler: the dataset is empty");
  start_epoch();
}

void BatchSampler::start_epoch() {
  order_.resize(static_cast<std::size_t>(size_));
  for (std::int64_t i = 0; i < size_; ++i) order_[i] = i;
  for (std::int64_t i = size_ - 1; i > 0; --i) {  // Fisher-Yates with the portable draw
    std::swap(order_[i], order_[uniform_index(rng_, i + 1)]);
  }
  position_ = 0;
}

std::vector<SampleTicket> BatchSampler::next(int batch_size) {
  std::vector<SampleTicket> tickets;
  tickets.reserve(static_cast<std::size_t>(batch_size));
  for (int b = 0; b < batch_size; ++b) {
    if (position_ == size_) {
      ++epoch_;
      start_epoch();
    }
    SampleTicket t;
    t.index = order_[position_++];
    t.seed = rng_();
    tickets.push_back(t);
  }
  return tickets;
}

std::string BatchSampler::state() const {
  std::ostringstream out;
  out << "clipes-sampler-1 " << size_ << ' ' << epoch_ << ' ' << position_ << '\n' << rng_ << '\n';
  for (std::int64_t i : order_) out << i << ' ';
  return out.str();
}

void BatchSampler::restore(const std::string& state) {
  std::istringstream in(state);
  std::string magic;
  std::int64_t size = 0;
  BatchSampler restored(*this);
  in >> magic >> size >> restored.epoch_ >> restored.position_;
  if (!in || magic != "clipes-sampler-1") throw Error("sampler state: not a clipes sampler state");
  if (size != size_) {
    throw Error(fmt::format("sampler state: saved for {} images, the dataset has {}", size, size_));
  }
  in >> restored.rng_;
  for (auto& i : restored.order_) in >> i;
  if (!in || restored.position_ < 0 || restored.position_ > size_) {
    throw Error("sampler state: truncated or corrupt");
  }
  *this = std::move(restored);
}

// ---- loader -----------------------------------------------------------------------------------

struct BatchLoader::Impl {
  struct Pending {
    std::string state_before;
    std::vector<SampleTicket> tickets;
    std::vector<std::future<TrainingSample>> samples;  // empty without workers
  };

  Impl(SegDataset d, AugmentConfig a, InputConfig i, BatchSampler s, int b, LoaderShard sh)
      : dataset(std::move(d)),
        augment(std::move(a)),
        input(std::move(i)),
        sampler(std::move(s)),
        batch_size(b),
        shard(sh) {}

  TrainingSample make(const SampleTicket& t) const {
    return augment_sample(read_labelled_image(dataset, t.index), augment, input, t.seed);
  }

  void enqueue_batch() {
    Pending p;
    p.state_before = sampler.state();
    p.tickets = sampler.next(batch_size);
    if (shard.count > 1) {
      const auto share = static_cast<std::ptrdiff_t>(batch_size / shard.count);
      const auto first = p.tickets.begin() + shard.index * share;
      p.tickets = std::vector<SampleTicket>(first, first + share);
    }
    if (!threads.empty()) {
      std::lock_guard<std::mutex> lock(mutex);
      for (const auto& t : p.tickets) {
        std::packaged_task<TrainingSample()> task([this, t] { return make(t); });
        p.samples.push_back(task.get_future());
        tasks.push_back(std::move(task));
      }
      cv.notify_all();
    }
    pending.push_back(std::move(p));
  }

  void fill() {
    const std::size_t depth = threads.empty() ? 1 : static_cast<std::size_t>(augment.prefetch);
    while (pending.size() < depth) enqueue_batch();
  }

  void worker_loop() {
    while (true) {
      std::packaged_task<TrainingSample()> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [this] { return stop || !tasks.empty(); });
        if (stop) return;
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task();
    }
  }

  SegDataset dataset;
  AugmentConfig augment;
  InputConfig input;
  BatchSampler sampler;
  int batch_size;
  LoaderShard shard;
  std::deque<Pending> pending;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::packaged_task<TrainingSample()>> tasks;
  bool stop = false;
  std::vector<std::thread> threads;
};

BatchLoader::BatchLoader(SegDataset dataset, AugmentConfig augment, InputConfig input,
                         BatchSampler sampler, int batch_size, LoaderShard shard)
    : impl_(std::make_unique<Impl>(std::move(dataset), std::move(augment), std::move(input),
                                   std::move(sampler), batch_size, shard)) {
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count ||
      batch_size % shard.count != 0) {
    throw Error(fmt::format("BatchLoader: shard {} of {} cannot share batches of {}", shard.index,
                            shard.count, batch_size));
  }
  for (int i = 0; i < impl_->augment.workers; ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] { impl->worker_loop(); });
  }
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads) t.join();
}

Batch BatchLoader::next() {
  impl_->fill();
  Impl::Pending p = std::move(impl_->pending.front());
  impl_->pending.pop_front();
  impl_->fill();  // keep the workers busy while this batch is assembled
  std::vector<at::Tensor> images;
  std::vector<at::Tensor> labels;
  Batch batch;
  for (std::size_t i = 0; i < p.tickets.size(); ++i) {
    TrainingSample s = p.samples.empty() ? impl_->make(p.tickets[i]) : p.samples[i].get();
    images.push_back(std::move(s.image));
    labels.push_back(std::move(s.label));
    batch.indices.push_back(p.tickets[i].index);
  }
  batch.images = at::stack(images);
  batch.labels = at::stack(labels);
  return batch;
}

std::string BatchLoader::sampler_state() const {
  return impl_->pending.empty() ? impl_->sampler.state() : impl_->pending.front().state_before;
}

}  // namespace clipes::seg
