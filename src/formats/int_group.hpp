// The "int" (int-group) weight format: b-bit codes (b = 2, 3, 4) with an fp16 scale and a b-bit zero
// point per (row, group of g input columns), optionally a per-column group index (dynamic act-order).
// Dequantized weight ŵ = float(s) · float(int(q) − int(z)), computed in f32 exactly like this.
// The stored layout and the kernels are described in docs/formats.md.
//
// Parts (rows R, cols C, groups per row G = C/g):
//   qweight  U8  [R, C·b/8]        codes, rows contiguous, packed in chunks (see below)
//   scales   F16 [R, G]
//   zeros    U8  [ceil(R·G·b/8)]   a flat little-endian stream of R·G b-bit values, (r, j) at bits
//                                  [b·(r·G + j), b·(r·G + j) + b); absent when sym (z = 2^(b−1))
//   g_idx    I32 [C]               only with params.g_idx: column i belongs to group g_idx[i]; every
//                                  group has exactly g columns
// Stored bits = R·C·b + R·G·(16 + b) (+ 32·C with g_idx), rounded up to whole bytes only at the end of
// the zeros stream. qweight has no padding: a row is exactly C·b/8 bytes (C is a multiple of 32).
//
// qweight chunk layout. A row is cut into chunks of W columns, W = 128 for b = 4 and W = 256 for b = 2, 3
// (64 bytes of the main plane each); the last chunk is narrower when W does not divide C (width w, a
// multiple of 32). Chunk k starts at byte k·W·b/8. In a chunk of width w, column i (0 ≤ i < w):
//   4-bit: w/2 bytes; byte j holds column j (low nibble) and column j + w/2 (high nibble).
//   2-bit: w/4 bytes; byte j holds columns j, j + w/4, j + w/2, j + 3w/4 in bits 0-1, 2-3, 4-5, 6-7.
//   3-bit: the low two bits of every code as a 2-bit chunk (w/4 bytes), followed by the high bit of every
//          code as a w/8-byte bit plane with column i at bit i % 8 of byte i / 8.
// So one 64-byte load and a shift + AND per 64 columns give 64 codes in natural column order.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/format.hpp"

namespace planeq {

extern const WeightFormat kFormatIntGroup;

// Packs codes (R×C, original column order, each ≤ 2^b − 1), scales (R×G fp16 bits), zeros (R×G, each
// ≤ 2^b − 1; ignored and may be empty when sym) and g_idx (C entries, or empty without params.g_idx)
// into an owned PackedWeight, ready to use (prepare() has run). Throws planeq::Error on bad input.
PackedWeight pack_int_group(int64_t rows, int64_t cols, const FormatParams& p, std::span<const uint8_t> codes,
                            std::span<const uint16_t> scales_f16, std::span<const uint8_t> zeros,
                            std::span<const int32_t> g_idx);

// The codes of a packed weight, R×C in original column order (tests, converters).
std::vector<uint8_t> unpack_int_group_codes(const PackedWeight& w);
// The zero points, R×G (2^(b−1) everywhere when sym).
std::vector<uint8_t> unpack_int_group_zeros(const PackedWeight& w);

// Columns of a full chunk, byte offset of chunk `chunk` in a row, and the row's byte count.
constexpr int64_t int_group_chunk_cols(int bits) { return bits == 4 ? 128 : 256; }
constexpr int64_t int_group_chunk_offset(int bits, int64_t chunk) { return chunk * int_group_chunk_cols(bits) * bits / 8; }
constexpr int64_t int_group_row_bytes(int bits, int64_t cols) { return cols * bits / 8; }

// GEMV kernel variants (see docs/formats.md for the measurements). The default, Int8ActGroup, is the
// fastest measured; the others stay for benchmarks and tests. Global (process-wide) setting.
enum class IntGemvVariant {
    Int8Act32,     // activations quantized to int8 per 32 columns, integer dot per 32 (VNNI / maddubs)
    Int8ActGroup,  // activations quantized to int8 per weight group (g columns), integer dot per group
    F32Act,        // f32 activations, codes widened to f32 and FMA (AVX-512 only; other levels use Int8Act32)
    Int8RowBlocks, // as Int8ActGroup on a 16-row block repack built at load (AVX-512; else Int8ActGroup): default
};
void set_int_group_gemv_variant(IntGemvVariant v);
IntGemvVariant int_group_gemv_variant();
const char* int_group_gemv_variant_name(IntGemvVariant v);

}  // namespace planeq
