#pragma once
/// The training loop of the segmentation model (spec §8): DeepLab-v2 on the pseudo masks with
/// the confidence-guided loss, SGD with poly decay, gradient accumulation, atomic checkpoints,
/// exact resume, a JSONL log and a loss plot. Reports through clipes::Reporter; never prints.

#include <atomic>
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
  std::string config_source = "the train config";  ///< names the config in messages
  /// Raised (e.g. by a tool's SIGINT/SIGTERM handler): the current iteration is finished, a
  /// checkpoint written and the call returns with `interrupted`. Null: never.
  const std::atomic<bool>* stop = nullptr;
  int check_threads = 0;  ///< threads of the data check before iteration 1 (0: one per core)
};

/// Files in `out`: config.json (the effective config), train_log.jsonl (one line per step:
/// iteration, loss, lr, seconds), checkpoint.pt (every checkpoint_every steps and when stopping),
/// model_final.pt (model and config only) and loss.png once the last iteration is done.
struct TrainResult {
  std::int64_t start_iteration = 0;  ///< 0, or the resumed checkpoint's iteration
  std::int64_t iteration = 0;        ///< steps done when the call returned
  bool finished = false;             ///< iteration == optim.iterations
  bool interrupted = false;          ///< stopped by inputs.stop (a checkpoint was written)
  double last_loss = 0;
  std::string device;
  std::filesystem::path checkpoint;
  std::filesystem::path final_model;  ///< empty unless finished
  std::filesystem::path log;
  std::filesystem::path plot;  ///< empty unless finished
};

/// Trains (or resumes) as `config` says, after follow_mask_run (the generate run of the masks, if
/// any, fixes the class count, μ floor and image policy; the resolved config is what is saved).
/// Before anything is written, every training triple is checked (check_training_data): all
/// problems are listed in one clipes::Error. Without `resume`, an existing <out>/checkpoint.pt is
/// an error (nothing is overwritten by accident); with it, the stored config must equal the
/// resolved config (data.workers, data.prefetch and log_every may differ) and the image list
/// must be the same. These errors, before iteration 1, are clipes::Error; an error during the
/// iterations (a non-finite loss, a write that fails) is a clipes::WorkError naming the last
/// checkpoint.
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
