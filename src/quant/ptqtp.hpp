// PTQTP (/shared/methods/PTQTP.md): every (row, group) of a weight becomes two ternary trit-planes and
// two fp16 scales, ŵ = α1·t1 + α2·t2, stored in the tritplane format (formats/tritplane.hpp).
//
//   ptqtp    data-free, exactly §4: residual-TWN init; alternating closed-form 2×2 scale step (exact
//            when cond ≤ 1e6, else adaptive ridge) and exhaustive 9-way topology step; stop at a fixed
//            point, a relative scale change < 1e-4·rms(w) or 50 iterations; canonical form; fp16 scales
//            (round-to-nearest-even from f64) and a final topology step against them. f64 throughout.
//            Implementation choice: the monotonicity guard is applied to every scale step, not only to
//            the ridge path (in f64 the exact solve can lose an ulp of err at a fixed point; the guard
//            then keeps α, which is what exact arithmetic would do). So err never increases, tolerance 0.
//            Implementation choice (not in the paper; `global_search`, on by default): the alternation is
//            a Lloyd-type descent and stops in poor local minima (on about half the groups of an exact
//            α1·T1 + α2·T2 matrix with α2/α1 ≠ 1/3; ~15% higher error on heavy-tailed weights). When it
//            has converged, one escape step searches the scales globally — the same alternation run on
//            the sorted |w| (prefix sums: O(log g) per step) from a grid of ratios α2/α1 — and, only if
//            the best scales found give a strictly lower err (with their optimal trits, checked on w),
//            jumps there and resumes the alternation. err still never increases; the result is never
//            worse than the plain alternation's.
//   ptqtp-h  (not in the paper; our research extension) the same representation fitted to the GPTQ
//            objective: GPTQ's lazy-block column loop (GPTQ.md §3, block = one group), each group
//            fitted to the compensated working weights w0 in the metric of U: start from the plain
//            PTQTP fit of w0, then alternate (a) a sequential pass over the group's columns that
//            picks each weight's nearest of the 9 levels and propagates the scaled error e = (w − q)/U_tt
//            to the group's later columns (GPTQ's rank-1 update) and (b) a refit of (α1, α2) for
//            those trits minimising ‖(w0 − S·α)·U_gg⁻¹‖² (= the GPTQ loss of the group, 2×2 least
//            squares, same safeguards); keep the best; canonical form; fp16 scales; a final pass with
//            the rounded scales gives the served trits and the error propagated to later groups.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/gptq.hpp"
#include "quant/method.hpp"

namespace planeq {

struct PtqtpOptions {
    int group = 128;
    int max_iter = 50;
    double eps = 1e-4;        // stop when max|α_new − α_old| < eps·rms(w)
    double kappa_max = 1e6;   // exact 2×2 solve up to this condition number, else ridge
    double lambda0 = 1e-8, lambda_max = 1.0;
    bool init_sign = false;   // replication option init=sign: t1 = t2 = sign(w), α = (1, 1)
    bool global_search = true; // the escape step from local minima (above); false: §4 exactly
};

// What happened in one group's fit (tests, diagnostics).
struct PtqtpGroupStats {
    int iterations = 0;           // scale+topology rounds run
    bool fixed_point = false;     // stopped because no trit changed
    int ridge_steps = 0;          // scale steps that used the ridge path
    int guard_rejections = 0;     // scale steps whose α_new was rejected by the monotonicity guard
    int escapes = 0;              // accepted escape steps of the global search (0 or 1)
    double err_twn = 0;           // err of the single-plane TWN fit of the initialization (α2 = 0, t2 = 0)
    std::vector<double> errs;     // if trace: err after init, then after every half-step
    bool trace = false;
};

// err(α, t1, t2) = Σ_i (w_i − (t1_i·a1 + t2_i·a2))² in f64 (the level computed exactly so, in index order).
double ptqtp_err(const double* w, int n, double a1, double a2, const int8_t* t1, const int8_t* t2);

// α = (A + λI)⁻¹ b for the symmetric A = [[a11, a12], [a12, a22]]: λ = 0 if cond(A) ≤ kappa_max, else the
// adaptive ridge (λ = lambda0, ×10 while cond(A + λI) > kappa_max and λ < lambda_max); α = 0 if A + λI is
// still singular. Returns whether the ridge ran.
bool ptqtp_solve2x2(double a11, double a12, double a22, double b1, double b2, const PtqtpOptions& o, double alpha[2]);

// The closed-form scale step (§4.2a) for fixed planes: α = argmin ‖w − S α‖² (exact when cond(SᵀS) ≤
// kappa_max; else the adaptive ridge; an all-zero plane's scale is 0). Returns true if the ridge path ran.
bool ptqtp_solve_scales(const double* w, int n, const int8_t* t1, const int8_t* t2, const PtqtpOptions& o, double alpha[2]);

// Steps 0–3 of §4 on one group of n weights: planes into t1, t2; canonical α (α1 ≥ α2 ≥ 0) into alpha.
void ptqtp_fit_group(const double* w, int n, const PtqtpOptions& o, double alpha[2], int8_t* t1, int8_t* t2,
                     PtqtpGroupStats* stats = nullptr);
// Step 3: α1, α2 ≥ 0 (negating a plane with its scale), α1 ≥ α2 (swapping the planes). ŵ is unchanged.
void ptqtp_canonicalize(int n, double& a1, double& a2, int8_t* t1, int8_t* t2);
// Step 3b (our choice; not in the paper). With canonical α the trits pick each weight's magnitude among
// α2 (pair ±(0,1)), α1 − α2 (±(1,−1)), α1 (±(1,0)), α1 + α2 (±(1,1)). When only two or three of the four
// are used, other scales give the same levels — magnitudes {x, 2x, 3x} are (α1, α2) = (2x, x) and (3x, x)
// — equal in real arithmetic but not once the scales are rounded to fp16 (an exact α1·T1 + α2·T2 with
// fp16 scales would be served inexactly). Every relabeling of the used magnitudes onto the four slots is
// tried (its scales by least squares on the used magnitudes, then canonical form); one is taken only if
// its err is not higher (f64) and its served err is strictly lower. Returns whether it relabeled
// (then err is the new err).
bool ptqtp_prefer_servable(const double* w, int n, double& a1, double& a2, int8_t* t1, int8_t* t2, double& err);
// Step 4: α (canonical) → fp16 bits (round-to-nearest-even from f64; |α| > 65504 is an error), then one
// topology step of t1, t2 against the rounded scales. Returns how many pairs the step changed.
int64_t ptqtp_serve_group(const double* w, int n, const double alpha[2], int8_t* t1, int8_t* t2, uint16_t scales_f16[2]);

// The global scale search of the escape step: canonical (α1 ≥ α2 ≥ 0) scales with the lowest err found
// over the ratio grid (each refined by the alternation on sorted |w|). Returns that err (computed from
// prefix sums, so only approximately the err on w); α = (0, 0) and 0 for an all-zero group.
double ptqtp_search_scales(const double* w, int n, const PtqtpOptions& o, double alpha[2]);

// The topology step (§4.2b), dispatched to the fastest SIMD level (all give identical results).
int64_t ptqtp_topology(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2);

// f64 → IEEE fp16 bits, round to nearest, ties to even (no detour through f32: no double rounding).
uint16_t f64_to_f16(double x);

struct TritplaneQuantResult {
    int64_t rows = 0, cols = 0;
    int group = 128;
    std::vector<int8_t> t1, t2;      // R×C
    std::vector<uint16_t> scales;    // R×2G fp16 bits, (α1, α2) per group
    std::vector<float> dequant;      // R×C: exactly what the packed weight dequantizes to
    double loss = 0;                 // ptqtp: Σ err over groups (fp16 scales); ptqtp-h: GPTQ proxy ½Σ‖e‖²
    double damp_used = 0;
    int64_t groups = 0, iterations = 0, capped = 0, ridge_steps = 0, guard_rejections = 0, escapes = 0;
    std::vector<std::string> log;
};

TritplaneQuantResult ptqtp_quantize(const float* W, int64_t rows, int64_t cols, const PtqtpOptions& o);

struct PtqtpHOptions {
    PtqtpOptions fit;                      // the per-group initial fit
    ColumnOrder order = ColumnOrder::Gar;  // none or gar (groups stay whole: no g_idx)
    double damp = 0.01;
    int alternations = 3;                  // (a)/(b) rounds in the U metric after the initial pass
};
TritplaneQuantResult ptqtp_h_quantize(const float* W, int64_t rows, int64_t cols, const double* H, const PtqtpHOptions& o);

extern const QuantMethod kMethodPtqtp, kMethodPtqtpH;

}  // namespace planeq
