#include "clipes/seg/checkpoint.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "clipes/core/error.h"
#include "clipes/io/files.h"
#include "clipes/seg/deeplab.h"

namespace clipes::seg {

namespace {

constexpr const char* kFormat = "clipes-seg-checkpoint-1";

/// Streams the archive through io::write_file_atomic: a ResNet-101 checkpoint is ~0.35 GB, not
/// worth holding twice in memory.
void save_archive_atomic(torch::serialize::OutputArchive& archive,
                         const std::filesystem::path& file) {
  io::write_file_atomic(file, [&archive](const io::ByteSink& sink) {
    archive.save_to([&sink](const void* data, std::size_t size) -> std::size_t {
      sink(data, size);
      return size;
    });
  });
}

}  // namespace

std::string fingerprint_ids(const std::vector<std::string>& ids) {
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& id : ids) {
    for (unsigned char c : id + "\n") {
      h ^= c;
      h *= 1099511628211ULL;
    }
  }
  return fmt::format("{:016x}/{}", h, ids.size());
}

void save_checkpoint(const std::filesystem::path& file, DeepLabImpl& model,
                     torch::optim::SGD* optimizer, const CheckpointState& state) {
  torch::serialize::OutputArchive archive;
  archive.write("clipes_format", c10::IValue(std::string(kFormat)));
  archive.write("config", c10::IValue(dump_train_config(state.config)));
  archive.write("iteration", c10::IValue(state.iteration));
  archive.write("sampler_state", c10::IValue(state.sampler_state));
  archive.write("dataset_fingerprint", c10::IValue(state.dataset_fingerprint));
  archive.write("world_size", c10::IValue(static_cast<std::int64_t>(state.world_size)));
  at::Tensor history = at::empty({static_cast<std::int64_t>(state.history.size()), 4}, at::kDouble);
  auto h = history.accessor<double, 2>();
  for (std::size_t i = 0; i < state.history.size(); ++i) {
    const auto r = static_cast<std::int64_t>(i);
    h[r][0] = static_cast<double>(state.history[i].iteration);
    h[r][1] = state.history[i].loss;
    h[r][2] = state.history[i].lr;
    h[r][3] = state.history[i].seconds;
  }
  archive.write("history", history, /*is_buffer=*/true);
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  save_archive_atomic(archive, file);
}

CheckpointReader::CheckpointReader(const std::filesystem::path& file, const std::string& device)
    : file_(file), archive_(std::make_unique<torch::serialize::InputArchive>()) {
  if (!std::filesystem::is_regular_file(file)) {
    throw Error(fmt::format("checkpoint {} does not exist", file.string()));
  }
  try {
    archive_->load_from(file.string(), c10::Device(device));
  } catch (const c10::Error& e) {
    std::string why = e.what();
    throw Error(fmt::format("checkpoint {}: not a LibTorch archive ({})", file.string(),
                            why.substr(0, why.find('\n'))));
  }
  c10::IValue value;
  if (!archive_->try_read("clipes_format", value) || !value.isString() ||
      value.toStringRef() != kFormat) {
    throw Error(
        fmt::format("checkpoint {}: not a clipes segmentation checkpoint (expected "
                    "clipes_format \"{}\")",
                    file.string(), kFormat));
  }
  archive_->read("config", value);
  state_.config =
      parse_train_config(value.toStringRef(), fmt::format("{} (stored config)", file.string()));
  archive_->read("iteration", value);
  state_.iteration = value.toInt();
  archive_->read("sampler_state", value);
  state_.sampler_state = value.toStringRef();
  archive_->read("dataset_fingerprint", value);
  state_.dataset_fingerprint = value.toStringRef();
  // Checkpoints written before distributed training have no world size: one process.
  state_.world_size = archive_->try_read("world_size", value) ? static_cast<int>(value.toInt()) : 1;
  at::Tensor history;
  archive_->read("history", history, /*is_buffer=*/true);
  history = history.to(at::kCPU, at::kDouble).contiguous();
  auto h = history.accessor<double, 2>();
  for (std::int64_t i = 0; i < history.size(0); ++i) {
    state_.history.push_back({static_cast<std::int64_t>(h[i][0]), h[i][1], h[i][2], h[i][3]});
  }
  torch::serialize::InputArchive probe;
  has_optimizer_ = archive_->try_read("optimizer", probe);
}

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::load_model(DeepLabImpl& model) {
  torch::serialize::InputArchive model_archive;
  archive_->read("model", model_archive);
  try {
    model.load(model_archive);
  } catch (const c10::Error& e) {
    std::string why = e.what();
    throw Error(fmt::format("checkpoint {}: model tensors do not match its config ({})",
                            file_.string(), why.substr(0, why.find('\n'))));
  }
}

void CheckpointReader::load_optimizer(torch::optim::SGD& optimizer) {
  torch::serialize::InputArchive optimizer_archive;
  if (!archive_->try_read("optimizer", optimizer_archive)) {
    throw Error(fmt::format("checkpoint {} holds no optimizer state (a final model file?)",
                            file_.string()));
  }
  optimizer.load(optimizer_archive);
}

}  // namespace clipes::seg
