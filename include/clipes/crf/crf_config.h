#pragma once
/// Settings of the dense CRF and of the pseudo-mask step (spec §7, dense-crf.md). Shared by the
/// CRF module, the generate config and the segmentation predictor.

namespace clipes::crf {

/// Which image the bilateral kernel sees (spec §7 quirk).
enum class CrfImageMode {
  kRgb,        ///< the true 8-bit RGB image (default)
  kReference,  ///< what the authors' code fed: BGR minus (104.008, 116.669, 122.675) cast to uint8
};

struct CrfConfig {
  int iterations = 10;             ///< mean-field iterations
  float pos_std = 1.0f;            ///< σ_xy of the Gaussian (position-only) kernel, pixels
  float pos_weight = 3.0f;         ///< weight of the Gaussian kernel
  float bilateral_std = 67.0f;     ///< σ_xy of the bilateral kernel, pixels
  float bilateral_rgb_std = 3.0f;  ///< σ_rgb of the bilateral kernel, grey levels
  float bilateral_weight = 4.0f;   ///< weight of the bilateral kernel
  CrfImageMode image = CrfImageMode::kRgb;  ///< image fed to the bilateral kernel
};

/// The pseudo-mask step around the CRF (spec §7).
struct PseudoMaskConfig {
  CrfConfig crf;
  float confidence_threshold = 0.95f;  ///< μ: pixels with max Q below it become 255 (ignored)
};

}  // namespace clipes::crf
