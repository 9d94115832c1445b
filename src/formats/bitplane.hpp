// The "bitplane" weight format (BPDQ, /shared/methods/BPDQ.md): k binary planes per weight (k = 2, 3, 4)
// and k + 1 free bf16 coefficients per (row, group of g input columns), g ∈ {32, 64, 128, 256}:
//
//     ŵ_{r,i} = c_{0,r,j} + Σ_{m=1..k} c_{m,r,j} · b_{m,r,i}        (i in group j)
//
// computed in f32 EXACTLY as bitplane_level() does: v = float(c_0); then for m = 1 … k in this order,
// v = v + float(c_m) when b_m = 1 (no operation when b_m = 0, so no −0/+0 or rounding surprises).
// Every dequantizer, kernel level table and the BPDQ method use that expression, so the Q a method
// propagated is bit-for-bit what the stored weight dequantizes to.
// The "code" of a weight is the k-bit integer β = Σ_m 2^(m−1) · b_m (plane m = bit m − 1 of β).
// FormatParams: bits = k, group = g (sym and g_idx unused, must be false).
//
// Parts (rows R, cols C, groups per row G = C/g):
//   planes  U8   [R, C·k/8]     rows contiguous, each row a sequence of 64-column chunks (below)
//   coefs   BF16 [R, G, k+1]    coefs[r, j, 0] = c_0 (bias), coefs[r, j, m] = c_m, m = 1 … k
// Stored bits = R·C·k + R·G·(k+1)·16, byte-exact (bits per weight k + 16(k+1)/g); no padding.
//
// Row layout: chunk t (columns 64t … 64t+63) occupies bytes [8kt, 8kt + 8k): k little-endian u64 words,
// word m − 1 = plane m, bit i of the word ↔ column 64t + i. When C % 64 = 32 (only possible for g = 32)
// the last 32 columns are a chunk of k u32 words (4k bytes), same bit order. So one 8-byte load is a
// 64-column plane mask (a kmovq away from an AVX-512 mask register) in natural column order.
//
// Released layout of the reference implementation (BPDQ.md §3), converted losslessly both ways:
//   planes int32 [C/32, k, R]: word (t, m−1, r) bit j ↔ plane m of row r, column 32t + j
//   c      bf16  [C/g, k+1, R]: c[j, m−1, r] = c_m (m = 1 … k), c[j, k, r] = c_0
// Kernels: kernels/cpu/bitplane_*.cpp; design and measurements in docs/formats.md.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/half.hpp"
#include "formats/format.hpp"

namespace planeq {

extern const WeightFormat kFormatBitplane;

// The documented level expression: coefficients c[0 … k] (c[0] = c_0) in f32, code β.
inline float bitplane_level(const float* c, int k, unsigned beta) {
    float v = c[0];
    for (int m = 1; m <= k; ++m)
        if ((beta >> (m - 1)) & 1u) v = v + c[m];
    return v;
}
// The same from stored bf16 coefficients.
inline float bitplane_level_bf16(const uint16_t* c, int k, unsigned beta) {
    float v = bf16_to_f32(c[0]);
    for (int m = 1; m <= k; ++m)
        if ((beta >> (m - 1)) & 1u) v = v + bf16_to_f32(c[m]);
    return v;
}

constexpr int64_t bitplane_row_bytes(int k, int64_t cols) { return cols * k / 8; }

// Packs codes (R×C, original column order, each < 2^k) and coefficients (bf16 bits, [R][G][k+1], index 0
// = c_0) into an owned PackedWeight, ready to use. Throws planeq::Error on bad input.
PackedWeight pack_bitplane(int64_t rows, int64_t cols, const FormatParams& p, std::span<const uint8_t> codes,
                           std::span<const uint16_t> coefs_bf16);

// The codes (R×C, β = Σ 2^(m−1) b_m) and the coefficients ([R][G][k+1]) of a packed weight.
std::vector<uint8_t> unpack_bitplane_codes(const PackedWeight& w);
std::vector<uint16_t> bitplane_coefs(const PackedWeight& w);

// The released layout (BPDQ.md §3) and back.
struct BitplaneReleased {
    std::vector<int32_t> planes;  // [C/32][k][R]
    std::vector<uint16_t> c;      // [C/g][k+1][R], bf16 bits
};
BitplaneReleased bitplane_to_released(const PackedWeight& w);
PackedWeight bitplane_from_released(int64_t rows, int64_t cols, const FormatParams& p, std::span<const int32_t> planes,
                                    std::span<const uint16_t> c);

// GEMV kernel variants (docs/formats.md has the measurements). Process-wide setting.
enum class BitplaneGemvVariant {
    Int8BitSerial,  // (b) activations int8 per group; per plane: mask → masked bytes → VNNI dot (default)
    F32Levels,      // (c) f32 activations; per group the 2^k levels in a register, vpermps lookup, FMA
    F32Lut,         // (a) f32 activations; per 8 columns a 256-entry table of subset sums, gathered per plane
    Int8RowBlocks,  // (d) as (b) on a 16-row block repack built at load: one lane per row (the default)
};
void set_bitplane_gemv_variant(BitplaneGemvVariant v);
BitplaneGemvVariant bitplane_gemv_variant();
const char* bitplane_gemv_variant_name(BitplaneGemvVariant v);

}  // namespace planeq
