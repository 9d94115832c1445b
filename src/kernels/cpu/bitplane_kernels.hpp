// CPU kernels of the bitplane format (formats/bitplane.hpp). docs/formats.md explains the design and
// has the measurements of the three GEMV variants.
//
// (b) Int8BitSerial (the default). Activations are quantized to int8 per weight group j (the int-group
// quantizer: d_j = max|x|/127, xq = round-half-even(x/d_j) ∈ [−127, 127], x̂ = d_j·xq). Per row r, group j:
//   y_r = Σ_j d_j · ( c_0 · Σ_{i∈G_j} xq_i  +  Σ_m c_m · S_{m,j} ),   S_{m,j} = Σ_{i∈G_j, b_m,i = 1} xq_i
// The S are exact integers (a 64-column plane mask selects the int8 activations, vpdpbusd with u8 ones
// sums them in int32); only the f32 combination rounds. So y = Σ_i ŵ_i x̂_i up to f32 rounding, and
// |y − Σ_i ŵ_i x_i| ≤ Σ_i |ŵ_i|·|x_i − x̂_i| (+ rounding), the bound the tests check.
// (c) F32Levels: the 2^k levels of a row-group (bitplane_level) in one zmm; per 16 columns the k plane
// bits become a lane index by masked adds, vpermps looks the weights up, FMA with f32 x.
// (a) F32Lut (BPDQ.md §8): per 8 columns a table T[256] of subset sums of x (shared by all rows and
// planes); per row-group and plane, Σ_{b=1} x = Σ over the group's 8-column chunks of T_chunk[plane byte]
// (vpgatherdd of 16 chunks at a time), y = Σ_j c_0·Σx + Σ_m c_m·S_m.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace planeq::cpu {

struct BitplaneView {
    const uint8_t* planes = nullptr;  // [rows][cols·k/8], the stored layout
    int64_t rows = 0, cols = 0;
    int k = 2, group = 128;
    int64_t ngroups = 0;               // cols / group
    const uint16_t* coefs = nullptr;   // [rows][ngroups][k+1] bf16 bits, index 0 = c_0
    int64_t row_bytes() const { return cols * k / 8; }
};

// The plane-m (1 … k) mask of 64-column chunk t of a row: bit i ↔ column 64t + i (a 32-column last chunk
// gives its 32 bits in the low half). Obviously right.
inline uint64_t bitplane_mask(const uint8_t* row, int64_t cols, int k, int64_t t, int m) {
    if (64 * t + 64 <= cols) {
        uint64_t v;
        std::memcpy(&v, row + 8 * k * t + 8 * (m - 1), 8);
        return v;
    }
    uint32_t v;
    std::memcpy(&v, row + 8 * k * t + 4 * (m - 1), 4);
    return v;
}

// Code β = Σ 2^(m−1) b_m of column c of a row.
inline int bitplane_code(const uint8_t* row, int64_t cols, int k, int64_t c) {
    int beta = 0;
    for (int m = 1; m <= k; ++m) beta |= int((bitplane_mask(row, cols, k, c / 64, m) >> (c % 64)) & 1u) << (m - 1);
    return beta;
}

// Quantized activations of one GEMV call (per weight group; the int-group quantizer with block = g).
struct BitplaneAct {
    const int8_t* xq = nullptr;   // [cols + 64], zero past cols
    const float* d = nullptr;     // [ngroups] group scales
    const int32_t* sx = nullptr;  // [ngroups] Σ xq over the group
    const float* drep = nullptr;  // [ngroups·(k+1)]: d_j at every index j·(k+1) + m
    const float* sxe = nullptr;   // [ngroups·(k+1)]: float(sx_j) at index j·(k+1), 0 elsewhere
    const float* xf = nullptr;    // f32 variants: the activations
    const float* xsum = nullptr;  // f32 variants: [ngroups] Σ_{i∈G_j} x_i
    const float* lut = nullptr;   // F32Lut: [ceil(cols/64)·8][256] subset sums (chunks past cols: zeros)
};

// y[r] for rows [r0, r1), int8 bit-serial (scalar: double accumulation of the exact integer sums).
void bitplane_gemv_rows_scalar(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y);
void bitplane_gemv_rows_avx2(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y);
void bitplane_gemv_rows_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y);
// f32 activations (AVX-512): levels + vpermps, and the subset-sum LUT.
void bitplane_gemv_rows_levels_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y);
void bitplane_gemv_rows_lut_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y);
// The LUT tables: lut[c][b] = Σ_{i<8, bit i of b} x[8c + i], summed in increasing i. Writes ceil(cols/64)·8
// chunks (whole 64-column vectors; x past cols counts as 0), so lut needs that many × 256 floats.
void bitplane_build_lut_avx512(const float* x, int64_t cols, float* lut);

// Rows [r0, r0 + nr) × columns [c0, c0 + nc) into out[nr × nc], bit-identical to the reference.
void bitplane_dequant_block_avx512(const BitplaneView& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out);

}  // namespace planeq::cpu

namespace planeq::cpu {

// (d) Int8RowBlocks (the default GEMV on AVX-512): the weight repacked at load into blocks of 16 rows, so
// that one int32 lane is one row and the per-group scaling is one vector FMA for 16 rows (the row-major
// kernel (b) spends as many instructions converting and scaling its per-row group sums as on the sums).
// Block b (rows 16b … 16b + 15, rows past the end zero) is a sequence of groups; group j is
//   g/4 column quads, each k u64 words (plane m = word m − 1): bit 4ρ + i ↔ row 16b + ρ, column 4q + i
//   then (k + 1) × 16 bf16 coefficients: [m][ρ], m = 0 the bias c_0.
// A plane word is one kmovq from a mask register whose byte lanes 4ρ … 4ρ + 3 are row ρ's four columns, so
// vmovdqu8{z} of u8 ones + vpdpbusd against the broadcast int8 quad x[4q … 4q + 3] adds Σ_{b=1} xq to row
// ρ's lane. Same math and activation quantization as (b): y_r = Σ_j d_j (c_0 Σxq_j + Σ_m c_m S_{m,j}).
struct BitplaneBlocks {
    int64_t rows = 0, cols = 0, ngroups = 0, nblocks = 0;
    int k = 2, group = 128;
    std::vector<uint8_t> bytes;  // nblocks × block_bytes()
    int64_t quad_bytes() const { return 8 * k; }
    // k = 2, 4: "bit slots" — the quads of a group in steps of slot_quads() = 8 / k quads, one 64-byte
    // vector a step: byte 4ρ + i holds, at bit u·k + m − 1, plane m of row ρ, column 4(step·8/k + u) + i.
    // Masking one bit in place and vpdpbusd against quad u's broadcast x adds 2^bit · Σ_{b=1} xq: one AND
    // per 64 plane bits instead of a mask load + kmov + masked move (the sums are shifted back per group).
    bool slot_bytes() const { return k == 2 || k == 4; }
    int64_t slot_quads() const { return 8 / k; }
    int64_t group_bytes() const { return group / 4 * quad_bytes() + (k + 1) * 32; }
    int64_t block_bytes() const { return ngroups * group_bytes(); }
};
BitplaneBlocks bitplane_to_blocks(const BitplaneView& w);  // the repack (portable)
// y[r] for the rows of blocks [b0, b1).
void bitplane_gemv_blocks_avx512(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y);
// The same on AVX2 for the bit-slot layouts (k = 2, 4): two 8-row halves, (v >> slot) & 1 by a chained shift and
// an AND, vpmaddubsw into int16 pair sums widened once per group (bitplane_blocks_avx2.cpp).
void bitplane_gemv_blocks_avx2(const BitplaneBlocks& w, const BitplaneAct& a, int64_t b0, int64_t b1, float* y);

}  // namespace planeq::cpu
