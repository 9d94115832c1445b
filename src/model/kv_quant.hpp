// KV-cache quantization format (SINKS.md §4): one K or V vector of a KV head is coded in groups of
// G channels along the head dimension, asymmetric min-max with an fp16 scale s and an fp16 minimum m:
//     q = clamp(round((x − m)/s), 0, 2^b − 1),   x̂ = fma(s, q, m),   b ∈ {8, 4, 2}.
// m is rounded down and s up to fp16, so every element of the group lies in the coded range and
// |x̂ − x| ≤ s/2 (up to f32 rounding). Codes are packed little-endian: element i at bit b·i of the row.
// Protected (sink) tokens are stored as plain fp16 instead.
#pragma once

#include <cstddef>
#include <cstdint>

namespace planeq::kvq {

// Bytes of codes for n elements and of group parameters (2 fp16 per group) for n elements.
inline int64_t code_bytes(int64_t n, int bits) { return n * bits / 8; }
inline int64_t param_count(int64_t n, int group) { return 2 * (n / group); }  // uint16 values
// Stored bits per element of a quantized vector: b + 32/G.
inline double bits_per_element(int bits, int group) { return bits + 32.0 / group; }

// Quantizes n elements (n a multiple of group; group a multiple of 8/bits): codes[code_bytes(n)], params[param_count(n)]
// as (scale, min) fp16 pairs per group.
void quantize(const float* x, int64_t n, int bits, int group, uint8_t* codes, uint16_t* params);
// x̂ for n elements (the reference the attention kernels are tested against).
void dequantize(const uint8_t* codes, const uint16_t* params, int64_t n, int bits, int group, float* out);
// One code of a packed row.
inline int code_at(const uint8_t* codes, int64_t i, int bits) {
    const int64_t bit = i * bits;
    return (codes[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}

// fp16 rounding in a chosen direction (used for the group parameters).
uint16_t f16_round_down(float x);
uint16_t f16_round_up(float x);

}  // namespace planeq::kvq
