#pragma once
/// Float32 sums in the exact order NumPy computes them, so that the GradCAM arithmetic of the
/// reference (pytorch-grad-cam on NumPy arrays, spec §3) is reproduced bit for bit on the CPU.

#include <cstdint>

namespace clipes::cam {

/// np.add.reduce over n float32 values `stride` elements apart, when the reduced axis is the
/// inner loop: NumPy's pairwise summation (blocks of at most 128 values summed with 8
/// accumulators, larger runs split in halves rounded down to multiples of 8).
float numpy_pairwise_sum(const float* values, std::int64_t n, std::int64_t stride = 1);

}  // namespace clipes::cam
