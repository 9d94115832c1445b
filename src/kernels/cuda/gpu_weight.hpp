// Internal to src/kernels/cuda: the resident-weight structure shared by the repacker (host C++) and
// the kernels (.cu). See cuda_gemv.hpp for the layout's contract and docs/cuda.md for the reasoning.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

#include "core/error.hpp"

#define PLANEQ_CUDA_CHECK(expr)                                                                             \
    do {                                                                                                    \
        cudaError_t e_ = (expr);                                                                            \
        if (e_ != cudaSuccess)                                                                              \
            ::planeq::fail(std::string("CUDA error: ") + cudaGetErrorString(e_) + " in " #expr " at " __FILE__); \
    } while (0)

namespace planeq::cuda {

// Plane configurations the kernels are instantiated for (one per format/bits combination).
enum PlaneFmt : int { kInt2 = 0, kInt3, kInt4, kBit2, kBit3, kBit4, kTrit, kPlaneFmtCount };

__host__ __device__ constexpr int plane_count(int f) {
    return f == kInt2 || f == kInt4 ? 1 : f == kInt3 || f == kBit2 || f == kTrit ? 2 : f == kBit3 ? 3 : 4;
}
__host__ __device__ constexpr int plane_bits(int f, int p) {
    return f == kInt2 || f == kTrit ? 2 : f == kInt4 ? 4 : f == kInt3 ? (p == 0 ? 2 : 1) : 1;
}
// Bytes of coefficients per (row, group): int (f16 scale | u16 zero), bitplane (k+1 bf16), trit (2 f16).
__host__ __device__ constexpr int plane_coef_bytes(int f) {
    return f == kBit2 ? 6 : f == kBit3 ? 8 : f == kBit4 ? 10 : 4;
}

// Coefficient bytes one lane reads per superchunk: for its two rows (g, g + 8) and the superchunk's GS
// groups, entries (group gs, row half h) of plane_coef_bytes at (gs·2 + h)·bytes, padded to 16 bytes.
// Device layout [tiles][supers][8 row pairs g][this many bytes]: prefetched with the codes.
__host__ __device__ constexpr int coef_block_bytes(int f, int groups_per_super) {
    return (groups_per_super * 2 * plane_coef_bytes(f) + 15) / 16 * 16;
}

constexpr int kTileRows = 16;     // rows of one mma A tile
constexpr int kSuperCols = 256;   // columns one lane-load step covers for every plane (16 k-steps of 16)

struct GpuWeight {
    bool dense = false;  // true: bf16 row-major [rows × cols]; false: planes
    int64_t rows = 0, cols = 0;
    // planes
    int fmt = 0, group = 0;
    int64_t tiles = 0, supers = 0, groups_pad = 0;  // rows_pad / 16, cols_pad / 256, cols_pad / group
    void* planes[4] = {nullptr, nullptr, nullptr, nullptr};  // each [tiles][supers][32 lanes][16·bits bytes]
    size_t plane_bytes[4] = {0, 0, 0, 0};
    void* coefs = nullptr;  // [tiles][supers][8][coef_block_bytes]
    size_t coef_bytes = 0;
    // The batch-1 bandwidth-first layout (gemv_bw.cu; int b=2 and bitplane k=2 only, else null), a second copy:
    // bw_codes [row blocks of 32][cols_pad / 64][32 lanes][16 B] of 2-bit codes (bitplane: v = b1 + 2·b2), the
    // code of column 16w + 4c + j of a 16-column word w at bit 8j + 2c; bw_coefs [row blocks][cols_pad / 256]
    // [records][32 lanes][256/group records of 4 B (int: f16 s | u16 z) or 2 B (bitplane: c0, c1, c2 planes)].
    void* bw_codes = nullptr;
    void* bw_coefs = nullptr;
    size_t bw_code_bytes = 0, bw_coef_bytes = 0;
    // dense
    void* bf16 = nullptr;
    std::string desc;

    ~GpuWeight();
};

struct ActBuffer {
    void* xfrag = nullptr;  // [cols_pad/16 k-steps][batch][4 lanes t][16 B: hi pair, hi pair + 8, lo, lo + 8]
    float* xsum = nullptr;  // [batch][cols_pad / group]
    float* xsq = nullptr;   // [batch][cols_pad / group]: Σ x² per group (RMSNorm's scale)
    // int8 path (gemv_i8.cu): x ≈ s·(h + l/254) per (token, group), h and l int8 in the permuted B order of
    // plane_layout.hpp, [supers][2·batch columns (h, l)][4 lanes][64 B]; xsc [batch][cols_pad / group] = (s, Σ x̂)
    int8_t* xq8 = nullptr;
    float2* xsc = nullptr;
    int* counters = nullptr;  // [cols_pad / 16]: per-group arrivals of a GEMV that prepares this buffer (gemv_multi_prep)
    int i8_bits = 0;  // 0: the fp16 layout above was prepared; 1, 2, 4: the int8 layout for planes of that width
    int i8_ga = 0;    // ...its activation groups: 0 the weight's; 64 (int b=2) written by a paired gate/up launch
    int64_t max_cols = 0;
    // what was last prepared (checked by gemv)
    int64_t cols_pad = 0, cols = 0;
    int batch = 0, group = 0;
    bool rms_norm = false;
    // The batch-1 bandwidth-first path (gemv_bw.cu) prepares nothing ahead: the GEMV quantizes x (silu(x)·up)
    // itself, so prepare_act only records the source, which must stay unchanged until the GEMV has run.
    bool bw = false;
    const float* bw_x = nullptr;
    const float* bw_up = nullptr;
    // A residual add and RMSNorm fused into that GEMV (prepare_act_norm): the input is
    // norm_w ⊙ v / sqrt(mean(v²) + eps) with v = x + delta, and the first tile's blocks store v to x_out.
    const float* bw_delta = nullptr;
    const float* bw_norm_w = nullptr;
    float* bw_x_out = nullptr;
    float bw_eps = 1e-5f;
    void clear_bw_norm() { bw_delta = nullptr, bw_norm_w = nullptr, bw_x_out = nullptr, bw_eps = 1e-5f; }
    // ...unless a paired gate/up launch quantized silu(gate)·up for it in its epilogue (gemv_bw_pair): bw_preq, in
    // bwq (h, l int8 [max_cols] each, records (s/254, Σ(254h + l)) [max_cols / 32], Σ x² [max_cols / 64]), groups
    // of bw_ga columns.
    bool bw_preq = false;
    int bw_ga = 0;
    bool bw_a8 = false;  // ...with int8 activations only (DecodeOptions::bw_act8): records (s, Σh), l unused
    int8_t* bwq = nullptr;
    ~ActBuffer();
};

}  // namespace planeq::cuda
