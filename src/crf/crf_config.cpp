#include "clipes/crf/crf_config.h"

#include <fmt/format.h>

#include <cmath>
#include <string>

#include "clipes/core/error.h"
#include "clipes/core/json_reader.h"

namespace clipes::crf {

void validate(const CrfConfig& config, std::string_view source, std::string_view path) {
  const config::Validator v{std::string(source)};
  const auto at = [&](std::string_view field) { return fmt::format("{}.{}", path, field); };
  v.check(config.iterations >= 0, at("iterations"), "must be >= 0", config.iterations);
  v.check(std::isfinite(config.pos_std) && config.pos_std > 0, at("pos_std"), "must be > 0",
          config.pos_std);
  v.check(std::isfinite(config.pos_weight) && config.pos_weight >= 0, at("pos_weight"),
          "must be >= 0", config.pos_weight);
  v.check(std::isfinite(config.bilateral_std) && config.bilateral_std > 0, at("bilateral_std"),
          "must be > 0", config.bilateral_std);
  v.check(std::isfinite(config.bilateral_rgb_std) && config.bilateral_rgb_std > 0,
          at("bilateral_rgb_std"), "must be > 0", config.bilateral_rgb_std);
  v.check(std::isfinite(config.bilateral_weight) && config.bilateral_weight >= 0,
          at("bilateral_weight"), "must be >= 0", config.bilateral_weight);
  v.check(config.image == CrfImageMode::kRgb || config.image == CrfImageMode::kReference,
          at("image"), "must be rgb or reference");
  v.check(config.threads >= 0, at("threads"), "must be >= 0 (0: all cores)", config.threads);
}

void validate(const PseudoMaskConfig& config, std::string_view source, std::string_view path) {
  validate(config.crf, source, fmt::format("{}.crf", path));
  const config::Validator v{std::string(source)};
  v.check(config.confidence_threshold >= 0 && config.confidence_threshold <= 1,
          fmt::format("{}.confidence_threshold", path), "must be in [0, 1]",
          config.confidence_threshold);
}

const char* to_string(CrfImageMode mode) {
  return mode == CrfImageMode::kReference ? "reference" : "rgb";
}

CrfImageMode parse_crf_image_mode(std::string_view text, std::string_view where) {
  if (text == "rgb") return CrfImageMode::kRgb;
  if (text == "reference") return CrfImageMode::kReference;
  throw Error(fmt::format("{} must be \"rgb\" or \"reference\", got \"{}\"", where, text));
}

}  // namespace clipes::crf
