// The Hessian sum on the device (quant/hessian.cpp's f32 GEMM: Σ_t x_t x_tᵀ, upper triangle) and the
// QuantDevice the pipeline uses for `quantize --device cuda`.
#include <algorithm>

#include "quant/cuda/quant_common.cuh"

namespace planeq::cuda {

namespace {

// HessianAccumulator::finalize: h[i][j] = double(sum[min(i, j)][max(i, j)]) · scale.
__global__ void finalize_kernel(const float* sum, int64_t C, double scale, double* h) {
    const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, i = blockIdx.y;
    if (j >= C) return;
    h[i * C + j] = double(sum[(i < j ? i : j) * C + (i < j ? j : i)]) * scale;
}

}  // namespace

GpuHessian::GpuHessian(int64_t cols) : cols_(cols), sum_(size_t(cols * cols)) {
    QCK(cudaMemset(sum_.data(), 0, sum_.size() * sizeof(float)));
}

void GpuHessian::add(const float* dx, const float* dxw, int64_t n) {
    if (n <= 0) return;
    const int C = int(cols_);
    const float one = 1.0f;
    // Column-major, x [n][C] row-major is the C × n matrix X (ld C); the sum S = X·Xwᵀ. Our row-major upper
    // triangle (i ≤ j) is the column-major lower one.
    if (!dxw) {
        QCB(cublasSsyrk(quant::blas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, C, int(n), &one, dx, C, &one, sum_.data(), C));
    } else {  // row weights: the full product (S(j, i) = Σ_t x[t][j]·xw[t][i] lands at row-major [i][j])
        QCB(cublasSgemm(quant::blas(), CUBLAS_OP_N, CUBLAS_OP_T, C, C, int(n), &one, dx, C, dxw, C, &one, sum_.data(), C));
    }
}

void GpuHessian::finalize(double count, double* dH) const {
    const double scale = count > 0 ? 2.0 / count : 0.0;
    finalize_kernel<<<dim3(quant::blocks_for(cols_, 256), unsigned(cols_)), 256>>>(sum_.data(), cols_, scale, dH);
    quant::check_launch("hessian finalize");
}

std::vector<float> GpuHessian::sum() const { return sum_.download(); }

namespace {

class CudaHessianSum final : public DeviceHessianSum {
public:
    explicit CudaHessianSum(int64_t cols) : h_(cols) {}
    void add(const float* x, const float* xw, int64_t n) override {
        const size_t len = size_t(n * h_.cols());
        if (x_.size() < len) x_.resize(len);
        x_.upload(x, len);
        if (xw) {
            if (xw_.size() < len) xw_.resize(len);
            xw_.upload(xw, len);
        }
        h_.add(x_.data(), xw ? xw_.data() : nullptr, n);
    }
    std::vector<float> sum() const override { return h_.sum(); }

private:
    GpuHessian h_;
    DeviceArray<float> x_, xw_;
};

class CudaQuantDevice final : public QuantDevice {
public:
    const char* name() const override { return "cuda"; }
    std::unique_ptr<DeviceHessianSum> hessian_sum(int64_t cols) const override { return std::make_unique<CudaHessianSum>(cols); }
    IntQuantResult gptq(const float* W, int64_t R, int64_t C, const double* H, const GptqOptions& opt) const override {
        DeviceArray<float> dW(size_t(R * C));
        dW.upload(W, size_t(R * C));
        DeviceArray<double> dH(H ? size_t(C * C) : 0);
        if (H) dH.upload(H, size_t(C * C));
        return cuda::gptq_quantize(dW.data(), R, C, H ? dH.data() : nullptr, opt);
    }
    BpdqResult bpdq(const float* W, int64_t R, int64_t C, const double* H, const BpdqOptions& opt) const override {
        DeviceArray<float> dW(size_t(R * C));
        dW.upload(W, size_t(R * C));
        DeviceArray<double> dH(size_t(C * C));
        if (!H) fail("internal: BPDQ needs a Hessian");
        dH.upload(H, size_t(C * C));
        BpdqResult r = cuda::bpdq_quantize(dW.data(), R, C, dH.data(), opt);
        if (r.rows == 0) {  // a small system the GPU does not solve (see bpdq_cuda.cu): the CPU redoes the layer
            std::vector<std::string> why = std::move(r.log);
            r = planeq::bpdq_quantize(W, R, C, H, opt);
            r.log.insert(r.log.begin(), why.begin(), why.end());
        }
        return r;
    }
};

}  // namespace

std::unique_ptr<QuantDevice> make_quant_device() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) fail("--device cuda: no CUDA device is available");
    return std::make_unique<CudaQuantDevice>();
}

}  // namespace planeq::cuda
