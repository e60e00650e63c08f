#pragma once
/// Checkpoints of the segmentation training: one LibTorch archive (torch::serialize) holding the
/// config (JSON text), the model's parameters and buffers, the optimiser state (momentum buffers;
/// absent in a final model file), the iteration, the sampler state, a fingerprint of the image
/// list and the loss history. Written atomically (temporary file, then rename).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "clipes/seg/seg_config.h"

namespace torch::optim {
class SGD;
}  // namespace torch::optim
namespace torch::serialize {
class InputArchive;
}  // namespace torch::serialize

namespace clipes::seg {

class DeepLabImpl;

/// One line of the training log.
struct HistoryRow {
  std::int64_t iteration = 0;
  double loss = 0;
  double lr = 0;       ///< base LR of the step
  double seconds = 0;  ///< wall time of the step, data waiting included
};

struct CheckpointState {
  TrainConfig config;
  std::int64_t iteration = 0;       ///< steps done
  std::string sampler_state;        ///< BatchSampler::state() before the next step's batches
  std::string dataset_fingerprint;  ///< of the ordered image ids (resume checks it)
  std::vector<HistoryRow> history;  ///< one row per step done
  int world_size = 1;               ///< processes that trained it (resume needs as many)
};

/// Writes model (+ optimizer when not null) and state to `file` atomically.
void save_checkpoint(const std::filesystem::path& file, DeepLabImpl& model,
                     torch::optim::SGD* optimizer, const CheckpointState& state);

/// Reads a checkpoint or final model file: state first, then the tensors into a model built
/// from its config. Throws clipes::Error naming the file when it is not a clipes checkpoint.
class CheckpointReader {
 public:
  /// device: where the tensors are loaded ("cpu", "cuda", "cuda:1").
  CheckpointReader(const std::filesystem::path& file, const std::string& device);
  ~CheckpointReader();

  const CheckpointState& state() const { return state_; }
  bool has_optimizer() const { return has_optimizer_; }
  void load_model(DeepLabImpl& model);
  void load_optimizer(torch::optim::SGD& optimizer);

 private:
  std::filesystem::path file_;
  std::unique_ptr<torch::serialize::InputArchive> archive_;
  CheckpointState state_;
  bool has_optimizer_ = false;
};

/// FNV-1a of the ids, joined by newlines, as 16 hex digits plus the count.
std::string fingerprint_ids(const std::vector<std::string>& ids);

}  // namespace clipes::seg
