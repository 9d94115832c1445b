// BPDQ — bit-plane decomposition quantization on a variable grid, exactly as /shared/methods/BPDQ.md:
// GAR order (forced), damping 0.05 (GPTQ.md's retry policy), U = upper Cholesky of (H + λI)⁻¹ in fp64,
// lazy blocks B = max(128, g); per group: 8-bit init of the planes from the top k bits of a per-row
// asymmetric code, whitened ridge least squares (α = 1e-4) for the k+1 coefficients against U_SS,
// n_iters column passes with GPTQ error propagation, refit and delta correction, the best iterate (by the
// group's ‖Enew‖_F²), then §4(e): coefficients rounded to bf16 and one more column pass with those levels,
// so the stored weight dequantizes bit-exactly to the Q whose error was propagated.
//
// Implementation notes (all exact reformulations, checked by tests/test_bpdq.cpp against the explicit
// spec formulas):
// - SolveC runs in fp64 through K = (U_SSᵀU_SS)⁻¹ (shared by all rows of a group): with X = [planes | 1],
//   X̃ᵀX̃ = XᵀKX and X̃ᵀỹ = XᵀKy, so the normal equations are sums of K·b_m and K·y over set bits. K·b_m is
//   kept per row and updated only where plane bits flip between iterations.
// - The score ‖Enew‖² = (y − Xc)ᵀK(y − Xc) comes from the same normal-equation quantities, so the
//   iterations need neither the delta correction δE nor the block tail: the §4(e) final pass recomputes
//   both from the snapshot anyway. The trace hook (tests) computes Eold, δE, Enew and the tail explicitly.
// - Rows are independent inside a group: the group runs as row chunks in parallel; only the choice of
//   the best iteration (Σ over rows) synchronizes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace planeq {

// One iteration of one group, for tests (BpdqOptions::trace). Arrays are [position in group][row]
// (positions in permuted order), rows = all rows of the layer.
struct BpdqTrace {
    int64_t g0 = 0;        // the group's first permuted position
    int64_t rows = 0, group = 0, tail = 0;  // tail = |T ∖ S| (columns after the group up to the block end)
    int iter = 0;          // 0 = initialization, 1 … n = iteration, −1 = the final pass (§4(e))
    const float* Wt = nullptr;     // [g][R] group target (working weights at the group's start)
    const float* U = nullptr;      // f32 U, C×C row-major (permuted): U_SS = U[g0 + a][g0 + b]
    int64_t C = 0;
    const uint8_t* codes = nullptr;  // [g][R] β of the iterate (iter 0: the initial planes)
    const double* coefs = nullptr;   // [R][k+1] the coefficients (c_0, c_1 … c_k); final: the levels' f32 values
    const double* scores = nullptr;  // [R] the per-row ‖E_r‖² (iter 0: of Q = X(B_init)c; final: null)
    // iter ≥ 1: the column pass (Qold, Eold) and after refit + delta correction (Qnew, Enew); tail_w the
    // block tail after the correction ([tail][R]). Final pass: Qold/Eold = Q/E, tail_w = the tail.
    const float *Qold = nullptr, *Eold = nullptr, *Qnew = nullptr, *Enew = nullptr, *tail_w = nullptr;
    int best_iter = 0;     // final only: the iterate chosen
    double best_score = 0; // final only: its group score
};

struct BpdqOptions {
    int bits = 2;        // planes k: 1 … 8 (the bitplane format stores 2 … 4)
    int group = 128;
    int iters = 10;      // 0: the spec's test-only mode (Q = X(B_init)c, no column pass)
    double damp = 0.05;  // relative: λ = damp · mean(diag H)
    double alpha = 1e-4; // ridge, absolute
    int block = 0;       // 0 = max(128, g)
    bool round_bf16 = true;       // §4(e); off: the final pass uses the fp64 coefficients rounded to f32
    bool frozen_uniform = false;  // test (§7.5): levels of GPTQ's k-bit grid of each group, one pass, no refit
    int64_t row_chunk = 64;       // rows per parallel task (the trace forces one chunk of all rows)
    std::function<void(const BpdqTrace&)> trace;
    // As GptqOptions::trace: after each block, its working weights at block start, Q and E ([pos][row]), U.
    std::function<void(int64_t i1, int64_t i2, const float* w_start, const float* q, const float* e, const float* U)> block_trace;
};

struct BpdqResult {
    int64_t rows = 0, cols = 0;
    int bits = 0, group = 0;
    std::vector<uint8_t> codes;       // R×C, original column order, β = Σ 2^(m−1) b_m
    std::vector<uint16_t> coefs;      // [R][G][k+1] bf16 bits (c_0 first), original group order (round_bf16)
    std::vector<float> coefs_f32;     // [R][G][k+1] the coefficients the final pass used
    std::vector<float> dequant;       // R×C: exactly what (codes, coefs) dequantize to
    std::vector<double> group_score;  // per permuted group: the chosen iterate's ‖Enew‖_F²
    std::vector<int> group_best_iter; // per permuted group
    double loss = 0;                  // ½ Σ ‖E‖² of the final passes
    double damp_used = 0;
    std::vector<std::string> log;
};

// W: R×C row-major f32, H: C×C (2/N XᵀX). W is not modified.
BpdqResult bpdq_quantize(const float* W, int64_t rows, int64_t cols, const double* H, const BpdqOptions& opt);

// SolveC of §4(b) the explicit way (fp64): whiten X = [planes | 1] and y with U_SSᵀ by forward
// substitution, then (X̃ᵀX̃ + αI)c = X̃ᵀỹ. Uss: g×g upper triangular row-major; codes[g] (β per column);
// y[g]; c[k+1] out as (c_0, c_1 … c_k). For tests of the fast path.
void bpdq_solve_c_whitened(const double* Uss, int64_t g, int k, const uint8_t* codes, const double* y, double alpha, double* c);

}  // namespace planeq
