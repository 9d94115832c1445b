// AVX-512 int-group kernels (F/BW/VL/VNNI/F16C). See int_group_kernels.hpp for the math and
// docs/formats.md for the design and the measurements.
//
// Unpacking: a full chunk's main plane is one 64-byte load, and each 64-column vector of it is one
// instruction away from 64 codes in natural column order, one per byte of a zmm:
//   4-bit (128 columns): columns 0-63 = raw AND 0x0F; columns 64-127 = the high nibbles, moved down by
//          vgf2p8affineqb (a per-byte bit matrix: shift and mask in one instruction).
//   2-bit (256 columns): columns 64k .. 64k + 63 = bits 2k, 2k+1 of every byte (AND for k = 0, else one
//          vgf2p8affineqb).
//   3-bit: the 2-bit plane as above, then the 64 high bits of the vector are a mask register (kmovq from
//          memory) and a masked byte add of 4.
// Activations are in natural order too, so vpdpbusd (u8 codes × s8 activations, 4 products per int32
// lane) lines up directly: lanes 0-7 hold columns 0-31 of the vector, lanes 8-15 columns 32-63.
// A narrower last chunk is unpacked to a buffer (int_group_unpack_chunk) and read 64 columns at a time.
#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers pass _mm*_undefined_*() as the masked-off source of unmasked
// operations (_mm512_reduce_add_ps, _mm512_shuffle_f32x4, ...), which -Wuninitialized reports.
#pragma GCC diagnostic ignored "-Wuninitialized"
// GFNI (vgf2p8affineqb) for field extraction; callers check the CPU has it (formats/int_group.cpp).
#pragma GCC target("gfni")

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/int_group_kernels.hpp"



namespace planeq::cpu {

namespace {

inline uint64_t load_u64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

#define PLANEQ_AI inline __attribute__((always_inline))

template <int B>
struct Chunk {
    static constexpr int VPC = B == 4 ? 2 : 4;        // 64-column vectors per full chunk
    static constexpr int64_t W = 64 * VPC;             // columns of a full chunk
    static constexpr int64_t BYTES = W * B / 8;        // 64 (2-, 4-bit) or 96 (3-bit)
};

// Codes of vector K (columns 64K .. 64K + 63) of a full chunk whose main plane (first 64 bytes) is `raw`.
template <int B, int K>
PLANEQ_AI __m512i extract(__m512i raw, const uint8_t* chunk) {
    if constexpr (B == 4) {
        if constexpr (K == 0) return _mm512_and_si512(raw, _mm512_set1_epi8(0x0F));
        return _mm512_gf2p8affine_epi64_epi8(raw, _mm512_set1_epi64(0x1020408000000000ll), 0);
    } else {
        const __m512i q = K == 0 ? _mm512_and_si512(raw, _mm512_set1_epi8(0x03))
                                 : _mm512_gf2p8affine_epi64_epi8(raw, _mm512_set1_epi64(int64_t((1ull << (2 * K)) << 56 | (1ull << (2 * K + 1)) << 48)), 0);
        if constexpr (B == 2) return q;
        const __mmask64 hi = _cvtu64_mask64(load_u64(chunk + 64 + 8 * K));  // bit i ↔ column 64K + i
        return _mm512_mask_add_epi8(q, hi, q, _mm512_set1_epi8(4));
    }
}

template <int B>
inline __m512i extract_rt(__m512i raw, const uint8_t* chunk, int k) {
    switch (k) {
        case 0: return extract<B, 0>(raw, chunk);
        case 1: return extract<B, 1>(raw, chunk);
        case 2: if constexpr (B != 4) return extract<B, 2>(raw, chunk); else return raw;
        default: if constexpr (B != 4) return extract<B, 3>(raw, chunk); else return raw;
    }
}

// Σ_j s_j · z_j · S_j over one row's groups, as a vector to subtract before the final reduction.
inline __m512 zero_term(const uint16_t* s, const uint8_t* z, const float* zsum, int64_t ng) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < ng; j += 16) {
        const __mmask16 m = ng - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (ng - j)) - 1);
        const __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + j));
        const __m512 zv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, z + j)));
        acc = _mm512_fmadd_ps(_mm512_mul_ps(sv, zv), _mm512_maskz_loadu_ps(m, zsum + j), acc);
    }
    return acc;
}

// Software prefetch distance, in chunks of one row (48 × 64 B = 3 KB ahead per row stream, ~6 KB per
// thread). A core keeps only a few dozen lines in flight; at ~16 GB/s per core and ~150 ns of memory
// latency in this VM that needs ≥ 2.4 KB requested ahead. Measured at 4096 × 14336 (median of 3):
// 8 chunks 1584/921 µs (int4/int2), 16: 1304/707, 24: 1240/739, 48: 1192/674, 96: 1410/835.
constexpr int64_t kPrefetchChunks = 48;

template <int NR>
struct RowState {
    const uint8_t* row[NR];
    const uint16_t* s[NR];
    const float* sc[NR];  // the rows' group scales in f32 (act-g: s_j · d_j), for broadcast loads
    __m512 acc[NR];
    __m512 fg[NR];   // act32: the current group's d-scaled dot
    __m512i ig[NR];  // act-g: the current group's integer dot
};

// Adds 64-column vector `vi` (codes q[t] of each row) to the rows' sums.
//   g = 32:    a vector holds two groups (lanes 0-7, 8-15): scale lanes by d and s, FMA.
//   act32:     dot · (lane d) accumulated per group in f32, times s at the group's end.
//   act-g:     dot accumulated per group in int32, times s·d_j at the group's end.
enum Mode { kAct32 = 0, kActG = 1, kF32 = 2 };

template <int G, int MODE, int NR>
PLANEQ_AI void vec_step(RowState<NR>& st, const IntGroupView& w, const Int8Act& a, int64_t vi, const __m512i* q) {
    if constexpr (MODE == kF32) {  // codes widened to f32, FMA with x; s at the group's end
        constexpr int64_t VPG = G / 64;
        const float* xs = a.xf + 64 * vi;
        const __m512 x0 = _mm512_loadu_ps(xs), x1 = _mm512_loadu_ps(xs + 16);
        const __m512 x2 = _mm512_loadu_ps(xs + 32), x3 = _mm512_loadu_ps(xs + 48);
        for (int t = 0; t < NR; ++t) {
            st.fg[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_castsi512_si128(q[t]))), x0, st.fg[t]);
            st.fg[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(q[t], 1))), x1, st.fg[t]);
            st.fg[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(q[t], 2))), x2, st.fg[t]);
            st.fg[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(q[t], 3))), x3, st.fg[t]);
        }
        if ((vi + 1) % VPG == 0) {
            const int64_t j = vi / VPG;
            for (int t = 0; t < NR; ++t) {
                st.acc[t] = _mm512_fmadd_ps(st.fg[t], _mm512_set1_ps(st.sc[t][j]), st.acc[t]);
                st.fg[t] = _mm512_setzero_ps();
            }
        }
        return;
    }
    const __m512i xv = _mm512_loadu_si512(a.xq + 64 * vi);
    if constexpr (G == 32) {
        const __m512 dv = _mm512_loadu_ps(a.dexp + 16 * vi);
        const bool pair = 64 * vi + 64 <= w.cols;  // else only the row's last group (cols % 64 == 32)
        const __m512i two = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        for (int t = 0; t < NR; ++t) {
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[t], xv);
            __m512 sv;
            if (pair) {
                const __m128 s2 = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(st.sc[t] + 2 * vi)));
                sv = _mm512_permutexvar_ps(two, _mm512_castps128_ps512(s2));
            } else {
                sv = _mm512_set1_ps(st.sc[t][2 * vi]);
            }
            st.acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dv, sv), st.acc[t]);
        }
    } else if constexpr (MODE == kAct32) {
        constexpr int64_t VPG = G / 64;
        const __m512 dv = _mm512_loadu_ps(a.dexp + 16 * vi);
        for (int t = 0; t < NR; ++t)
            st.fg[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), q[t], xv)), dv, st.fg[t]);
        if ((vi + 1) % VPG == 0) {
            const int64_t j = vi / VPG;
            for (int t = 0; t < NR; ++t) {
                st.acc[t] = _mm512_fmadd_ps(st.fg[t], _mm512_set1_ps(st.sc[t][j]), st.acc[t]);
                st.fg[t] = _mm512_setzero_ps();
            }
        }
    } else {
        constexpr int64_t VPG = G / 64;
        for (int t = 0; t < NR; ++t) st.ig[t] = _mm512_dpbusd_epi32(st.ig[t], q[t], xv);
        if ((vi + 1) % VPG == 0) {
            const int64_t j = vi / VPG;
            for (int t = 0; t < NR; ++t) {
                st.acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(st.ig[t]), _mm512_set1_ps(st.sc[t][j]), st.acc[t]);
                st.ig[t] = _mm512_setzero_si512();
            }
        }
    }
}

template <int B, int G, int MODE, int NR, int K>
PLANEQ_AI void chunk_vec(RowState<NR>& st, const IntGroupView& w, const Int8Act& a, int64_t c, const __m512i* raw) {
    __m512i q[NR];
    for (int t = 0; t < NR; ++t) q[t] = extract<B, K>(raw[t], st.row[t] + c * Chunk<B>::BYTES);
    vec_step<G, MODE, NR>(st, w, a, c * Chunk<B>::VPC + K, q);
}

// NR rows starting at r.
template <int B, int G, int MODE, int NR>
void rows_kernel(const IntGroupView& w, const Int8Act& a, int64_t r, float* y) {
    using C = Chunk<B>;
    const int64_t ng = w.ngroups, rb = w.row_bytes();
    const int64_t nfull = w.cols / C::W, tail = w.cols % C::W;
    RowState<NR> st;
    thread_local std::vector<float> scale_buf;
    const int64_t ng16 = (ng + 15) & ~int64_t(15);
    if (scale_buf.size() < size_t(NR * ng16)) scale_buf.resize(size_t(NR * ng16));
    for (int t = 0; t < NR; ++t) {
        st.row[t] = w.qweight + (r + t) * rb;
        st.s[t] = w.scales + (r + t) * ng;
        float* sc = scale_buf.data() + t * ng16;
        for (int64_t j = 0; j < ng; j += 16) {
            const __mmask16 m = ng - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (ng - j)) - 1);
            __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, st.s[t] + j));
            if constexpr (MODE == kActG && G != 32) sv = _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(m, a.d + j));
            _mm512_storeu_ps(sc + j, sv);
        }
        st.sc[t] = sc;
        st.acc[t] = st.fg[t] = _mm512_setzero_ps();
        st.ig[t] = _mm512_setzero_si512();
    }
    // Software prefetch kPrefetchChunks ahead in every row, running on into the next block of NR rows
    // (a row of 4096 4-bit codes is only 2 KB: too short a stream for the hardware prefetchers to ramp up).
    const int64_t next_block = NR * rb;
    for (int64_t c = 0; c < nfull; ++c) {
        __m512i raw[NR];
        const int64_t pc = c + kPrefetchChunks;
        const int64_t pf = pc < nfull ? pc * C::BYTES : next_block + (pc - nfull) * C::BYTES;
        for (int t = 0; t < NR; ++t) {
            if constexpr (kPrefetchChunks > 0) {
                _mm_prefetch(reinterpret_cast<const char*>(st.row[t] + pf), _MM_HINT_T0);
                if constexpr (C::BYTES > 64) _mm_prefetch(reinterpret_cast<const char*>(st.row[t] + pf + 64), _MM_HINT_T0);
            }
            raw[t] = _mm512_loadu_si512(st.row[t] + c * C::BYTES);
        }
        chunk_vec<B, G, MODE, NR, 0>(st, w, a, c, raw);
        chunk_vec<B, G, MODE, NR, 1>(st, w, a, c, raw);
        if constexpr (C::VPC == 4) {
            chunk_vec<B, G, MODE, NR, 2>(st, w, a, c, raw);
            chunk_vec<B, G, MODE, NR, 3>(st, w, a, c, raw);
        }
    }
    if (tail) {  // a narrower last chunk: unpack to natural order, then 64 columns at a time
        alignas(64) uint8_t buf[NR][256];
        for (int t = 0; t < NR; ++t) {
            _mm512_store_si512(buf[t] + (tail & ~int64_t(63)), _mm512_setzero_si512());
            int_group_unpack_chunk(st.row[t] + nfull * C::BYTES, B, tail, buf[t]);
        }
        for (int64_t m = 0; m * 64 < tail; ++m) {
            __m512i q[NR];
            for (int t = 0; t < NR; ++t) q[t] = _mm512_load_si512(buf[t] + 64 * m);
            vec_step<G, MODE, NR>(st, w, a, nfull * C::VPC + m, q);
        }
    }
    for (int t = 0; t < NR; ++t) {
        const __m512 zt = zero_term(st.s[t], w.zeros + (r + t) * ng, a.zsum, ng);
        y[r + t] = hsum(_mm512_sub_ps(st.acc[t], zt));
    }
}

constexpr int kRowsPerStep = 4;

template <int B, int G, int MODE>
void run_rows(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    int64_t r = r0;
    for (; r + kRowsPerStep <= r1; r += kRowsPerStep) rows_kernel<B, G, MODE, kRowsPerStep>(w, a, r, y);
    for (; r < r1; ++r) rows_kernel<B, G, MODE, 1>(w, a, r, y);
}

template <int B, int MODE>
void run_rows_g(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    switch (w.group) {
        case 32: return run_rows<B, 32, kAct32>(w, a, r0, r1, y);  // (F32 needs g ≥ 64; callers check)
        case 64: return run_rows<B, 64, MODE>(w, a, r0, r1, y);
        case 128: return run_rows<B, 128, MODE>(w, a, r0, r1, y);
        default: return run_rows<B, 256, MODE>(w, a, r0, r1, y);
    }
}

}  // namespace

void int_group_quantize_act_avx512(const float* x, int64_t cols, int block, int8_t* xq, float* d, int32_t* sx) {
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int64_t k = 0; k * block < cols; ++k) {
        const float* xb = x + k * block;
        __m512 mx = _mm512_setzero_ps();
        for (int i = 0; i < block; i += 16) mx = _mm512_max_ps(mx, _mm512_and_ps(_mm512_loadu_ps(xb + i), abs_mask));
        const float amax = _mm512_reduce_max_ps(mx);
        const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        __m512i sum = _mm512_setzero_si512();
        for (int i = 0; i < block; i += 16) {
            __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), idv));  // round half to even
            v = _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
            sum = _mm512_add_epi32(sum, v);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + k * block + i), _mm512_cvtepi32_epi8(v));
        }
        d[k] = amax / 127.0f;
        sx[k] = _mm512_reduce_add_epi32(sum);
    }
}

void int_group_gemv_rows_avx512(const IntGroupView& w, const Int8Act& a, int64_t r0, int64_t r1, float* y) {
    const bool act32 = a.block == 32;
    switch (w.bits) {
        case 2: return act32 ? run_rows_g<2, kAct32>(w, a, r0, r1, y) : run_rows_g<2, kActG>(w, a, r0, r1, y);
        case 3: return act32 ? run_rows_g<3, kAct32>(w, a, r0, r1, y) : run_rows_g<3, kActG>(w, a, r0, r1, y);
        default: return act32 ? run_rows_g<4, kAct32>(w, a, r0, r1, y) : run_rows_g<4, kActG>(w, a, r0, r1, y);
    }
}

void int_group_gemv_rows_f32_avx512(const IntGroupView& w, const float* x, const float* xsum, int64_t r0,
                                    int64_t r1, float* y) {
    Int8Act a;
    a.xf = x;
    a.zsum = xsum;
    switch (w.bits) {
        case 2: return run_rows_g<2, kF32>(w, a, r0, r1, y);
        case 3: return run_rows_g<3, kF32>(w, a, r0, r1, y);
        default: return run_rows_g<4, kF32>(w, a, r0, r1, y);
    }
}

// ---- block dequantization (prefill GEMM) ---------------------------------------------------------

namespace {

template <int B>
void dequant_block(const IntGroupView& w, const int32_t* g_idx, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                   float* out) {
    using C = Chunk<B>;
    const int64_t ng = w.ngroups, rb = w.row_bytes(), end = c0 + nc;
    const int64_t nfull = w.cols / C::W, tail = w.cols % C::W;
    std::vector<float> sf;      // g_idx: one row's scales as f32, for gathers
    std::vector<int32_t> zi;    // and its zero points as int32
    if (g_idx) {
        sf.resize(size_t(ng));
        zi.resize(size_t(ng));
    }
    alignas(64) uint8_t buf[256];
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = w.qweight + r * rb;
        const uint16_t* s = w.scales + r * ng;
        const uint8_t* z = w.zeros + r * ng;
        float* o = out + (r - r0) * nc - c0;  // o[c] for column c
        if (g_idx)
            for (int64_t j = 0; j < ng; ++j) {
                sf[size_t(j)] = half_to_float(s[j]);
                zi[size_t(j)] = z[j];
            }
        bool tail_ready = false;
        for (int64_t vi = c0 / 64; vi * 64 < end; ++vi) {
            const int64_t chunk = vi / C::VPC;
            __m512i q;
            if (chunk < nfull) {
                const uint8_t* p = row + chunk * C::BYTES;
                q = extract_rt<B>(_mm512_loadu_si512(p), p, int(vi % C::VPC));
            } else {
                if (!tail_ready) {
                    int_group_unpack_chunk(row + nfull * C::BYTES, B, tail, buf);
                    tail_ready = true;
                }
                q = _mm512_loadu_si512(buf + 64 * (vi - nfull * C::VPC));  // past the tail: unused lanes
            }
            for (int p = 0; p < 4; ++p) {
                const int64_t col = 64 * vi + 16 * p;
                if (col >= end || col >= w.cols || col + 16 <= c0) continue;
                const int64_t lo = std::max<int64_t>(0, c0 - col), hi = std::min<int64_t>(16, end - col);
                const __mmask16 m = __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
                const __m128i q16 = p == 0 ? _mm512_castsi512_si128(q)
                                  : p == 1 ? _mm512_extracti32x4_epi32(q, 1)
                                  : p == 2 ? _mm512_extracti32x4_epi32(q, 2)
                                           : _mm512_extracti32x4_epi32(q, 3);
                const __m512i codes = _mm512_cvtepu8_epi32(q16);
                __m512 sv;
                __m512i zv;
                if (g_idx) {
                    const __m512i gi = _mm512_loadu_si512(g_idx + col);
                    sv = _mm512_i32gather_ps(gi, sf.data(), 4);
                    zv = _mm512_i32gather_epi32(gi, zi.data(), 4);
                } else {
                    const int64_t j = col / w.group;
                    sv = _mm512_set1_ps(half_to_float(s[j]));
                    zv = _mm512_set1_epi32(z[j]);
                }
                // ŵ = float(s) · float(q − z): the same two IEEE operations as the reference.
                _mm512_mask_storeu_ps(o + col, m, _mm512_mul_ps(sv, _mm512_cvtepi32_ps(_mm512_sub_epi32(codes, zv))));
            }
        }
    }
}

}  // namespace

void int_group_dequant_block_avx512(const IntGroupView& w, const int32_t* g_idx, int64_t r0, int64_t nr, int64_t c0,
                                    int64_t nc, float* out) {
    switch (w.bits) {
        case 2: return dequant_block<2>(w, g_idx, r0, nr, c0, nc, out);
        case 3: return dequant_block<3>(w, g_idx, r0, nr, c0, nc, out);
        default: return dequant_block<4>(w, g_idx, r0, nr, c0, nc, out);
    }
}

}  // namespace planeq::cpu
