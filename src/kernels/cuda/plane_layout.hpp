// Internal to src/kernels/cuda, host and device (no CUDA headers): the index math of the GPU plane layout
// (docs/cuda.md), shared by the repacker (upload.cpp), the int8 decode path (gemv_i8.cu) and a CPU test
// (tests/test_gpu_plane_layout.cpp) that checks the int8 path's permutation without a GPU.
//
// Plane layout (fp16 mma.m16n8k16 A-fragment order): lane (g = lane/4, t = lane%4) of a 16-row tile holds,
// per 256-column superchunk, 4b words of b-bit codes; word w holds k16-steps w·(4/b) …; k-step j of the word
// and fragment register r (0–3) are slot j·4 + r, at bit b·slot of the low half (even column) and
// 16 + b·slot of the high half (odd column). Register r is row g + 8·(r & 1), columns 2t + 8·(r >> 1) (+1).
//
// The int8 decode path (mma.m16n8k32 u8 × s8 → s32) reads the SAME words: masking a word with
// M_b << (c·b) (M_b = one b-bit field per byte: 0x01010101, 0x03030303, 0x0F0F0F0F) leaves in each byte one
// code times 2^(c·b): 4 codes in int8 A-fragment form with ONE LOP3 and no shift. Class c (bit offset c·b in
// the byte) is register r = slot & 3 of the fp16 layout, so even classes are row g and odd ones row g + 8
// with the same columns. An MMA of "type" τ (0 … T−1, T = 4/b) over the word pair (w0 = 2p, w1 = 2p + 1) takes
//     a0 = w0 & M<<(2τ·b) (row g, scale 2^(2τb)),   a1 = w0 & M<<((2τ+1)·b) (row g + 8, scale 2^((2τ+1)b)),
//     a2 = w1 & M<<(2τ·b),                          a3 = w1 & M<<((2τ+1)·b),
// so every row of one MMA has one scale, removed at the group end (integer Horner, exact). The k order inside
// the MMA is whatever the words hold: the activations (B operand) are written by the prep in that permuted
// order, which is the only thing this file has to get right. A word pair covers 128/b columns, so groups
// must be multiples of that (int2/trit: g ≥ 64, bitplane: g ≥ 128, int4: any).
#pragma once

#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define PLANEQ_HD __host__ __device__
#else
#define PLANEQ_HD
#endif

namespace planeq::cuda {

// Column (0 … 255, within the superchunk) and row half (0: row g, 1: row g + 8) of the code at bit `q`
// (a multiple of b) of word w of lane t, for a b-bit plane.
struct PlaneCell {
    int col, row_half;
};
PLANEQ_HD constexpr PlaneCell plane_cell(int b, int w, int q, int t) {
    const int h = q >= 16 ? 1 : 0;
    const int slot = (q & 15) / b, j = slot >> 2, r = slot & 3;
    const int ks = w * (4 / b) + j;
    return {ks * 16 + 2 * t + 8 * (r >> 1) + h, r & 1};
}

// Int8 activation fragments: per superchunk, per B column n (2·token: hi, 2·token + 1: lo) and lane t, 64 bytes:
// MMA m = p·T + τ (8 per superchunk) at bytes 8m (b0: word 2p) and 8m + 4 (b1: word 2p + 1); byte β of each is
// the k slot of the A register's byte β. i8_byte_col is the forward map (byte offset o of lane t → column),
// i8_col_byte its inverse (column → lane t and byte offset), used by the prep.
constexpr int kI8LaneBytes = 64;
PLANEQ_HD constexpr int i8_byte_col(int b, int t, int o) {
    const int T = 4 / b, m = o / 8, which = (o / 4) & 1, beta = o & 3;
    const int p = m / T, tau = m % T;
    return plane_cell(b, 2 * p + which, 8 * beta + 2 * tau * b, t).col;
}
struct I8Slot {
    int t, offset;
};
PLANEQ_HD constexpr I8Slot i8_col_byte(int b, int cc) {
    const int ks = cc / 16, within = cc % 16;
    const int t = (within & 7) >> 1, h = within & 1, rhi = within >> 3;
    const int w = ks / (4 / b), j = ks % (4 / b);
    const int slot = 4 * j + 2 * rhi;
    const int q = 16 * h + b * slot;
    const int beta = q / 8, tau = (q % 8) / (2 * b);
    const int m = (w >> 1) * (4 / b) + tau;
    return {t, 8 * m + 4 * (w & 1) + beta};
}
// Byte offset in the int8 activation buffer (ActBuffer::xq8: [superchunks][2·batch B columns (h, l)][4 lanes t]
// [64 B]) of token n's h byte of column c for b-bit planes; its l byte is kI8LoBytes further (B column 2n + 1).
constexpr int kI8LoBytes = 4 * kI8LaneBytes;
PLANEQ_HD constexpr int64_t i8_act_byte(int b, int64_t c, int batch, int n) {
    const I8Slot s = i8_col_byte(b, int(c % 256));
    return ((c / 256) * 2 * batch + 2 * n) * kI8LoBytes + s.t * kI8LaneBytes + s.offset;
}
// Per-byte mask of class c (bit offset c·b in every byte) of a b-bit plane.
PLANEQ_HD constexpr uint32_t i8_class_mask(int b, int c) {
    return (b == 1 ? 0x01010101u : b == 2 ? 0x03030303u : 0x0F0F0F0Fu) << (c * b);
}
// Formats whose planes all have one bit width and whose groups hold whole word pairs take the int8 path.
PLANEQ_HD constexpr int i8_min_group(int bits) { return 128 / bits; }

#if !defined(__CUDACC__)
// One plane of b-bit codes (R×C, natural order) → [tiles][supers][32 lanes][4b words] (the layout above).
inline std::vector<uint32_t> pack_plane(const std::vector<uint8_t>& codes, int64_t R, int64_t C, int b, int64_t tiles,
                                        int64_t supers) {
    const int64_t words = 4 * b;
    std::vector<uint32_t> out(size_t(tiles * supers * 32 * words), 0u);
    auto code = [&](int64_t r, int64_t c) -> uint32_t { return r < R && c < C ? codes[size_t(r * C + c)] : 0u; };
#pragma omp parallel for schedule(static)
    for (int64_t T = 0; T < tiles; ++T)
        for (int64_t S = 0; S < supers; ++S)
            for (int lane = 0; lane < 32; ++lane) {
                const int g = lane >> 2, t = lane & 3;
                uint32_t* dst = out.data() + ((T * supers + S) * 32 + lane) * words;
                for (int w = 0; w < words; ++w) {
                    uint32_t v = 0;
                    for (int q = 0; q < 32; q += b) {
                        const PlaneCell cell = plane_cell(b, w, q, t);
                        v |= code(T * 16 + g + 8 * cell.row_half, S * 256 + cell.col) << q;
                    }
                    dst[w] = v;
                }
            }
    return out;
}
#endif

}  // namespace planeq::cuda
