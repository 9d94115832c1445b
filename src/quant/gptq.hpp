// GPTQ (and RTN, its compensation-free special case) exactly as /shared/methods/GPTQ.md: damping with
// retries, dead columns, lazy blocks, groups, column orders (none, GAR, static, dynamic act-order with
// g_idx), fp16 scales applied at once so the propagated error is the served error.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace planeq {

enum class ColumnOrder { None, Gar, Static, Dynamic };
ColumnOrder parse_column_order(const std::string& s);  // none|gar|static|dynamic
std::string column_order_name(ColumnOrder o);

struct GptqOptions {
    int bits = 4;
    int group = 128;
    bool sym = false;
    ColumnOrder order = ColumnOrder::Gar;
    double damp = 0.01;   // relative: λ = damp · mean(diag H)
    int block = 0;        // 0 = max(128, group)
    bool compensate = true;  // false = RTN (no error feedback)
    // Test hook: called after each lazy block with the block's working weights at block start, its
    // quantized weights and its scaled errors, all [position − i1][row] (permuted order), and U (C×C).
    std::function<void(int64_t i1, int64_t i2, const float* w_start, const float* q, const float* e, const float* U)> trace;
};

struct IntQuantResult {
    int64_t rows = 0, cols = 0;
    std::vector<uint8_t> codes;    // R×C, original column order
    std::vector<uint16_t> scales;  // R×(C/g), fp16 bits, original group order
    std::vector<uint8_t> zeros;    // R×(C/g)
    std::vector<int32_t> g_idx;    // C (dynamic order only)
    std::vector<float> dequant;    // R×C: the fake-quantized weights, = dequantize(stored) exactly
    double loss = 0;               // GPTQ proxy ½·Σ_t ‖e_t‖² (0 for RTN)
    double damp_used = 0;          // final relative damping
    std::vector<std::string> log;  // retries and other notes worth reporting
};

// W: R×C row-major f32. H: C×C row-major (symmetric, 2/N·XᵀX); may be null when !opt.compensate and the
// order needs no Hessian (RTN with order none). W is not modified.
IntQuantResult gptq_quantize(const float* W, int64_t rows, int64_t cols, const double* H, const GptqOptions& opt);

// The GPTQ column order for a Hessian diagonal: a permutation perm[t] = original column at position t.
std::vector<int64_t> column_permutation(const std::vector<double>& diag, int64_t group, ColumnOrder order);

// Upper Cholesky factor U of (H + λI)⁻¹ (f64), with GPTQ.md §5's retry policy. Returns the relative damping used.
double damped_inverse_cholesky(const double* H, int64_t n, double damp, std::vector<double>& U, std::vector<std::string>& log,
                               const std::string& what);

}  // namespace planeq
