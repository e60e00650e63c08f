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

RunRecord clip_run_record(const std::string& tool, const GenerateConfig& config,
                          const LoadedClip& clip) {
  const auto& checkpoint = clip.model.checkpoint();
  RunRecord record;
  record.tool = tool;
  record.config = to_json(config);
  record.model = {config.model,
                  checkpoint.format,
                  checkpoint.weights.string(),
                  checkpoint.config.string(),
                  clip.model_sha256,
                  clip.model.architecture().describe(),
                  clip.load_seconds};
  return record;
}

nlohmann::json clip_run_record_json(const RunRecord& record, const GenerateConfig& config,
                                    const LoadedClip& clip) {
  nlohmann::json out = run_record_json(record);
  out["vocab"] = {{"file", config.vocab}, {"sha256", clip.vocab_sha256}};
  return out;
}

}  // namespace clipes::pipeline::detail
