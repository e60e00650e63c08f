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
#include "clipes/seg/distributed.h"
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
  /// The job this process is a rank of (dist_config_from_env); world_size 1: train alone.
  /// With several ranks: optim.batch_size is the global batch (world_size must divide it),
  /// each rank forwards its share, the loss is normalised over the global batch (its pixel
  /// counts are summed over the ranks) and the gradients are summed over the ranks before each
  /// optimiser step, so that N ranks compute the steps one process would; rank 0 broadcasts the
  /// initial weights and alone writes files. A CUDA rank takes the GPU of its local rank.
  DistConfig dist;
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
  int rank = 0;
  int world_size = 1;
  std::filesystem::path checkpoint;
  std::filesystem::path final_model;  ///< empty unless finished
  std::filesystem::path log;
  std::filesystem::path plot;  ///< empty unless finished
};

/// Trains (or resumes) as `config` says (on every rank of inputs.dist), after follow_mask_run (the generate run of the masks, if
/// any, fixes the class count, μ floor and image policy; the resolved config is what is saved).
/// Before anything is written, every training triple is checked (check_training_data): all
/// problems are listed in one clipes::Error. Without `resume`, an existing <out>/checkpoint.pt is
/// an error (nothing is overwritten by accident); with it, the stored config must equal the
/// resolved config (data.workers, data.prefetch and log_every may differ) and the image list
/// must be the same, and so must the world size. These errors, before iteration 1, are
/// clipes::Error (on every rank: a rank that fails stops the others, naming it); an error during
/// the iterations (a non-finite loss, a write that fails, a rank that died) is a
/// clipes::WorkError naming the last checkpoint.
TrainResult train_segmentation(const TrainConfig& config, const TrainInputs& inputs,
                               Reporter& reporter);

/// "" -> "cuda" when LibTorch sees a GPU, else "cpu"; "cuda..." without a GPU throws.
std::string resolve_device(const std::string& requested);

/// resolve_device for a rank of `dist`: with several ranks, "cuda" becomes cuda:<local rank>
/// (each rank on the GPU of its local rank); an explicit "cuda:N" or "cpu" stays.
std::string rank_device(const std::string& requested, const DistConfig& dist);

/// One optimiser step: gradients zeroed, each batch forwarded (all MSC outputs) and its loss
/// divided by the number of batches back-propagated (gradient accumulation), then
/// optimizer.step(). Returns the summed (i.e. averaged over batches) loss. With `group`, the
/// batches are this rank's shares of global batches: each loss is normalised by the global
/// batch's pixel counts and the gradients are summed over the ranks (bucketed all-reduce)
/// before the step; the returned loss is the global one.
double train_step(DeepLabImpl& model, torch::optim::SGD& optimizer,
                  const std::vector<Batch>& batches, LossKind loss, const std::string& device,
                  Communicator* group = nullptr);

}  // namespace clipes::seg
