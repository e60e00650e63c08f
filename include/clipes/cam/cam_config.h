#pragma once
/// Settings of softmax-GradCAM and class-aware attention affinity (spec §3, §4).

#include "clipes/core/config_fields.h"
#include "clipes/core/validator.h"

namespace clipes::cam {

struct CamConfig {
  int attention_blocks = 8;  ///< affinity = mean attention of the last n blocks (all if fewer)
};

struct CaaConfig {
  float box_threshold = 0.4f;  ///< λ: box mask where cam > λ·max (VOC 0.4, COCO 0.7)
  int sinkhorn_rounds = 3;     ///< rounds of column-then-row normalisation
  int power = 2;               ///< t: the affinity is raised to this power (D^t)
  /// false: apply D t times to the masked CAMs, t·N²·K multiply-adds. true: form D^t as the
  /// reference does ((t−1)·N³), which reproduces its float32 rounding bit for bit; the two differ
  /// by float rounding, which the final min-max normalisation magnifies on nearly flat maps.
  bool explicit_power = false;
};

template <class C, class V>
config::FieldsOf<C, CamConfig> visit_fields(C& c, V& v) {
  v("attention_blocks", c.attention_blocks,
    "affinity = mean attention of the last n blocks (all if fewer)");
}

template <class C, class V>
config::FieldsOf<C, CaaConfig> visit_fields(C& c, V& v) {
  v("box_threshold", c.box_threshold, "λ: box mask where cam > λ·max (VOC 0.4, COCO 0.7)");
  v("sinkhorn_rounds", c.sinkhorn_rounds, "rounds of column-then-row normalisation");
  v("power", c.power, "t: the affinity is raised to this power");
  v("explicit_power", c.explicit_power,
    "form D^t as the reference does (bit-exact with it, (t-1)·N³ work) instead of t products");
}

/// Range rules; paths under the validator's prefix (`Validator(source).nested("caa")`).
void validate(const CamConfig& config, const config::Validator& v);
void validate(const CaaConfig& config, const config::Validator& v);

}  // namespace clipes::cam
