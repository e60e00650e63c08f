#include "clip_session.h"

#include <nlohmann/json.hpp>

#include "clipes/clip/preprocess.h"
#include "clipes/io/sha256.h"

namespace clipes::pipeline::detail {

at::Tensor clip_input(const data::DecodedImage& image, const InputConfig& input, int patch) {
  const InputSize size = plan_input_size(image.width(), image.height(), input, patch);
  if (!size.downscaled) return clip::preprocess_for_clip(image, patch);
  return clip::preprocess_for_clip(data::resize_image(image, cv::Size(size.width, size.height)),
                                   patch);
}

LoadedClip load_clip(const GenerateConfig& config, const std::string& device, bool keep_fp16) {
  const auto start = Clock::now();
  clip::ClipLoadOptions options;
  options.device = device;
  options.keep_fp16 = keep_fp16;
  options.model_config = config.model_config;
  options.activation = config.model_act;
  if (config.model_heads.size() == 2) {
    options.vision_heads = config.model_heads[0];
    options.text_heads = config.model_heads[1];
  }
  auto model = clip::ClipModel::load(config.model, options);
  const std::string weights_sha256 = io::sha256_file(model.checkpoint().weights);
  LoadedClip out{std::move(model), clip::Tokenizer::from_file(config.vocab), weights_sha256,
                 io::sha256_file(config.vocab), 0};
  out.load_seconds = seconds_since(start);
  return out;
}

void record_model(const GenerateConfig& config, const LoadedClip& clip, nlohmann::json& record) {
  const auto& checkpoint = clip.model.checkpoint();
  record["model"] = {{"file", config.model},
                     {"format", checkpoint.format},
                     {"weights", checkpoint.weights.string()},
                     {"config", checkpoint.config.string()},
                     {"sha256", clip.model_sha256},
                     {"architecture", clip.model.architecture().describe()},
                     {"load_seconds", clip.load_seconds}};
  record["vocab"] = {{"file", config.vocab}, {"sha256", clip.vocab_sha256}};
}

}  // namespace clipes::pipeline::detail
