#pragma once
/// Settings of the dense CRF and of the pseudo-mask step (spec §7, dense-crf.md). Shared by the
/// CRF module, the generate config and the segmentation predictor.

#include <string_view>

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

/// The pseudo-mask step around the CRF (spec §7).
struct PseudoMaskConfig {
  CrfConfig crf;
  float confidence_threshold = 0.95f;  ///< μ: pixels with max Q below it become 255 (ignored)
};

/// Range rules; throws clipes::Error("<source>: <path>.pos_std must be > 0, got -3").
void validate(const CrfConfig& config, std::string_view source, std::string_view path = "crf");
/// The CRF rules (under `<path>.crf`) and 0 <= confidence_threshold <= 1.
void validate(const PseudoMaskConfig& config, std::string_view source,
              std::string_view path = "pseudo_mask");

/// "rgb" or "reference", the names used in configs (`crf.image`).
const char* to_string(CrfImageMode mode);
/// Parses "rgb" or "reference"; anything else throws clipes::Error naming `where`.
CrfImageMode parse_crf_image_mode(std::string_view text, std::string_view where);

}  // namespace clipes::crf
