#pragma once
/// The CLIP stage of one image (spec §3–§4): preprocessed pixels → softmax-GradCAM for the
/// present classes → class-aware attention affinity → refined CAMs at image size.

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "clipes/cam/cam_config.h"

namespace clipes::clip {
class ClipModel;
}

namespace clipes::pipeline {

/// Seconds spent in each part of compute_image_cams.
struct CamTimings {
  double trunk = 0;      ///< patch embedding and blocks 1..L−1
  double last_block = 0; ///< block L forward and the K class gradients
  double caa = 0;        ///< affinity, boxes, refinement, normalisation, resize
};

struct ImageCams {
  at::Tensor initial;  ///< [K, h, w] float32 CPU: softmax-GradCAM before CAA (spec §3)
  at::Tensor refined;  ///< [K, H, W] float32 CPU in [0, 1]: the CAMs everything downstream uses
  at::Tensor probs;    ///< [K + M] float32 CPU: softmax over [present classes; background]
  CamTimings timings;
};

/// pixels: [1, 3, P·h, P·w] float32, CLIP-normalised (clip::preprocess_for_clip). text_matrix:
/// [K + M, E] (clip::TextBank::text_matrix of the image's labels). num_classes: K >= 1.
/// image_width × image_height: the size the refined CAMs are resized to (bilinear, as the
/// reference's cv2.resize). The affinity is the mean attention of the last cam.attention_blocks
/// blocks, computed once and shared by the K classes.
ImageCams compute_image_cams(const clip::ClipModel& model, const at::Tensor& pixels,
                             const at::Tensor& text_matrix, std::int64_t num_classes,
                             int image_width, int image_height, const cam::CamConfig& cam,
                             const cam::CaaConfig& caa);

}  // namespace clipes::pipeline
