#include "clipes/crf/crf_config.h"

#include <cmath>

namespace clipes::crf {

void validate(const CrfConfig& config, const config::Validator& v) {
  v.check(config.iterations >= 0, "iterations", "must be >= 0", config.iterations);
  v.check(std::isfinite(config.pos_std) && config.pos_std > 0, "pos_std", "must be > 0",
          config.pos_std);
  v.check(std::isfinite(config.pos_weight) && config.pos_weight >= 0, "pos_weight",
          "must be >= 0", config.pos_weight);
  v.check(std::isfinite(config.bilateral_std) && config.bilateral_std > 0, "bilateral_std",
          "must be > 0", config.bilateral_std);
  v.check(std::isfinite(config.bilateral_rgb_std) && config.bilateral_rgb_std > 0,
          "bilateral_rgb_std", "must be > 0", config.bilateral_rgb_std);
  v.check(std::isfinite(config.bilateral_weight) && config.bilateral_weight >= 0,
          "bilateral_weight", "must be >= 0", config.bilateral_weight);
  v.check(config.image == CrfImageMode::kRgb || config.image == CrfImageMode::kReference,
          "image", "must be rgb or reference");
  v.check(config.threads >= 0, "threads", "must be >= 0 (0: all cores)", config.threads);
}

void validate_confidence_threshold(float mu, const config::Validator& v, std::string_view path) {
  v.check(mu >= 0.0f && mu <= 1.0f, path, "must be in [0, 1]", mu);
}

void validate(const PseudoMaskConfig& config, const config::Validator& v) {
  validate(config.crf, v.nested("crf"));
  validate_confidence_threshold(config.confidence_threshold, v, "confidence_threshold");
}

}  // namespace clipes::crf
