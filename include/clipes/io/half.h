#pragma once
/// IEEE 754 binary16 <-> binary32 conversion (round to nearest even), for .npy float16 data.

#include <cstdint>

namespace clipes::io {

float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

}  // namespace clipes::io
