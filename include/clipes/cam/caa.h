#pragma once
/// Class-aware attention affinity (CAA), spec §4: the Sinkhorn-normalised, symmetrised attention
/// affinity of an image, the per-class box masks, and the refinement D^t·(mask ⊙ cam).

#include <array>
#include <vector>

#include <ATen/core/Tensor.h>

#include "clipes/cam/cam_config.h"

namespace clipes::cam {

/// A box on the patch grid, end-exclusive: columns [x0, x1), rows [y0, y1).
struct Box {
  int x0 = 0;
  int y0 = 0;
  int x1 = 0;
  int y1 = 0;
  bool operator==(const Box& other) const {
    return x0 == other.x0 && y0 == other.y0 && x1 == other.x1 && y1 == other.y1;
  }
};

/// attention: [N, N] float32, the mean head-averaged attention of the last blocks over the patch
/// tokens (class token removed, not renormalised). Returns D: [N, N] float32, same device:
/// `cfg.sinkhorn_rounds` rounds of column- then row-normalisation, then (T + Tᵀ)/2. Spec §4.
at::Tensor sinkhorn_affinity(const at::Tensor& attention, const CaaConfig& cfg);

/// cam: [h, w] float32 in [0, 1] (the normalised patch-level CAM of one class). The boxes of
/// every contour (OpenCV RETR_TREE, CHAIN_APPROX_SIMPLE) of u8 > floor(λ·max(u8)), u8 =
/// floor(cam·255), clipped as the reference does (x1 ≤ w−1, y1 ≤ h−1: the quirk of spec §4).
/// No contour: no box.
std::vector<Box> cam_boxes(const at::Tensor& cam, float box_threshold);

/// cams: [K, h, w] float32. Returns the box masks [K, h, w] float32 (1 inside any box of the
/// class, else 0), same device as `cams`. Spec §4.
at::Tensor box_masks(const at::Tensor& cams, float box_threshold);

/// cams: [K, h, w] float32 (normalised GradCAMs); affinity: [N, N] from sinkhorn_affinity with
/// N = h·w; masks: [K, h, w] from box_masks. Returns the refined maps [K, h, w] float32 =
/// D^t·(mask ⊙ cam) for each class (the code's masking of the input, spec §4 quirk), before the
/// final normalisation. By default D is applied t times to the masked CAMs (t·N²·K
/// multiply-adds, never the N³ product); cfg.explicit_power forms D^t with the reference's ops
/// ((t−1)·N³ + K·N², its exact float32 numbers).
at::Tensor refine_with_affinity(const at::Tensor& cams, const at::Tensor& affinity,
                                const at::Tensor& masks, const CaaConfig& cfg);

/// maps: [K, ...] float32. Each map k: x − min, then x / (1e-7 + max) with the denominator
/// summed in double and rounded to float32, as the reference's scale_cam_image does. Spec §3–§4.
at::Tensor minmax_normalize(const at::Tensor& maps);

}  // namespace clipes::cam
