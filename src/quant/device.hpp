// Where quantization runs (`planeq quantize --device cuda`): a QuantDevice accumulates the Hessians and runs
// GPTQ/BPDQ on an accelerator, with the CPU implementations' semantics (the output equals the CPU path's up
// to floating-point reassociation; docs/cuda.md "GPU quantization"). The CPU path needs no device: a null
// QuantDevice* everywhere means the CPU. The CUDA implementation lives in src/quant/cuda/ (PLANEQ_CUDA=ON).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "quant/bpdq.hpp"
#include "quant/gptq.hpp"

namespace planeq {

// The f32 sum Σ xᵀ·xw of HessianAccumulator, kept on the device (HessianAccumulator does the rest).
class DeviceHessianSum {
public:
    virtual ~DeviceHessianSum() = default;
    // sum[i][j] += Σ_t x[t][i]·xw[t][j] for i ≤ j (row-major upper triangle); xw = null means xw = x.
    virtual void add(const float* x, const float* xw, int64_t n) = 0;
    virtual std::vector<float> sum() const = 0;  // C×C, the upper triangle valid
};

class QuantDevice {
public:
    virtual ~QuantDevice() = default;
    virtual const char* name() const = 0;
    virtual std::unique_ptr<DeviceHessianSum> hessian_sum(int64_t cols) const = 0;
    // As gptq_quantize / bpdq_quantize (host arrays in and out); the trace hooks are not supported.
    virtual IntQuantResult gptq(const float* W, int64_t rows, int64_t cols, const double* H, const GptqOptions& opt) const = 0;
    virtual BpdqResult bpdq(const float* W, int64_t rows, int64_t cols, const double* H, const BpdqOptions& opt) const = 0;
};

}  // namespace planeq
