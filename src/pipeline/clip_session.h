#pragma once
// The CLIP session the pipeline's batch runs share (generate.cpp, prompt_ranking.cpp): the model
// loading with its checksums, timing, failure reasons and timestamps for their records. Internal
// to src/pipeline.

#include <c10/util/Exception.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "clipes/clip/model.h"
#include "clipes/clip/tokenizer.h"
#include "clipes/data/image.h"
#include "clipes/pipeline/generate_config.h"

namespace clipes::pipeline::detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The message of any exception, without LibTorch's C++ backtrace.
inline std::string reason_of(const std::exception& e) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&e)) {
    return torch_error->what_without_backtrace();
  }
  return e.what();
}

/// The current time as ISO 8601 UTC, e.g. 2026-11-24T18:00:00Z.
inline std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

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

/// The run record's "model" ({file, format, weights, config, sha256, architecture,
/// load_seconds}) and "vocab" ({file, sha256}) entries.
void record_model(const GenerateConfig& config, const LoadedClip& clip, nlohmann::json& record);

}  // namespace clipes::pipeline::detail
