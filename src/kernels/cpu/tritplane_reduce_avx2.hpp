// tritplane_reduce16 (tritplane_kernels.hpp) for R rows at once, 8 at a time, from the 16 lane sums o[L][row]
// of an AVX2 block kernel; writes the rows of block rows [r0, r0 + R) that exist. Include from *_avx2.cpp only.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace planeq::cpu {

template <int R>
inline void tritplane_reduce16_store_avx2(const float (&o)[16][R], int64_t r0, int64_t rows, float* y) {
    static_assert(R % 8 == 0, "whole vectors of 8 rows");
    alignas(32) float r[R];
    for (int q = 0; q < R / 8; ++q) {
        __m256 v[8];
        for (int i = 0; i < 8; ++i) v[i] = _mm256_add_ps(_mm256_load_ps(o[i] + 8 * q), _mm256_load_ps(o[i + 8] + 8 * q));
        for (int i = 0; i < 4; ++i) v[i] = _mm256_add_ps(v[i], v[i + 4]);
        for (int i = 0; i < 2; ++i) v[i] = _mm256_add_ps(v[i], v[i + 2]);
        _mm256_store_ps(r + 8 * q, _mm256_add_ps(v[0], v[1]));
    }
    std::memcpy(y + r0, r, size_t(std::min<int64_t>(R, rows - r0)) * sizeof(float));
}

}  // namespace planeq::cpu
