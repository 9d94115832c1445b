// Dense formats: f32, bf16, f16 — the checkpoint's own weights, one part "weight" [rows, cols].
#include <algorithm>

#include "core/cpu_features.hpp"
#include "core/half.hpp"
#include "core/parallel.hpp"
#include "core/scratch.hpp"
#include "formats/dense.hpp"
#include "kernels/cpu/dense_kernels.hpp"
#include "kernels/cpu/gemm_f32.hpp"

namespace planeq {

namespace {

template <DType D>
struct Dense {
    static std::string check(int64_t rows, int64_t cols, const FormatParams&) {
        return rows > 0 && cols > 0 ? "" : "empty weight";
    }
    static std::vector<PartSpec> layout(int64_t rows, int64_t cols, const FormatParams&) {
        return {PartSpec{"weight", D, {rows, cols}}};
    }
    static void dequantize_rows(const PackedWeight& w, int64_t r0, int64_t r1, float* out) {
        dense_to_f32(D, w.part("weight").data, size_t(r0 * w.cols), size_t((r1 - r0) * w.cols), out);
    }
    using Kernel = void (*)(const void*, int64_t, int64_t, int64_t, const float*, float*);
    static void gemv(const PackedWeight& w, const float* x, float* y) {
        const uint8_t* data = w.part("weight").data;
        const int64_t rows = w.rows, cols = w.cols;
        const SimdLevel level = simd_level();
        // Work-stealing row ranges (core/parallel.hpp): with a static split the lm_head's 128k rows waited for the
        // slower thread, ~3% of an 8B-shape decode token spent spinning on this shared machine.
        parallel_stream(rows, 32, [&](int64_t r0, int64_t r1) {
            if constexpr (D == DType::F32) {
                const auto* p = reinterpret_cast<const float*>(data);
                if (level == SimdLevel::Avx512) cpu::gemv_f32_avx512(p, r0, r1, cols, x, y);
                else if (level == SimdLevel::Avx2) cpu::gemv_f32_avx2(p, r0, r1, cols, x, y);
                else scalar_rows(w, r0, r1, x, y);
            } else if constexpr (D == DType::BF16) {
                const auto* p = reinterpret_cast<const uint16_t*>(data);
                if (level == SimdLevel::Avx512) cpu::gemv_bf16_avx512(p, r0, r1, cols, x, y);
                else if (level == SimdLevel::Avx2) cpu::gemv_bf16_avx2(p, r0, r1, cols, x, y);
                else scalar_rows(w, r0, r1, x, y);
            } else {
                const auto* p = reinterpret_cast<const uint16_t*>(data);
                if (level == SimdLevel::Avx512) cpu::gemv_f16_avx512(p, r0, r1, cols, x, y);
                else if (level == SimdLevel::Avx2) cpu::gemv_f16_avx2(p, r0, r1, cols, x, y);
                else scalar_rows(w, r0, r1, x, y);
            }
        });
    }
    static void scalar_rows(const PackedWeight& w, int64_t r0, int64_t r1, const float* x, float* y) {
        float* row = scratch_floats(size_t(w.cols), 5);
        for (int64_t r = r0; r < r1; ++r) {
            dequantize_rows(w, r, r + 1, row);
            float acc = 0;
            for (int64_t c = 0; c < w.cols; ++c) acc += row[c] * x[c];
            y[r] = acc;
        }
    }
    static void gemm(const PackedWeight& w, const float* x, int64_t n, float* y) {
        // The GEMM widens bf16/f16 to f32 while packing its panels: no dequantized copy of the weight.
        cpu::gemm_f32(n, w.rows, w.cols, x, w.cols, cpu::BOperand{w.part("weight").data, D, w.cols, true}, y, w.rows);
    }
};

template <DType D>
constexpr WeightFormat make_dense(std::string_view name, std::string_view summary) {
    return WeightFormat{name, summary, &Dense<D>::check, &Dense<D>::layout, &Dense<D>::dequantize_rows,
                        &Dense<D>::gemv, &Dense<D>::gemm, nullptr};
}

}  // namespace

void dense_to_f32(DType dtype, const uint8_t* data, size_t first, size_t n, float* out) {
    const SimdLevel level = simd_level();
    switch (dtype) {
        case DType::F32: std::copy_n(reinterpret_cast<const float*>(data) + first, n, out); return;
        case DType::BF16: {
            const auto* p = reinterpret_cast<const uint16_t*>(data) + first;
            if (level == SimdLevel::Avx512) cpu::bf16_to_f32_avx512(p, out, n);
            else if (level == SimdLevel::Avx2) cpu::bf16_to_f32_avx2(p, out, n);
            else for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
            return;
        }
        case DType::F16: {
            const auto* p = reinterpret_cast<const uint16_t*>(data) + first;
            if (level == SimdLevel::Avx512) cpu::f16_to_f32_avx512(p, out, n);
            else if (level == SimdLevel::Avx2) cpu::f16_to_f32_avx2(p, out, n);
            else for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
            return;
        }
        default: break;
    }
    // Callers check dtypes at load time; reaching here is a programming error.
    std::abort();
}

const WeightFormat kFormatF32 = make_dense<DType::F32>("f32", "dense float32");
const WeightFormat kFormatBF16 = make_dense<DType::BF16>("bf16", "dense bfloat16 (the usual checkpoint dtype)");
const WeightFormat kFormatF16 = make_dense<DType::F16>("f16", "dense IEEE float16");

const WeightFormat& dense_format_for(DType dtype) {
    switch (dtype) {
        case DType::F32: return kFormatF32;
        case DType::F16: return kFormatF16;
        default: return kFormatBF16;
    }
}

}  // namespace planeq
