#pragma once
// The CLIP session the pipeline's batch runs share (generate.cpp, prompt_ranking.cpp): the model
// loading with its checksums, timing, failure reasons and timestamps for their records. Internal
// to src/pipeline.

#include <chrono>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "clipes/clip/model.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/core/run_record.h"
#include "clipes/data/image.h"
#include "clipes/pipeline/generate_config.h"

namespace clipes::pipeline::detail {

using Clock = std::chrono::steady_clock;

/// The CLIP input of one image (spec §2): downscaled first when input.max_side / max_tokens ask
/// for it (plan_input_size; clipes::Error when the image is too large and may not be), then
/// clip::preprocess_for_clip.
at::Tensor clip_input(const data::DecodedImage& image, const InputConfig& input, int patch);

/// config.model and config.vocab, loaded, with what a run record says of them.
struct LoadedClip {
  clip::ClipModel model;
  clip::Tokenizer tokenizer;
  std::string model_sha256;  ///< of the weights file (checkpoint().weights)
  std::string vocab_sha256;
  double load_seconds = 0;  ///< reading, converting and hashing both files
};

/// Loads both files (clipes::Error naming the file that is wrong) and hashes them.
LoadedClip load_clip(const GenerateConfig& config, const std::string& device, bool keep_fp16);

/// The header every record of a run over `config` with `clip` shares: its config (to_json) and
/// model; the tool fills the rest.
RunRecord clip_run_record(const std::string& tool, const GenerateConfig& config,
                          const LoadedClip& clip);

/// The run record as JSON with the vocabulary ({file, sha256}) beside the model.
nlohmann::json clip_run_record_json(const RunRecord& record, const GenerateConfig& config,
                                    const LoadedClip& clip);

}  // namespace clipes::pipeline::detail
