#pragma once
/// The pseudo-mask step of CLIP-ES (spec §7): CAMs -> probabilities [1 − max cam, cams] ->
/// unary −log(clip(P, 1e−5, 1)) -> dense CRF -> label = argmax Q mapped to dataset ids,
/// confidence = max Q, 255 (ignored) where confidence < μ.
///
/// CrfImageMode::kReference reproduces the authors' code: the bilateral kernel sees BGR minus the
/// mean (104.008, 116.669, 122.675) truncated to an integer and wrapped to uint8 (numpy's
/// float -> uint8 cast), and the CAMs, probabilities and unary go through float16 the way numpy
/// computed them (each operation in float32, rounded to float16).

#include <opencv2/core/mat.hpp>
#include <vector>

#include "clipes/crf/crf_config.h"
#include "clipes/crf/dense_crf.h"

namespace clipes::crf {

struct PseudoMask {
  cv::Mat labels;      ///< CV_8UC1 H×W: 0 background, key + 1 for class `key`, 255 ignored
  cv::Mat argmax;      ///< CV_8UC1 H×W: `labels` before μ (the CRF's argmax everywhere)
  cv::Mat confidence;  ///< CV_32FC1 H×W: max over labels of Q
};

/// The 8-bit image the bilateral kernel sees. rgb: CV_8UC3, RGB order.
/// kRgb: `rgb` itself (not copied); kReference: BGR − mean, truncated, wrapped to uint8.
cv::Mat crf_input_image(const cv::Mat& rgb, CrfImageMode mode);

/// P = [1 − max_k cam_k, cam_0 .. cam_{K−1}]: cams [K, H, W] float32 -> [K+1, H, W] float32, not
/// renormalised. kReference: the CAMs are rounded to float16 first and 1 − max is rounded to
/// float16. Throws clipes::Error for K < 1 or a value that is not finite.
std::vector<float> crf_probabilities(const PlanarView& cams, CrfImageMode mode);

/// U = −log(clip(P, 1e−5, 1)) elementwise: [L, H, W] -> [L, H, W]. kReference: float16 as numpy
/// (P and the clip bound 1e−5 rounded to float16, log in float32 rounded to float16).
std::vector<float> crf_unary(const PlanarView& probabilities, CrfImageMode mode);

/// Labels and confidence from marginals q [K+1, H, W]: argmax (first on ties) l -> 0 for l = 0,
/// keys[l − 1] + 1 otherwise (PseudoMask::argmax); in `labels`, data::kIgnoreLabel where
/// max Q fails data::below_confidence_threshold.
/// keys: K 0-based class indices in [0, 253].
PseudoMask pseudo_mask_from_marginals(const PlanarView& q, const std::vector<int>& keys,
                                      float confidence_threshold);

/// The whole step. cams: [K, H, W] float32 in [0, 1] (one per key, in the order of `keys`);
/// keys: K 0-based class indices; rgb: CV_8UC3 H×W in RGB order.
/// workspace: the calling worker's CRF buffers and cached position kernels (null: none).
PseudoMask make_pseudo_mask(const PlanarView& cams, const std::vector<int>& keys,
                            const cv::Mat& rgb, const PseudoMaskConfig& config,
                            CrfWorkspace* workspace = nullptr);

}  // namespace clipes::crf
