#pragma once
/// Label maps from class activation maps, as the reference's CAM evaluation makes them (spec §6):
/// a background score is put in front of the CAMs and each pixel takes the argmax.

#include <opencv2/core/mat.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "clipes/io/npy.h"

namespace clipes::eval {

/// How the background score of a pixel is made from its CAM values.
struct BackgroundSetting {
  enum class Kind {
    kPower,      ///< bg = (1 - max_k cam_k)^value (value = α; the reference tries 1 and 2)
    kThreshold,  ///< bg = value, a constant (the IRN-style threshold)
  };
  Kind kind = Kind::kPower;
  double value = 1.0;

  /// "(1-max)^2" or "t=0.35".
  std::string name() const;
};

/// Label ids, one CV_8UC1 [H, W] map per setting: label = argmax over [bg, cam_0, ..., cam_{K-1}]
/// with ties going to the first maximum (numpy.argmax: background wins a tie), then mapped to
/// dataset ids (0 = background, keys[k] + 1). Spec §6.
/// keys: [K] integer class indices (0-based). cams: [K, H, W] float16, float32 or float64; the
/// background is computed in the CAMs' dtype as NumPy does (float16: every step rounded to
/// float16; a threshold is rounded to the dtype as np.pad would). K = 0 gives all background.
/// num_classes (with background) bounds the ids (0: ids < 255 only). `what` names the source in
/// errors; non-finite CAM values, bad shapes and keys beyond the classes throw clipes::Error.
std::vector<cv::Mat> cam_labels(const io::NpyArray& keys, const io::NpyArray& cams,
                                const std::vector<BackgroundSetting>& settings, int num_classes,
                                std::string_view what);

}  // namespace clipes::eval
