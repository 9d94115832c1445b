// AVX-512 bitplane kernels (F/BW/VL/DQ/VNNI). See bitplane_kernels.hpp for the math and docs/formats.md
// for the design and the measurements.
//
// A 64-column plane word is one kmovq from memory away from a mask register whose bit i is column i, and
// the int8 activations are in natural order, so for the bit-serial GEMV
//     vmovdqu8 zmm{k}{z} (x̂q)  →  vpdpbusd (u8 ones · s8 selected)
// adds Σ_{b=1} xq over 64 columns into 16 int32 lanes (lanes 0-7: columns 0-31, lanes 8-15: 32-63).
// Per group the k plane sums are converted once and FMA'd with c_m·d_j (precomputed per row in f32).
#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers pass _mm*_undefined_*() as the masked-off source of unmasked
// operations, which -Wuninitialized reports.
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/bitplane_kernels.hpp"

namespace planeq::cpu {

namespace {

#define PLANEQ_AI inline __attribute__((always_inline))

PLANEQ_AI uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
PLANEQ_AI uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// bf16 → f32 of n (≤ 16) values.
PLANEQ_AI __m512 bf16x16(const uint16_t* p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
PLANEQ_AI __mmask16 first_n(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// Software prefetch distance per row stream, running on into the next rows (a row of 4096 columns at
// k = 2 is only 1 KB, too short for the hardware prefetchers). At 4096 × 14336, k = 2 (median of 3):
// 512 B 1380 µs, 2 KB 1130, 4 KB 873–923, 8 KB 899. See int_group_avx512.cpp for the reasoning.
constexpr int64_t kPrefetchBytes = 4096;

// ---- (b) int8 bit-serial --------------------------------------------------------------------------

template <int K, int NR>
struct RowState {
    const uint8_t* row[NR];
    const float* sc[NR];  // [ngroups·(K+1)]: float(c_m)·d_j at j·(K+1) + m
    __m512 acc[NR];
    __m512i ig[NR][K];    // the current group's plane sums
};

template <int K, int G, int NR>
void rows_int8(const BitplaneView& w, const BitplaneAct& a, int64_t r, float* y) {
    constexpr int64_t VB = 8 * K;  // bytes per 64-column vector of a row
    const int64_t ng = w.ngroups, rb = w.row_bytes(), n = ng * (K + 1);
    const int64_t nvec = (w.cols + 63) / 64;
    thread_local std::vector<float> scale_buf;
    const int64_t n16 = (n + 15) & ~int64_t(15);
    if (scale_buf.size() < size_t(NR * n16)) scale_buf.resize(size_t(NR * n16));
    RowState<K, NR> st;
    for (int t = 0; t < NR; ++t) {
        st.row[t] = w.planes + (r + t) * rb;
        const uint16_t* cf = w.coefs + (r + t) * n;
        float* sc = scale_buf.data() + t * n16;
        __m512 c0 = _mm512_setzero_ps();  // Σ_j c_0·d_j·Σxq_j, folded into the accumulator
        for (int64_t i = 0; i < n; i += 16) {
            const __mmask16 m = first_n(n - i);
            const __m512 s = _mm512_mul_ps(bf16x16(cf + i, m), _mm512_maskz_loadu_ps(m, a.drep + i));
            _mm512_storeu_ps(sc + i, s);
            c0 = _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(m, a.sxe + i), c0);
        }
        _mm_prefetch(reinterpret_cast<const char*>(cf + NR * n), _MM_HINT_T0);
        st.sc[t] = sc;
        st.acc[t] = c0;
        for (int m = 0; m < K; ++m) st.ig[t][m] = _mm512_setzero_si512();
    }
    const __m512i ones = _mm512_set1_epi8(1);
    const int64_t next_block = NR * rb;
    for (int64_t v = 0; v < nvec; ++v) {
        const __m512i xv = _mm512_loadu_si512(a.xq + 64 * v);
        const bool full = 64 * v + 64 <= w.cols;
        const int64_t off = VB * v, pf = off + kPrefetchBytes < rb ? off + kPrefetchBytes : next_block + off + kPrefetchBytes - rb;
        for (int t = 0; t < NR; ++t) {
            if (off % 64 < VB) _mm_prefetch(reinterpret_cast<const char*>(st.row[t] + pf), _MM_HINT_T0);
            for (int m = 0; m < K; ++m) {
                const __mmask64 mk = full ? _cvtu64_mask64(load_u64(st.row[t] + off + 8 * m))
                                          : _cvtu64_mask64(load_u32(st.row[t] + off + 4 * m));
                st.ig[t][m] = _mm512_dpbusd_epi32(st.ig[t][m], ones, _mm512_maskz_mov_epi8(mk, xv));
            }
        }
        if constexpr (G == 32) {  // two groups per vector: lanes 0-7 and 8-15
            const int64_t j0 = 2 * v, j1 = full ? j0 + 1 : j0;
            for (int t = 0; t < NR; ++t)
                for (int m = 0; m < K; ++m) {
                    const __m512 s = _mm512_mask_blend_ps(__mmask16(0xFF00), _mm512_set1_ps(st.sc[t][j0 * (K + 1) + m + 1]),
                                                          _mm512_set1_ps(st.sc[t][j1 * (K + 1) + m + 1]));
                    st.acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st.ig[t][m]), s, st.acc[t]);
                    st.ig[t][m] = _mm512_setzero_si512();
                }
        } else {
            constexpr int64_t VPG = G / 64;
            if ((v + 1) % VPG == 0) {
                const int64_t j = v / VPG;
                for (int t = 0; t < NR; ++t)
                    for (int m = 0; m < K; ++m) {
                        st.acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st.ig[t][m]), _mm512_set1_ps(st.sc[t][j * (K + 1) + m + 1]),
                                                    st.acc[t]);
                        st.ig[t][m] = _mm512_setzero_si512();
                    }
            }
        }
    }
    for (int t = 0; t < NR; ++t) y[r + t] = _mm512_reduce_add_ps(st.acc[t]);
}

constexpr int kRowsPerStep = 2;

template <int K, int G>
void run_int8(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    int64_t r = r0;
    for (; r + kRowsPerStep <= r1; r += kRowsPerStep) rows_int8<K, G, kRowsPerStep>(w, a, r, y);
    for (; r < r1; ++r) rows_int8<K, G, 1>(w, a, r, y);
}

template <int K>
void run_int8_g(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.group) {
        case 32: return run_int8<K, 32>(w, a, r0, r1, y);
        case 64: return run_int8<K, 64>(w, a, r0, r1, y);
        case 128: return run_int8<K, 128>(w, a, r0, r1, y);
        default: return run_int8<K, 256>(w, a, r0, r1, y);
    }
}

// ---- (c) f32 levels ------------------------------------------------------------------------------

// Lanes β whose bit m − 1 is set.
constexpr __mmask16 kLaneBit[4] = {0xAAAA, 0xCCCC, 0xF0F0, 0xFF00};

// The 2^k levels of a row-group in lanes 0 … 2^k − 1: bitplane_level's sequence of f32 adds, lane-wise.
template <int K>
PLANEQ_AI __m512 levels_of(const uint16_t* cf) {
    const __m512 c = bf16x16(cf, __mmask16((1u << (K + 1)) - 1));
    __m512 lev = _mm512_permutexvar_ps(_mm512_setzero_si512(), c);
    for (int m = 1; m <= K; ++m)
        lev = _mm512_mask_add_ps(lev, kLaneBit[m - 1], lev, _mm512_permutexvar_ps(_mm512_set1_epi32(m), c));
    return lev;
}

// Lane indices β of 16 columns from the planes' 16-bit masks.
template <int K>
PLANEQ_AI __m512i index_of(const uint64_t* masks, int shift) {
    __m512i idx = _mm512_setzero_si512();
    for (int m = 0; m < K; ++m)
        idx = _mm512_mask_or_epi32(idx, __mmask16(masks[m] >> shift), idx, _mm512_set1_epi32(1 << m));
    return idx;
}

template <int K, int NR>
void rows_levels(const BitplaneView& w, const BitplaneAct& a, int64_t r, float* y) {
    constexpr int64_t VB = 8 * K;
    const int64_t ng = w.ngroups, rb = w.row_bytes(), g = w.group;
    const int64_t nvec = (w.cols + 63) / 64;
    const uint8_t* row[NR];
    const uint16_t* cf[NR];
    __m512 acc[NR], lev[NR];
    for (int t = 0; t < NR; ++t) {
        row[t] = w.planes + (r + t) * rb;
        cf[t] = w.coefs + (r + t) * ng * (K + 1);
        acc[t] = _mm512_setzero_ps();
    }
    const int64_t next_block = NR * rb;
    int64_t jcur = -1;
    for (int64_t v = 0; v < nvec; ++v) {
        const bool full = 64 * v + 64 <= w.cols;
        const int64_t off = VB * v, pf = off + kPrefetchBytes < rb ? off + kPrefetchBytes : next_block + off + kPrefetchBytes - rb;
        uint64_t mk[NR][K];
        for (int t = 0; t < NR; ++t) {
            if (off % 64 < VB) _mm_prefetch(reinterpret_cast<const char*>(row[t] + pf), _MM_HINT_T0);
            for (int m = 0; m < K; ++m) mk[t][m] = full ? load_u64(row[t] + off + 8 * m) : load_u32(row[t] + off + 4 * m);
        }
        const int nq = full ? 4 : 2;
        for (int q = 0; q < nq; ++q) {
            const int64_t col = 64 * v + 16 * q, j = col / g;
            if (j != jcur) {
                for (int t = 0; t < NR; ++t) lev[t] = levels_of<K>(cf[t] + j * (K + 1));
                jcur = j;
            }
            const __m512 xv = _mm512_loadu_ps(a.xf + col);
            for (int t = 0; t < NR; ++t)
                acc[t] = _mm512_fmadd_ps(_mm512_permutexvar_ps(index_of<K>(mk[t], 16 * q), lev[t]), xv, acc[t]);
        }
    }
    for (int t = 0; t < NR; ++t) y[r + t] = _mm512_reduce_add_ps(acc[t]);
}

template <int K>
void run_levels(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    int64_t r = r0;
    for (; r + kRowsPerStep <= r1; r += kRowsPerStep) rows_levels<K, kRowsPerStep>(w, a, r, y);
    for (; r < r1; ++r) rows_levels<K, 1>(w, a, r, y);
}

// ---- (a) f32 subset-sum LUT ----------------------------------------------------------------------

// Per 64-column vector and plane: the 8 plane bytes index the 8 chunks' tables (one 8-lane gather);
// the group's plane sums accumulate lane-wise and are scaled by c_m at the group's end.
template <int K, int NR>
void rows_lut(const BitplaneView& w, const BitplaneAct& a, int64_t r, float* y) {
    constexpr int64_t VB = 8 * K;
    const int64_t ng = w.ngroups, rb = w.row_bytes(), g = w.group;
    const int64_t nvec = (w.cols + 63) / 64;
    const __m256i chunk_base = _mm256_setr_epi32(0, 256, 512, 768, 1024, 1280, 1536, 1792);
    const uint8_t* row[NR];
    const uint16_t* cf[NR];
    __m256 acc[NR], sm[NR][K];
    float c0[NR] = {};
    for (int t = 0; t < NR; ++t) {
        row[t] = w.planes + (r + t) * rb;
        cf[t] = w.coefs + (r + t) * ng * (K + 1);
        acc[t] = _mm256_setzero_ps();
        for (int m = 0; m < K; ++m) sm[t][m] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < ng; ++j)
        for (int t = 0; t < NR; ++t) {
            uint32_t u = uint32_t(cf[t][j * (K + 1)]) << 16;
            float f;
            std::memcpy(&f, &u, 4);
            c0[t] += f * a.xsum[j];
        }
    for (int64_t v = 0; v < nvec; ++v) {
        const bool full = 64 * v + 64 <= w.cols;
        const float* lut = a.lut + 64 * v / 8 * 256;
        const int64_t off = VB * v;
        for (int t = 0; t < NR; ++t)
            for (int m = 0; m < K; ++m) {
                const uint64_t bytes = full ? load_u64(row[t] + off + 8 * m) : load_u32(row[t] + off + 4 * m);
                const __m256i idx = _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(bytes))), chunk_base);
                sm[t][m] = _mm256_add_ps(sm[t][m], _mm256_i32gather_ps(lut, idx, 4));
            }
        // Group ends: g = 32 splits the vector (lanes 0-3, 4-7); else every g/64 vectors.
        if (g == 32) {
            const int64_t j0 = 2 * v, j1 = full ? j0 + 1 : j0;
            for (int t = 0; t < NR; ++t)
                for (int m = 0; m < K; ++m) {
                    uint32_t u0 = uint32_t(cf[t][j0 * (K + 1) + m + 1]) << 16, u1 = uint32_t(cf[t][j1 * (K + 1) + m + 1]) << 16;
                    float f0, f1;
                    std::memcpy(&f0, &u0, 4);
                    std::memcpy(&f1, &u1, 4);
                    const __m256 s = _mm256_blend_ps(_mm256_set1_ps(f0), _mm256_set1_ps(f1), 0xF0);
                    acc[t] = _mm256_fmadd_ps(sm[t][m], s, acc[t]);
                    sm[t][m] = _mm256_setzero_ps();
                }
        } else if ((64 * v + 64) % g == 0) {
            const int64_t j = 64 * v / g;
            for (int t = 0; t < NR; ++t)
                for (int m = 0; m < K; ++m) {
                    uint32_t u = uint32_t(cf[t][j * (K + 1) + m + 1]) << 16;
                    float f;
                    std::memcpy(&f, &u, 4);
                    acc[t] = _mm256_fmadd_ps(sm[t][m], _mm256_set1_ps(f), acc[t]);
                    sm[t][m] = _mm256_setzero_ps();
                }
        }
    }
    for (int t = 0; t < NR; ++t) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        y[r + t] = _mm_cvtss_f32(s) + c0[t];
    }
}

template <int K>
void run_lut(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    int64_t r = r0;
    for (; r + kRowsPerStep <= r1; r += kRowsPerStep) rows_lut<K, kRowsPerStep>(w, a, r, y);
    for (; r < r1; ++r) rows_lut<K, 1>(w, a, r, y);
}

// ---- block dequantization --------------------------------------------------------------------------

template <int K>
void dequant_block(const BitplaneView& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    const int64_t end = c0 + nc, g = w.group, ng = w.ngroups;
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = w.planes + r * w.row_bytes();
        const uint16_t* cf = w.coefs + r * ng * (K + 1);
        float* o = out + (r - r0) * nc - c0;  // o[c] for column c
        int64_t jcur = -1;
        __m512 lev = _mm512_setzero_ps();
        for (int64_t col = c0 & ~int64_t(15); col < end; col += 16) {
            const int64_t j = col / g;
            if (j != jcur) {
                lev = levels_of<K>(cf + j * (K + 1));
                jcur = j;
            }
            uint64_t mk[K];
            for (int m = 0; m < K; ++m) mk[m] = bitplane_mask(row, w.cols, K, col / 64, m + 1);
            const int64_t lo = std::max<int64_t>(0, c0 - col), hi = std::min<int64_t>(16, end - col);
            const __mmask16 keep = __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
            _mm512_mask_storeu_ps(o + col, keep, _mm512_permutexvar_ps(index_of<K>(mk, int(col % 64)), lev));
        }
    }
}

}  // namespace

void bitplane_gemv_rows_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.k) {
        case 2: return run_int8_g<2>(w, a, r0, r1, y);
        case 3: return run_int8_g<3>(w, a, r0, r1, y);
        default: return run_int8_g<4>(w, a, r0, r1, y);
    }
}

void bitplane_gemv_rows_levels_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.k) {
        case 2: return run_levels<2>(w, a, r0, r1, y);
        case 3: return run_levels<3>(w, a, r0, r1, y);
        default: return run_levels<4>(w, a, r0, r1, y);
    }
}

void bitplane_gemv_rows_lut_avx512(const BitplaneView& w, const BitplaneAct& a, int64_t r0, int64_t r1, float* y) {
    switch (w.k) {
        case 2: return run_lut<2>(w, a, r0, r1, y);
        case 3: return run_lut<3>(w, a, r0, r1, y);
        default: return run_lut<4>(w, a, r0, r1, y);
    }
}

void bitplane_build_lut_avx512(const float* x, int64_t cols, float* lut) {
    const int64_t nchunks = (cols + 63) / 64 * 8;  // whole 64-column vectors; chunks past cols are all-zero
    for (int64_t c = 0; c < nchunks; ++c) {
        float* T = lut + c * 256;
        float xs[8];
        for (int i = 0; i < 8; ++i) xs[i] = 8 * c + i < cols ? x[8 * c + i] : 0.0f;
        // T[b] = Σ_{bit i of b} x_i in increasing i: T[b + 2^i] = T[b] + x_i for b < 2^i.
        T[0] = 0.0f;
        for (int i = 0; i < 4; ++i)
            for (int b = 0; b < (1 << i); ++b) T[b + (1 << i)] = T[b] + xs[i];
        for (int i = 4; i < 8; ++i) {
            const __m512 xi = _mm512_set1_ps(xs[i]);
            for (int b = 0; b < (1 << i); b += 16) _mm512_storeu_ps(T + (1 << i) + b, _mm512_add_ps(_mm512_loadu_ps(T + b), xi));
        }
    }
}

void bitplane_dequant_block_avx512(const BitplaneView& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    switch (w.k) {
        case 2: return dequant_block<2>(w, r0, nr, c0, nc, out);
        case 3: return dequant_block<3>(w, r0, nr, c0, nc, out);
        default: return dequant_block<4>(w, r0, nr, c0, nc, out);
    }
}

}  // namespace planeq::cpu
