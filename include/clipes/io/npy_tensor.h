#pragma once
/// Conversions between NpyArray and ATen tensors (copies; CPU).

#include <ATen/core/Tensor.h>

#include "clipes/io/npy.h"

namespace clipes::io {

/// A CPU tensor of the array's dtype and shape (float16 -> at::kHalf, bool -> at::kBool).
at::Tensor to_tensor(const NpyArray& array);
/// The tensor's values (moved to CPU, made contiguous) as an array of the same dtype.
NpyArray from_tensor(const at::Tensor& tensor);
/// Reads a .npy file straight into a tensor.
at::Tensor read_npy_tensor(const std::filesystem::path& file);

}  // namespace clipes::io
