// GPU quantization (PLANEQ_CUDA=ON; docs/cuda.md "GPU quantization"): the Hessian sum, GPTQ and BPDQ on the
// device with the CPU implementations' structure and arithmetic (quant/hessian.cpp, quant/gptq.cpp,
// quant/bpdq.cpp):
//   hessian_cuda.cu  the f32 sum Σ xᵀx by cuBLAS syrk (gemm with row weights), the f64 scaling kernel
//   factor_cuda.cu   step 0 shared by both methods: dead columns, the column order, the permuted transposed
//                    working copy, damping with GPTQ.md's retry policy, U by cuSOLVER (potrf, potri, potrf)
//                    in f64, and the lazy-block trailing GEMM
//   gptq_cuda.cu     the within-block column loop (one thread per row), the output in the CPU's layout
//   bpdq_cuda.cu     per group: K, K·y (cuBLAS f64), initialization + iterations (one thread per row),
//                    the best iterate, the final pass with bf16 coefficients
// Per row the column loops execute the CPU code's IEEE operations in the CPU code's order (no FMA
// contraction, IEEE division), so the only differences come from reassociation in the cuBLAS/cuSOLVER
// calls (the trailing GEMM, the Cholesky factors, K): a code may differ where the CPU and GPU inputs of a
// rounding decision straddle a tie (tests/test_cuda_quant.cpp gives the measured fractions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "quant/bpdq.hpp"
#include "quant/device.hpp"
#include "quant/gptq.hpp"

namespace planeq::cuda {

namespace detail {
void* device_alloc(size_t bytes);  // fails with a clear error (out of device memory ...)
void device_free(void* p);
void copy_to_device(void* d, const void* h, size_t bytes);
void copy_to_host(void* h, const void* d, size_t bytes);
}  // namespace detail

// A device allocation of n elements (cudaMalloc; move-only).
template <class T>
class DeviceArray {
public:
    DeviceArray() = default;
    explicit DeviceArray(size_t n) { resize(n); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        std::swap(p_, o.p_), std::swap(n_, o.n_);
        return *this;
    }
    ~DeviceArray() { release(); }
    void resize(size_t n) {
        if (n == n_) return;
        release();
        p_ = static_cast<T*>(detail::device_alloc(n * sizeof(T)));
        n_ = n;
    }
    T* data() { return p_; }
    const T* data() const { return p_; }
    size_t size() const { return n_; }
    void upload(const T* h, size_t n) { detail::copy_to_device(p_, h, n * sizeof(T)); }
    void download(T* h, size_t n) const { detail::copy_to_host(h, p_, n * sizeof(T)); }
    std::vector<T> download() const {
        std::vector<T> v(n_);
        download(v.data(), n_);
        return v;
    }

private:
    void release() {
        if (p_) detail::device_free(p_);
        p_ = nullptr, n_ = 0;
    }
    T* p_ = nullptr;
    size_t n_ = 0;
};

// The Hessian sum on the device: sum[i][j] += Σ_t x[t][i]·xw[t][j] (row-major upper triangle, f32), as
// HessianAccumulator's CPU GEMM. x, xw: device arrays [n][cols]; xw = null means x (cuBLAS syrk).
class GpuHessian {
public:
    explicit GpuHessian(int64_t cols);
    void add(const float* dx, const float* dxw, int64_t n);
    // H = (2/count)·sum mirrored to both triangles, f64 C×C on the device (HessianAccumulator::finalize).
    void finalize(double count, double* dH) const;
    std::vector<float> sum() const;
    int64_t cols() const { return cols_; }

private:
    int64_t cols_;
    DeviceArray<float> sum_;
};

// GPTQ and BPDQ with W (R×C row-major f32) and H (C×C f64) on the device; results on the host, exactly the
// CPU functions' result layout. The trace hooks of the options are not supported (rejected).
IntQuantResult gptq_quantize(const float* dW, int64_t rows, int64_t cols, const double* dH, const GptqOptions& opt);
BpdqResult bpdq_quantize(const float* dW, int64_t rows, int64_t cols, const double* dH, const BpdqOptions& opt);

// The QuantDevice of the pipeline (`quantize --device cuda`): host arrays uploaded per call.
std::unique_ptr<QuantDevice> make_quant_device();

// Random N(0, stddev²) values (counter-based hash + Box–Muller; deterministic per seed), for benchmarks.
void fill_normal(float* d, size_t n, uint64_t seed, float stddev);
void synchronize();

}  // namespace planeq::cuda
