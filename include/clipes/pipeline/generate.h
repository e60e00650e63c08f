#pragma once
/// clipes-generate as a library: over a dataset, the CLIP stage (softmax-GradCAM + CAA, spec
/// §3–§4) on the calling thread, the dense CRF and the writing of the outputs (spec §7) on worker
/// threads that overlap it. Resumable (images whose outputs all exist are skipped), atomic
/// writes, one bad image reported and skipped, a clean stop on request, and a run.json that
/// records what was written and how.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "clipes/core/reporter.h"
#include "clipes/core/run_record.h"
#include "clipes/data/dataset.h"
#include "clipes/pipeline/generate_config.h"

namespace clipes::pipeline {

/// Run-time options; the method's settings are in GenerateConfig.
struct GenerateOptions {
  std::filesystem::path out_dir;  ///< masks/, confidence/, cams/, overlays/ and run.json go here
  std::string device = "cpu";     ///< "cpu", "cuda" or "cuda:N" for the CLIP stage
  bool keep_fp16 = false;         ///< CUDA only: run CLIP in the release's float16 weights
  data::Shard shard;              ///< this process's share of the images (--shard I/N)
  std::int64_t limit = -1;        ///< at most this many images of the shard (< 0: all)
  bool overwrite = false;         ///< redo images whose outputs all exist (default: skip them)
  /// Threads running the CRF and the writing beside the CLIP stage; 0: both run on the calling
  /// thread after each image's CLIP stage (the CRF then uses LibTorch's thread count). Overlap
  /// pays when the CLIP stage does not use every core (CUDA, many cores); on a few CPU cores the
  /// threads only fight over them. default_crf_workers() picks.
  int crf_workers = 0;
  std::string config_source;      ///< the config file, for run.json
  std::vector<std::string> overrides;  ///< the --set overrides, for run.json
};

/// The crf_workers default for `device` on a machine with `cores` hardware threads: 0 (inline)
/// for the CPU on up to 4 cores, a quarter of the cores above that; all but one core for CUDA.
int default_crf_workers(const std::string& device, int cores);

/// Seconds spent per stage, summed over the images done in this run.
struct StageSeconds {
  double decode = 0;      ///< reading and decoding the image
  double preprocess = 0;  ///< Pillow bicubic resize and normalisation
  double trunk = 0;       ///< patch embedding and blocks 1..L−1
  double last_block = 0;  ///< block L and the K class gradients
  double caa = 0;         ///< affinity, box masks, refinement, resize to the image
  double crf = 0;         ///< probabilities, unary, dense CRF, labels and confidence
  double write = 0;       ///< encoding and writing the files
};

using ImageFailure = RunFailure;  ///< {id, reason}

struct GenerateSummary {
  std::int64_t dataset_images = 0;  ///< samples the dataset lists
  std::int64_t selected = 0;        ///< after --shard and --limit
  std::int64_t skipped = 0;         ///< outputs already complete (resume)
  std::int64_t written = 0;         ///< images whose outputs this run wrote
  std::vector<ImageFailure> failures;
  bool interrupted = false;         ///< the stop flag was raised before the end
  StageSeconds seconds;
  double wall_seconds = 0;
  std::filesystem::path run_file;   ///< run.json (run-<I>of<N>.json for a shard)
};

/// The model, tokenizer and text bank of a run, loaded once.
class Generator {
 public:
  /// Loads config.model and config.vocab and encodes the class and background sentences.
  /// Throws clipes::Error naming the file or prompt that is wrong.
  static Generator load(const GenerateConfig& config, const std::string& device = "cpu",
                        bool keep_fp16 = false);
  Generator(Generator&&) noexcept;
  Generator& operator=(Generator&&) noexcept;
  ~Generator();

  /// What `--dry-run` prints: the architecture read off the weights, each class's sentence with
  /// its token count, the background sentences, the CAM/CAA/CRF settings.
  std::string describe() const;

  /// Processes the dataset. `stop` is polled between images: once raised, the images in flight
  /// are finished and written, nothing new is started, and the summary says `interrupted`.
  /// Per-image problems go to summary.failures; errors of the run as a whole (unreadable
  /// dataset, unwritable output folder) throw clipes::Error.
  GenerateSummary run(const GenerateOptions& options, Reporter& reporter,
                      const std::atomic<bool>* stop = nullptr) const;

  const GenerateConfig& config() const;

 private:
  struct Impl;
  explicit Generator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clipes::pipeline
