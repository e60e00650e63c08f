#include "clipes/cam/cam_config.h"

namespace clipes::cam {

void validate(const CamConfig& config, const config::Validator& v) {
  v.check(config.attention_blocks >= 1, "attention_blocks", "must be >= 1",
          config.attention_blocks);
}

void validate(const CaaConfig& config, const config::Validator& v) {
  v.check(config.box_threshold >= 0.0f && config.box_threshold <= 1.0f, "box_threshold",
          "must be in [0, 1]", config.box_threshold);
  v.check(config.sinkhorn_rounds >= 1, "sinkhorn_rounds", "must be >= 1", config.sinkhorn_rounds);
  v.check(config.power >= 1, "power", "must be >= 1", config.power);
}

}  // namespace clipes::cam
