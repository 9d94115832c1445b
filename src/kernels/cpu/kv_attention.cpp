#include "kernels/cpu/kv_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "kernels/cpu/vec_math.hpp"
#include "model/kv_quant.hpp"

namespace planeq::cpu {

namespace {

// Element i of slot j of a run, as f32.
inline float k_elem(const KvAttnParams& p, const KvRun& r, const void* base, const uint16_t* pbase, int64_t j, int64_t i) {
    switch (r.kind) {
        case KvStore::F32: return static_cast<const float*>(base)[j * r.stride + i];
        case KvStore::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[j * r.stride + i]);
        case KvStore::Quant: {
            const uint16_t* prm = pbase + j * r.pstride + 2 * (i / p.group);
            const int q = kvq::code_at(static_cast<const uint8_t*>(base) + j * r.stride, i, p.bits);
            return std::fma(f16_to_f32(prm[0]), float(q), f16_to_f32(prm[1]));
        }
    }
    return 0;
}

}  // namespace

void kv_scores_scalar(const KvAttnParams& p, const float* q, const KvRun& r, float* scores) {
    const int64_t half = p.head_dim / 2;
    for (int64_t j = 0; j < r.count; ++j) {
        // No tables: the keys are stored rotated (the full cache).
        const float* c = p.cos ? p.cos + (r.pos0 + j) * half : nullptr;
        const float* s = p.sin ? p.sin + (r.pos0 + j) * half : nullptr;
        float acc = 0;
        for (int64_t i = 0; i < half; ++i) {
            const float a = k_elem(p, r, r.k, r.kp, j, i), b = k_elem(p, r, r.k, r.kp, j, i + half);
            acc += c ? q[i] * (a * c[i] - b * s[i]) + q[i + half] * (b * c[i] + a * s[i]) : q[i] * a + q[i + half] * b;
        }
        scores[j] = acc * p.scale;
    }
}

void kv_values_scalar(const KvAttnParams& p, const float* probs, const KvRun& r, float* out) {
    for (int64_t j = 0; j < r.count; ++j)
        for (int64_t i = 0; i < p.head_dim; ++i) out[i] += probs[j] * k_elem(p, r, r.v, r.vp, j, i);
}

namespace {

struct KvKernels {
    void (*scores)(const KvAttnParams&, const float*, const KvRun&, float*);
    void (*values)(const KvAttnParams&, const float*, const KvRun&, float*);
};

KvKernels kernels_for(const KvAttnParams& p) {
    const SimdLevel level = simd_level();
    if (level == SimdLevel::Avx512 && kv_avx512_supports(p)) return {kv_scores_avx512, kv_values_avx512};
    if (level >= SimdLevel::Avx2 && kv_avx2_supports(p)) return {kv_scores_avx2, kv_values_avx2};
    return {kv_scores_scalar, kv_values_scalar};
}

}  // namespace

bool kv_vectorized(const KvAttnParams& p) { return kernels_for(p).scores != kv_scores_scalar; }

void kv_attend(const KvAttnParams& p, const float* q, const KvRun* runs, int nruns, float* scores, float* out) {
    const KvKernels k = kernels_for(p);
    int64_t total = 0;
    for (int r = 0; r < nruns; ++r) {
        k.scores(p, q, runs[r], scores + total);
        total += runs[r].count;
    }
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < total; ++j) mx = std::max(mx, scores[j]);
    const float inv = float(1.0 / exp_shift_sum(scores, total, mx));
    for (int64_t j = 0; j < total; ++j) scores[j] *= inv;
    std::fill(out, out + p.head_dim, 0.0f);
    total = 0;
    for (int r = 0; r < nruns; ++r) {
        k.values(p, scores + total, runs[r], out);
        total += runs[r].count;
    }
}

}  // namespace planeq::cpu
