#pragma once
/// Settings of the dense CRF and of the pseudo-mask step (spec §7, dense-crf.md). Shared by the
/// CRF module, the generate config and the segmentation predictor.

#include <string_view>

#include "clipes/core/config_fields.h"
#include "clipes/core/validator.h"

namespace clipes::crf {

/// Which image the bilateral kernel sees (spec §7 quirk).
enum class CrfImageMode {
  kRgb,        ///< the true 8-bit RGB image (default)
  kReference,  ///< what the authors' code fed: BGR minus (104.008, 116.669, 122.675) cast to uint8
               ///< with wrap-around; the pseudo-mask step then also rounds the CAMs, the
               ///< probabilities and the unary through float16 as the reference did
};

struct CrfConfig {
  int iterations = 10;             ///< mean-field iterations
  float pos_std = 1.0f;            ///< σ_xy of the Gaussian (position-only) kernel, pixels
  float pos_weight = 3.0f;         ///< weight of the Gaussian kernel
  float bilateral_std = 67.0f;     ///< σ_xy of the bilateral kernel, pixels
  float bilateral_rgb_std = 3.0f;  ///< σ_rgb of the bilateral kernel, grey levels
  float bilateral_weight = 4.0f;   ///< weight of the bilateral kernel
  CrfImageMode image = CrfImageMode::kRgb;  ///< image fed to the bilateral kernel
  int threads = 1;  ///< threads inside one image (0: all cores); across images, one CRF per worker
};

template <class C, class V>
config::FieldsOf<C, CrfConfig> visit_fields(C& c, V& v) {
  v("iterations", c.iterations, "mean-field iterations");
  v("pos_std", c.pos_std, "σ_xy of the Gaussian (position-only) kernel, pixels");
  v("pos_weight", c.pos_weight, "weight of the Gaussian kernel");
  v("bilateral_std", c.bilateral_std, "σ_xy of the bilateral kernel, pixels");
  v("bilateral_rgb_std", c.bilateral_rgb_std, "σ_rgb of the bilateral kernel, grey levels");
  v("bilateral_weight", c.bilateral_weight, "weight of the bilateral kernel");
  v("image", c.image, "image the bilateral kernel sees: true RGB or the reference's wrapped BGR");
}

/// The pseudo-mask step around the CRF (spec §7).
struct PseudoMaskConfig {
  CrfConfig crf;
  float confidence_threshold = 0.95f;  ///< μ: pixels with max Q below it become 255 (ignored)
};

/// Range rules; throws clipes::Error("<source>: crf.pos_std must be > 0, got -3"), the path
/// under the validator's prefix (`Validator(source).nested("crf")`).
void validate(const CrfConfig& config, const config::Validator& v);
/// The rule of μ, for every config that holds one: 0 <= mu <= 1.
void validate_confidence_threshold(float mu, const config::Validator& v, std::string_view path);
/// validate(crf) under "crf" and μ under "confidence_threshold".
void validate(const PseudoMaskConfig& config, const config::Validator& v);

constexpr auto enum_names(CrfImageMode) {
  return config::EnumNames<CrfImageMode, 2>{
      {{"rgb", CrfImageMode::kRgb}, {"reference", CrfImageMode::kReference}}};
}
/// "rgb" or "reference", the names used in configs (`crf.image`).
inline std::string_view to_string(CrfImageMode mode) { return config::enum_name(mode); }

}  // namespace clipes::crf
