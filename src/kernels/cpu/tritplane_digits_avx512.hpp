// The P5 digit decode by additions and compares, shared by the AVX-512 tritplane kernels (the superblock
// row kernel and the Cmp row-block decoder). Include only from *_avx512.cpp files.
#pragma once

#include <immintrin.h>

namespace planeq::cpu {

// u[k] = digit k ∈ {0, 1, 2} of each byte of m: m ← m + m + m (mod 256) for k > 0, then
// u = [m ≥ 86] + [m ≥ 171] — the spec's (3·m) >> 8 without a multiplication.
inline __attribute__((always_inline)) void p5_digits_cmp_avx512(__m512i m, __m512i* u) {
    const __m512i one = _mm512_set1_epi8(1), two = _mm512_set1_epi8(2);
    const __m512i t86 = _mm512_set1_epi8(char(86)), t171 = _mm512_set1_epi8(char(171));
#pragma GCC unroll 5
    for (int k = 0; k < 5; ++k) {
        if (k) m = _mm512_add_epi8(_mm512_add_epi8(m, m), m);
        const __mmask64 k1 = _mm512_cmpge_epu8_mask(m, t86), k2 = _mm512_cmpge_epu8_mask(m, t171);
        u[k] = _mm512_mask_mov_epi8(_mm512_maskz_mov_epi8(k1, one), k2, two);
    }
}

}  // namespace planeq::cpu
