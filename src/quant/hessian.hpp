// H = (2/N)·Σ xxᵀ over every calibration token x that enters a linear layer (GPTQ.md step 1). The sum
// is accumulated in f32 by the GEMM, tile-row by tile-row over the upper triangle only (H is symmetric).
// With a QuantDevice the f32 sum lives on the device (its GEMM); the scaling to f64 is the same code.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace planeq {

class QuantDevice;
class DeviceHessianSum;

class HessianAccumulator {
public:
    explicit HessianAccumulator(int64_t cols, const QuantDevice* device = nullptr);
    ~HessianAccumulator();
    // n rows of x (row-major [n × cols]); optional per-row weights (sink-aware calibration) scale xxᵀ.
    void add(const float* x, int64_t n, const float* row_weights = nullptr);
    int64_t cols() const { return cols_; }
    double tokens() const { return count_; }
    std::vector<double> finalize() const;  // C×C, symmetric, 2/N scaling
    float max_abs_input() const { return max_abs_; }

private:
    int64_t cols_;
    double count_ = 0;
    float max_abs_ = 0;
    std::vector<float> sum_;  // upper triangle valid (CPU)
    std::unique_ptr<DeviceHessianSum> dev_;  // the sum on the device instead
};

}  // namespace planeq
