#include "clipes/cam/numpy_reduce.h"

namespace clipes::cam {

float numpy_pairwise_sum(const float* values, std::int64_t n, std::int64_t stride) {
  constexpr std::int64_t kBlock = 128;  // NumPy's PW_BLOCKSIZE
  if (n < 8) {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) sum += values[i * stride];
    return sum;
  }
  if (n <= kBlock) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = values[j * stride];
    std::int64_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += values[(i + j) * stride];
    }
    float sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += values[i * stride];
    return sum;
  }
  std::int64_t half = n / 2;
  half -= half % 8;
  return numpy_pairwise_sum(values, half, stride) +
         numpy_pairwise_sum(values + half * stride, n - half, stride);
}

}  // namespace clipes::cam
