// The persistent decode stack (decode_stack.cu): a token's chain of batch-1 GEMVs as ONE kernel launch.
//
// Why: at batch 1 each GEMV is a ~5–15 µs kernel, and per launch the stream of weights stops while the blocks
// quantize the input, finish their loop and leave (a new kernel's blocks only start streaming as the old ones go).
// Measured (docs/cuda.md, eighth round): per-launch GEMVs reach 58.6% of copy bandwidth on int2, 66.5% of a chain of
// load-only kernels with the same 129 launches. Here every SM's block streams the weights of ALL steps through a
// shared-memory ring fed by bulk copies (TMA), independent of the activations, while its warps wait on a grid-wide
// barrier between dependent steps: HBM keeps streaming across the step boundaries.
//
// A step: up to 3 weights of one format, group and width reading one input x (or silu(x)·up), y_i = W_i x̂ / rms(x)
// (the RMS scale optional), x quantized as the bw GEMV quantizes it (hi/lo int8 halves per group, or int8 with
// DecodeOptions::bw_act8). Formats: int b=2 and bitplane k=2 at group 128, as the bw GEMV stores them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_gemv.hpp"

namespace planeq::cuda {

struct StackStep {
    const GpuWeight* w[3] = {nullptr, nullptr, nullptr};
    float* y[3] = {nullptr, nullptr, nullptr};
    int n = 0;
    const float* x = nullptr;   // the input [cols] (16-byte aligned)
    const float* up = nullptr;  // set: the input is silu(x) · up
    bool rms = false;           // y = W x̂ / sqrt(mean(x²) + eps)
    float eps = 1e-5f;
};

class PersistentStack {
public:
    // Empty string if `steps` can run as one persistent kernel on this device, else the reason it cannot.
    static std::string unsupported(const std::vector<StackStep>& steps);
    // Uploads the step table (fails with the reason where unsupported() names one). The activation mode
    // (DecodeOptions::bw_act8) is taken now and kept for the stack's life.
    explicit PersistentStack(const std::vector<StackStep>& steps);
    ~PersistentStack();
    PersistentStack(const PersistentStack&) = delete;
    PersistentStack& operator=(const PersistentStack&) = delete;

    // All steps in order, one launch on `s` (graph-capturable; launched with PDL like the GEMVs).
    void run(cudaStream_t s) const;
    int stages() const { return stages_; }  // ring stages a block holds
    int blocks() const;                       // blocks of a launch (one an SM)
    // One run with a time record per (step, block) (ns, globaltimer): [steps][blocks][kTraceFields] = the step's
    // start, grid barrier passed, input quantized, rows done.
    static constexpr int kTraceFields = 4;
    std::vector<uint64_t> run_traced(cudaStream_t s) const;

private:
    void launch(unsigned long long* trace, cudaStream_t s) const;
    void* table_ = nullptr;         // the device step table
    unsigned* counters_ = nullptr;  // [0]: steps done × blocks (the grid barrier), [1]: blocks finished (resets [0])
    int nsteps_ = 0, fmt_ = 0, stages_ = 0, max_cols_ = 0, skip_ = 0;
    bool a8_ = false;
};

}  // namespace planeq::cuda
