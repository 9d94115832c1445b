// CPU kernels of the int-group format (formats/int_group.hpp): GEMV with int8-quantized activations
// (scalar, AVX2 vpmaddubsw, AVX-512 VNNI vpdpbusd), an f32-activation AVX-512 GEMV kept for comparison,
// and fast block dequantization for the prefill GEMM. docs/formats.md explains the design.
//
// Math of the int8 GEMV. Activations are quantized per block of A columns (A = 32 or A = g):
//   d_k = max|x_i| / 127, x̂q_i = round_half_even(x_i · (127 / max|x_i|)) ∈ [−127, 127],  x̂_i = d_k · xq_i.
// With S_j = Σ_{k ⊂ group j} d_k · Σ_{i ∈ k} xq_i (shared by all rows):
//   y_r = Σ_j s_rj · (Σ_{k ⊂ j} d_k · Σ_{i ∈ k} q_ri · xq_i)  −  Σ_j s_rj · z_rj · S_j  =  Σ_i ŵ_ri · x̂_i.
// The integer dots are exact (u8 codes × s8 activations in int32); only the f32 combination rounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace planeq::cpu {

struct IntGroupView {
    const uint8_t* qweight = nullptr;  // codes, rows contiguous (kernel column order for the GEMV)
    int64_t rows = 0, cols = 0;
    int bits = 4, group = 128;
    int64_t ngroups = 0;               // cols / group
    const uint16_t* scales = nullptr;  // [rows × ngroups] fp16 bits
    const uint8_t* zeros = nullptr;    // [rows × ngroups] one zero point per byte (runtime copy)
    int64_t row_bytes() const { return cols * bits / 8; }
};

// Quantized activations for one GEMV call (in kernel column order).
struct Int8Act {
    int block = 32;                 // activation block A: 32, or the weight group size g
    const int8_t* xq = nullptr;     // [cols + 64] codes, zero past cols
    const float* d = nullptr;       // [cols / A] block scales
    const float* dexp = nullptr;    // A = 32: [ceil(cols / 64) × 16] lane scales of each 64-column chunk
                                    //   (lanes 0-7: d of its first 32 columns, lanes 8-15: of the second)
    const float* zsum = nullptr;    // [ngroups] S_j (f32 path: Σ_{i ∈ group j} x_i)
    const float* xf = nullptr;      // f32 path only: the activations themselves
};

// Code of column c (0 ≤ c < cols) in one packed row (the layout of formats/int_group.hpp). Obviously right.
inline int int_group_code(const uint8_t* row, int64_t cols, int bits, int64_t c) {
    const int64_t W = bits == 4 ? 128 : 256;  // columns of a full chunk
    const int64_t chunk = c / W, i = c % W;
    const int64_t width = chunk * W + W <= cols ? W : cols - chunk * W;  // the last chunk may be narrower
    const uint8_t* p = row + chunk * W * bits / 8;
    if (bits == 4) {
        const int64_t half = width / 2;
        return i < half ? (p[i] & 0x0F) : (p[i - half] >> 4);
    }
    const int64_t quarter = width / 4;  // bytes of the 2-bit plane
    const int lo = (p[i % quarter] >> (2 * (i / quarter))) & 3;
    if (bits == 2) return lo;
    const int hi = (p[quarter + i / 8] >> (i % 8)) & 1;  // 3-bit: the high-bit plane follows
    return lo | hi << 2;
}

// All codes of one chunk of width w (a multiple of 32) in natural order into out[w] (the kernels' path
// for a narrow last chunk; plain loops the compiler vectorizes).
inline void int_group_unpack_chunk(const uint8_t* p, int bits, int64_t w, uint8_t* out) {
    if (bits == 4) {
        const int64_t half = w / 2;
        for (int64_t j = 0; j < half; ++j) out[j] = p[j] & 0x0F;
        for (int64_t j = 0; j < half; ++j) out[half + j] = p[j] >> 4;
        return;
    }
    const int64_t quarter = w / 4;
    for (int k = 0; k < 4; ++k)
        for (int64_t j = 0; j < quarter; ++j) out[k * quarter + j] = (p[j] >> (2 * k)) & 3;
    if (bits == 3)
        for (int64_t i = 0; i < w; ++i) out[i] |= ((p[quarter + i / 8] >> (i % 8)) & 1) << 2;
}

// Activation quantization: x[cols] -> xq[cols], d[cols / block], sx[cols / block] = Σ xq per block.
// All three levels give bit-identical results.
void int_group_quantize_act_scalar(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx);
void int_group_quantize_act_avx2(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx);
void int_group_quantize_act_avx512(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx);

// y[r] for rows [r0, r1): the int8 GEMV (callers split rows across threads).
void int_group_gemv_rows_scalar(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y);
void int_group_gemv_rows_avx2(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y);
void int_group_gemv_rows_avx512(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y);

// The f32-activation GEMV (AVX-512; needs group ≥ 64): xsum[j] = Σ_{i ∈ group j} x_i.
void int_group_gemv_rows_f32_avx512(const IntGroupView& w, const float* x, const float* xsum, int64_t r0,
                                    int64_t r1, float* y);

// Dequantizes rows [r0, r0 + nr) × columns [c0, c0 + nc) into out[nr × nc], bit-identical to the
// reference. `g_idx` (original column order, may be null) gives each column's group; w is the stored
// (original column order) layout.
void int_group_dequant_block_avx512(const IntGroupView& w, const int32_t* g_idx, int64_t r0, int64_t nr, int64_t c0,
                                    int64_t nc, float* out);

// Row blocks (the default GEMV on AVX-512, with activations quantized per group): the codes repacked at
// load into blocks of 16 rows so that one int32 lane is one row; per group the scaling and the zero-point
// correction are one vector FMA each for 16 rows (the row-major kernel does them per row), and a block is
// one sequential stream. Block b (rows 16b … 16b + 15; rows past the end zero):
//   codes, group by group, in 64-byte vectors: byte 4ρ + i of a vector holds column 4q + i of row ρ for
//   4/… column quads q at once — b = 4: quad 2v in the low nibble, 2v + 1 in the high one; b = 2: quad 4v + u
//   at bits 2u; b = 3: the low two bits as b = 2, then per quad a u64 plane word of the high bit (bit 4ρ + i);
//   then for every group 16 fp16 scales and 16 u8 zero points (row order).
// Kernel: per quad, vpdpbusd of the u8 codes against the broadcast int8 quad x[4q … 4q + 3].
struct IntBlocks {
    int64_t rows = 0, cols = 0, ngroups = 0, nblocks = 0;
    int bits = 4, group = 128;
    std::vector<uint8_t> bytes;  // nblocks × block_bytes()
    int64_t group_code_bytes() const { return 16 * group * bits / 8; }
    int64_t code_bytes() const { return ngroups * group_code_bytes(); }
    int64_t block_bytes() const { return code_bytes() + ngroups * 48; }
};
// Whether the row-block kernels handle these parameters (AVX-512 or AVX2, activations per group).
inline bool int_blocks_supported(int bits, int group) { return bits >= 2 && bits <= 4 && group >= 32; }
IntBlocks int_group_to_blocks(const IntGroupView& w);  // the repack (portable), kernel column order
// y[r] for the rows of blocks [b0, b1); a.block must be the group size.
void int_group_gemv_blocks_avx512(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y);
// The same on AVX2 (two 8-row halves, vpmaddubsw into int16 pair sums widened before they can overflow).
void int_group_gemv_blocks_avx2(const IntBlocks& w, const Int8Act& a, int64_t b0, int64_t b1, float* y);

}  // namespace planeq::cpu
