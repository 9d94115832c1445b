// Dense weight formats and the dtype conversion every loader needs.
#pragma once

#include "formats/format.hpp"

namespace planeq {

extern const WeightFormat kFormatF32, kFormatBF16, kFormatF16;
const WeightFormat& dense_format_for(DType dtype);  // F32/F16/BF16 (callers check the dtype first)

// n elements starting at element `first` of a dense f32/bf16/f16 array, converted to f32.
void dense_to_f32(DType dtype, const uint8_t* data, size_t first, size_t n, float* out);

}  // namespace planeq
