#pragma once
/// The training loop of the segmentation model (spec §8): DeepLab-v2 on the pseudo masks with
/// the confidence-guided loss, SGD with poly decay, gradient accumulation, atomic checkpoints,
/// exact resume, a JSONL log and a loss plot. Reports through clipes::Reporter; never prints.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/seg/seg_config.h"
#include "clipes/seg/seg_data.h"

namespace torch::optim {
class SGD;
}  // namespace torch::optim

namespace clipes::seg {

class DeepLabImpl;

struct TrainInputs {
  SegDataPaths data;                   ///< images, masks, optional confidence maps and split
  std::filesystem::path out;           ///< output folder (created)
  std::filesystem::path init_weights;  ///< optional: initial weights (init_weights.h)
  std::string device;                  ///< "cpu", "cuda", "cuda:N"; "" = CUDA when available
  bool resume = false;                 ///< continue from <out>/checkpoint.pt
  std::int64_t stop_after = 0;         ///< stop (with a checkpoint) after this iteration; 0 = end
};

/// Files in `out`: config.json (the effective config), train_log.jsonl (one line per step:
/// iteration, loss, lr, seconds), checkpoint.pt (every checkpoint_every steps and when stopping),
/// model_final.pt (model and config only) and loss.png once the last iteration is done.
struct TrainResult {
  std::int64_t start_iteration = 0;  ///< 0, or the resumed checkpoint's iteration
  std::int64_t iteration = 0;        ///< steps done when the call returned
  bool finished = false;             ///< iteration == optim.iterations
  double last_loss = 0;
  std::string device;
  std::filesystem::path checkpoint;
  std::filesystem::path final_model;  ///< empty unless finished
  std::filesystem::path log;
  std::filesystem::path plot;  ///< empty unless finished
};

/// Trains (or resumes) as `config` says. Without `resume`, an existing <out>/checkpoint.pt is an
/// error (nothing is overwritten by accident); with it, the stored config must equal `config`
/// (data.workers, data.prefetch and log_every may differ) and the image list must be the same.
/// Data errors (size mismatch, a mask value beyond the classes) and a non-finite loss throw
/// clipes::Error.
TrainResult train_segmentation(const TrainConfig& config, const TrainInputs& inputs,
                               Reporter& reporter);

/// "" -> "cuda" when LibTorch sees a GPU, else "cpu"; "cuda..." without a GPU throws.
std::string resolve_device(const std::string& requested);

/// One optimiser step: gradients zeroed, each batch forwarded (all MSC outputs) and its loss
/// divided by the number of batches back-propagated (gradient accumulation), then
/// optimizer.step(). Returns the summed (i.e. averaged over batches) loss.
double train_step(DeepLabImpl& model, torch::optim::SGD& optimizer,
                  const std::vector<Batch>& batches, LossKind loss, const std::string& device);

}  // namespace clipes::seg
