#pragma once
/// CLIP's image preprocessing as the reference computes it (spec §2): torchvision's
/// Compose([Resize((H', W'), BICUBIC), convert("RGB"), ToTensor(), Normalize(mean, std)]) on the
/// Pillow image, with H' = ceil(H / patch) * patch and W' = ceil(W / patch) * patch.
///   - the resize is Pillow's bicubic in the image's own mode (clipes/data/image.h, resize.h);
///   - ToTensor and Normalize are float32 arithmetic: (float(x) / 255 - mean[c]) / std[c], each
///     operation rounded to float32 as torch does, so the result matches bit for bit.

#include <array>

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include "clipes/data/image.h"

namespace clipes::clip {

/// CLIP's normalisation (OpenAI CLIP, torchvision Normalize), per RGB channel.
inline constexpr std::array<float, 3> kClipMean{0.48145466F, 0.4578275F, 0.40821073F};
inline constexpr std::array<float, 3> kClipStd{0.26862954F, 0.26130258F, 0.27577711F};

/// The size CLIP-ES feeds the ViT: each side rounded up to a multiple of `patch_size` (>= 1):
/// (ceil(W / patch) * patch, ceil(H / patch) * patch). Throws clipes::Error on an empty size or a
/// patch size < 1.
cv::Size clip_input_size(cv::Size image_size, int patch_size);

/// rgb: CV_8UC3 in R, G, B order, non-empty. Returns [1, 3, H, W] float32 on the CPU:
/// (x / 255 - kClipMean[c]) / kClipStd[c] in float32. Throws clipes::Error on another type.
at::Tensor normalize_for_clip(const cv::Mat& rgb);

/// The reference's whole preprocessing (spec §2): resize `image` in its own mode with Pillow's
/// bicubic to clip_input_size(image size, patch_size), convert to RGB, normalise.
/// Returns [1, 3, H', W'] float32 on the CPU.
at::Tensor preprocess_for_clip(const data::DecodedImage& image, int patch_size = 16);

}  // namespace clipes::clip
