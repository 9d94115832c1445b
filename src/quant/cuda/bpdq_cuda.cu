// BPDQ on the device, the structure of quant/bpdq.cpp (BPDQ.md §4): step 0 (factor_cuda.cu, GAR forced);
// per layer K = (U_SSᵀU_SS)⁻¹, K·1 and 1ᵀK1 of every group; per group the K·y of every row (cuBLAS f64),
// phase A (the 8-bit initialization, SolveC through K with K·b_m kept up to date where plane bits flip, and
// the iterations: levels, column pass, refit, score), the best iterate (Σ over rows in row order), phase B
// (§4(e): bf16 coefficients, one column pass over the group and the block tail); the lazy-block trailing
// GEMM. Phases A and B run one thread per row with the CPU's operations in the CPU's order.
//
// Not on the GPU: the trace hooks, the test-only iters = 0 mode, and the eigen-decomposition fallback of a
// (k+1)×(k+1) system whose Cholesky fails (never seen with α > 0): the result then comes back with rows = 0
// and a log line, and the QuantDevice redoes that layer on the CPU.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/half.hpp"
#include "quant/cuda/quant_common.cuh"

namespace planeq::cuda {

namespace {

using namespace quant;

constexpr int kMaxK = 8;
constexpr int kMaxWords = 4;  // g ≤ 256

// ---- per layer: K of every group ----

// U_SS⁻¹ (upper) column by column, thread j = column j (quant/bpdq.cpp's loop, the same order).
__global__ void ss_inverse_kernel(const double* Ud, int64_t C, int g, double* Ui) {
    const int64_t p = blockIdx.x;
    const int j = threadIdx.x;
    const double* Us = Ud + p * g * C + p * g;
    double* ui = Ui + p * g * g;
    ui[j * g + j] = 1.0 / Us[j * C + j];
    for (int i = j - 1; i >= 0; --i) {
        double s = 0;
        for (int m = i + 1; m <= j; ++m) s += Us[i * C + m] * ui[m * g + j];
        ui[i * g + j] = -s / Us[i * C + i];
    }
}

// K exactly symmetric (the upper triangle copied down), then K·1 and 1ᵀK1 in the CPU's summation order.
__global__ void k_sums_kernel(double* K, int g, double* k1, double* s11) {
    const int64_t p = blockIdx.x;
    const int i = threadIdx.x;
    double* Kp = K + p * g * g;
    for (int j = 0; j < i; ++j) Kp[i * g + j] = Kp[j * g + i];
    __syncthreads();
    double s = 0;
    for (int j = 0; j < g; ++j) s += Kp[i * g + j];
    k1[p * g + i] = s;
    __syncthreads();
    if (i == 0) {
        double t = 0;
        for (int m = 0; m < g; ++m) t += k1[p * g + m];
        s11[p] = t;
    }
}

__global__ void to_f64_kernel(const float* a, size_t n, double* out) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) out[i] = double(a[i]);
}

// ---- one row's state (quant/bpdq.cpp Solver / RowState) ----

struct GroupArgs {
    float* Wt;  // [C][R]
    int64_t R, C, g0, i1, ncols;
    int g, k, nb, iters, nw;
    double alpha;
    const float* U;    // [C][C] f32
    const double* K;   // the group's [g][g]
    const double* k1;  // [g]
    const double* s11;
    const double* KYt;  // [g][R]
    double* Kb;         // [k][g][R]
    uint8_t* beta;      // [g][R]
    double* chist;      // [R][iters + 1][k + 1]
    double* shist;      // [R][iters + 1]
    int* err;           // first error: code (1 singular system, 2 non-finite c), row, group position, iteration
    int64_t p;          // the group's permuted index
    // phase B
    const int* best_it;
    bool round_bf16, frozen;
    float* cfin;      // [G][R][k+1]
    uint8_t* codes;   // [C][R]
    float* qt;        // [C][R]
    float* negerr;    // [B][R]
    double* loss;     // [R]
    float* Wp_global; // [ncols][R] when the tile does not fit shared memory
};

__device__ void report_error(const GroupArgs& a, int code, int64_t r, int it, int m) {
    if (atomicCAS(a.err, 0, code) == 0) a.err[1] = int(r), a.err[2] = int(a.p), a.err[3] = it, a.err[4] = m;
}

__device__ __forceinline__ double sum_bits(const uint64_t* bits, int nw, const double* v, int64_t stride) {
    double s = 0;
    for (int w = 0; w < nw; ++w)
        for (uint64_t x = bits[w]; x; x &= x - 1) s += v[(64 * w + __ffsll((long long)x) - 1) * stride];
    return s;
}

// (A + αI) c = rhs, n ≤ 9, Cholesky (quant/bpdq.cpp solve_small without its fallback): false if it fails.
__device__ bool solve_small(const double* A, const double* rhs, int n, double alpha, double* c) {
    double L[(kMaxK + 1) * (kMaxK + 1)];
    for (int i = 0; i < n; ++i)
        for (int j = 0; j <= i; ++j) {
            double s = A[i * n + j] + (i == j ? alpha : 0.0);
            for (int q = 0; q < j; ++q) s -= L[i * n + q] * L[j * n + q];
            if (i == j) {
                if (!(s > 0.0)) return false;
                L[i * n + i] = sqrt(s);
            } else {
                L[i * n + j] = s / L[j * n + j];
            }
        }
    double z[kMaxK + 1];
    for (int i = 0; i < n; ++i) {
        double s = rhs[i];
        for (int q = 0; q < i; ++q) s -= L[i * n + q] * z[q];
        z[i] = s / L[i * n + i];
    }
    for (int i = n - 1; i >= 0; --i) {
        double s = z[i];
        for (int q = i + 1; q < n; ++q) s -= L[q * n + i] * c[q];
        c[i] = s / L[i * n + i];
    }
    return true;
}

struct RowSolver {
    const GroupArgs& a;
    int64_t r;
    uint64_t bits[kMaxK][kMaxWords];

    __device__ double& kb(int m, int j) const { return a.Kb[(int64_t(m) * a.g + j) * a.R + r]; }
    __device__ void reset() {
        for (int m = 0; m < a.k; ++m) {
            for (int w = 0; w < kMaxWords; ++w) bits[m][w] = 0;
            for (int j = 0; j < a.g; ++j) kb(m, j) = 0.0;
        }
    }
    // New planes from β = beta[t][r]; K·b_m updated where bits flipped (Solver::set_planes).
    __device__ void set_planes() {
        for (int m = 0; m < a.k; ++m) {
            uint64_t nb[kMaxWords] = {0, 0, 0, 0};
            for (int t = 0; t < a.g; ++t) nb[t / 64] |= uint64_t((a.beta[int64_t(t) * a.R + r] >> m) & 1u) << (t % 64);
            for (int w = 0; w < a.nw; ++w) {
                for (uint64_t x = nb[w] ^ bits[m][w]; x; x &= x - 1) {
                    const int i = 64 * w + __ffsll((long long)x) - 1;
                    const bool add = (nb[w] >> (i % 64)) & 1u;
                    const double* krow = a.K + int64_t(i) * a.g;
                    if (add)
                        for (int j = 0; j < a.g; ++j) kb(m, j) += krow[j];
                    else
                        for (int j = 0; j < a.g; ++j) kb(m, j) -= krow[j];
                }
                bits[m][w] = nb[w];
            }
        }
    }
    // Solver::solve: c minimizing ‖(y − Xc)ᵀU_SS⁻¹‖² + α‖c‖²; returns the first term (or NaN on failure).
    __device__ double solve(double yKy, double* c) const {
        const int n = a.k + 1, k = a.k;
        double A[(kMaxK + 1) * (kMaxK + 1)], rhs[kMaxK + 1];
        const double* Ky = a.KYt + r;
        A[0] = *a.s11;
        rhs[0] = 0;
        for (int i = 0; i < a.g; ++i) rhs[0] += Ky[int64_t(i) * a.R];
        for (int m = 1; m <= k; ++m) {
            const uint64_t* bm = bits[m - 1];
            A[m] = A[m * n] = sum_bits(bm, a.nw, a.k1, 1);
            rhs[m] = sum_bits(bm, a.nw, Ky, a.R);
            for (int q = m; q <= k; ++q) A[m * n + q] = A[q * n + m] = sum_bits(bm, a.nw, &a.Kb[int64_t(q - 1) * a.g * a.R + r], a.R);
        }
        if (!solve_small(A, rhs, n, a.alpha, c)) {
            for (int i = 0; i < n; ++i) c[i] = 0.0;
            return nan("");
        }
        double s = yKy;
        for (int i = 0; i < n; ++i) {
            s -= 2.0 * c[i] * rhs[i];
            for (int j = 0; j < n; ++j) s += c[i] * A[i * n + j] * c[j];
        }
        return s;
    }
};

// Levels V[β] = bitplane_level(cf, k, β) (formats/bitplane.hpp: c_0, then + c_m for set bits, m ascending).
__device__ void build_levels(const float* cf, int k, int nb, float* V) {
    for (int b = 0; b < nb; ++b) {
        float v = cf[0];
        for (int m = 1; m <= k; ++m)
            if ((b >> (m - 1)) & 1) v = __fadd_rn(v, cf[m]);
        V[b] = v;
    }
}

// The column pass (§4(c), quant/bpdq.cpp column_pass) of one row over positions 0 … g − 1 of the tile w
// (stride ws), updating positions < nupd; out(t, β, q, e) receives each column's result.
template <class Out>
__device__ void column_pass(float* w, int64_t ws, int g, int64_t nupd, const float* V, int nb, const float* U, int64_t ldu, Out out) {
    for (int t = 0; t < g; ++t) {
        const float y = w[t * ws];
        float d = __fsub_rn(y, V[0]);
        float best = __fmul_rn(d, d), qv = V[0];
        int idx = 0;
        for (int b = 1; b < nb; ++b) {  // nearest level, ties toward the lowest β
            d = __fsub_rn(y, V[b]);
            const float d2 = __fmul_rn(d, d);
            if (d2 < best) best = d2, idx = b, qv = V[b];
        }
        const float ev = __fdiv_rn(__fsub_rn(y, qv), U[t * ldu + t]);  // "Eq. (3)"
        out(t, idx, qv, ev);
        const float* urow = U + t * ldu;
        for (int64_t j = t + 1; j < nupd; ++j) w[j * ws] = __fsub_rn(w[j * ws], __fmul_rn(ev, urow[j]));  // "Eq. (4)"
    }
}

// Phase A: the initialization and the iterations of every row (their c and score histories).
__global__ void __launch_bounds__(kRowsPerBlock) phase_a_kernel(GroupArgs a) {
    extern __shared__ float tile[];
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= a.R) return;
    const int64_t R = a.R, stride = int64_t(a.iters + 1) * (a.k + 1);
    const float* W0 = a.Wt + a.g0 * R + r;  // W0[t·R]: the group target
    const float* Ug = a.U + a.g0 * a.C + a.g0;
    double yKy = 0;
    for (int t = 0; t < a.g; ++t) yKy += double(W0[t * R]) * a.KYt[int64_t(t) * R + r];
    {  // §4(a): an 8-bit asymmetric code of the target, its top k bits
        const DGrid grid{8, false};
        float lo = W0[0], hi = lo;
        for (int t = 1; t < a.g; ++t) lo = dmin(lo, W0[t * R]), hi = dmax(hi, W0[t * R]);
        float s;
        uint8_t z;
        grid.fit(lo, hi, s, z);
        for (int t = 0; t < a.g; ++t) a.beta[int64_t(t) * R + r] = uint8_t(grid.code(W0[t * R], s, z) >> (8 - a.k));
    }
    RowSolver sv{a, r};
    sv.reset();
    sv.set_planes();
    double c[kMaxK + 1];
    const int k1 = a.k + 1;
    double sc = sv.solve(yKy, c);
    if (isnan(sc)) report_error(a, 1, r, 0, 0);
    a.shist[r * (a.iters + 1)] = sc;
    for (int m = 0; m < k1; ++m) a.chist[r * stride + m] = c[m];
    float* w = a.Wp_global ? a.Wp_global + r : tile + threadIdx.x;
    const int64_t ws = a.Wp_global ? R : blockDim.x;
    float cf[kMaxK + 1], V[1 << kMaxK];
    for (int it = 1; it <= a.iters; ++it) {
        for (int m = 0; m < k1; ++m) cf[m] = float(c[m]);
        build_levels(cf, a.k, a.nb, V);
        for (int t = 0; t < a.g; ++t) w[t * ws] = W0[t * R];
        column_pass(w, ws, a.g, a.g, V, a.nb, Ug, a.C, [&](int t, int b, float, float) { a.beta[int64_t(t) * R + r] = uint8_t(b); });
        sv.set_planes();
        sc = sv.solve(yKy, c);
        if (isnan(sc)) report_error(a, 1, r, it, 0);
        for (int m = 0; m < k1; ++m)
            if (!isfinite(c[m])) report_error(a, 2, r, it, m);
        a.shist[r * (a.iters + 1) + it] = sc;
        for (int m = 0; m < k1; ++m) a.chist[r * stride + int64_t(it) * k1 + m] = c[m];
    }
}

// The best iterate: the smallest Σ_r score (rows in order, strict <: the earliest on ties). Rows come
// through shared memory in chunks (coalesced); thread `it` sums iteration it's scores in row order.
__global__ void best_kernel(const double* shist, int64_t R, int iters, int64_t chunk, bool frozen, int* best_it, double* best_score) {
    extern __shared__ double sh[];
    const int n = iters + 1;
    double s = 0;
    if (!frozen)
        for (int64_t r0 = 0; r0 < R; r0 += chunk) {
            const int64_t rows = R - r0 < chunk ? R - r0 : chunk;
            for (int64_t i = threadIdx.x; i < rows * n; i += blockDim.x) sh[i] = shist[r0 * n + i];
            __syncthreads();
            if (threadIdx.x < n)
                for (int64_t rr = 0; rr < rows; ++rr) s += sh[rr * n + threadIdx.x];
            __syncthreads();
        }
    if (threadIdx.x < n) sh[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x != 0) return;
    int bi = 0;
    double best = frozen ? 0.0 : INFINITY;
    if (!frozen)
        for (int it = iters == 0 ? 0 : 1; it <= iters; ++it)
            if (sh[it] < best) best = sh[it], bi = it;
    *best_it = bi;
    *best_score = best;
}

// Phase B (§4(e)): ĉ = bf16(c of the best iterate) (or the frozen uniform grid), one column pass from the
// snapshot over the group and the block tail; codes, Q, −E and the loss out, the tail back into Wt.
__global__ void __launch_bounds__(kRowsPerBlock) phase_b_kernel(GroupArgs a) {
    extern __shared__ float tile[];
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= a.R) return;
    const int64_t R = a.R;
    const int k1 = a.k + 1;
    float* w = a.Wp_global ? a.Wp_global + r : tile + threadIdx.x;
    const int64_t ws = a.Wp_global ? R : blockDim.x;
    for (int64_t t = 0; t < a.ncols; ++t) w[t * ws] = a.Wt[(a.g0 + t) * R + r];
    float cf[kMaxK + 1], V[1 << kMaxK];
    if (a.frozen) {  // GPTQ's k-bit grid of the group target: c_0 = −s·z, c_m = s·2^(m−1)
        float lo = w[0], hi = lo;
        for (int t = 1; t < a.g; ++t) lo = dmin(lo, w[t * ws]), hi = dmax(hi, w[t * ws]);
        float s;
        uint8_t z;
        DGrid{a.k, false}.fit(lo, hi, s, z);
        cf[0] = -__fmul_rn(s, float(z));
        for (int m = 1; m <= a.k; ++m) cf[m] = __fmul_rn(s, float(1 << (m - 1)));
    } else {
        const double* c = a.chist + (r * (a.iters + 1) + *a.best_it) * k1;
        for (int m = 0; m < k1; ++m) cf[m] = a.round_bf16 ? d_round_to_bf16(float(c[m])) : float(c[m]);
    }
    for (int m = 0; m < k1; ++m) a.cfin[(a.p * R + r) * k1 + m] = cf[m];
    build_levels(cf, a.k, a.nb, V);
    double loss = 0;
    column_pass(w, ws, a.g, a.ncols, V, a.nb, a.U + a.g0 * a.C + a.g0, a.C, [&](int t, int b, float q, float e) {
        const int64_t pos = a.g0 + t;
        a.codes[pos * R + r] = uint8_t(b);
        a.qt[pos * R + r] = q;
        a.negerr[(pos - a.i1) * R + r] = -e;
        loss += 0.5 * double(e) * double(e);
    });
    a.loss[r] += loss;
    for (int64_t u = a.g; u < a.ncols; ++u) a.Wt[(a.g0 + u) * R + r] = w[u * ws];
}

}  // namespace

BpdqResult bpdq_quantize(const float* dW, int64_t R, int64_t C, const double* dH, const BpdqOptions& opt) {
    if (opt.bits < 1 || opt.bits > kMaxK) fail("BPDQ: planes k must be between 1 and 8, got " + std::to_string(opt.bits));
    if (opt.group <= 0 || opt.group > 64 * kMaxWords || C % opt.group != 0)
        fail("BPDQ: group size " + std::to_string(opt.group) + " must be at most 256 and divide " + std::to_string(C) + " input columns");
    if (opt.iters < 0) fail("BPDQ: iterations must be ≥ 0");
    if (!dH) fail("internal: BPDQ needs a Hessian");
    if (opt.trace || opt.block_trace) fail("internal: the GPU BPDQ has no trace hooks");
    if (opt.iters == 0 && !opt.frozen_uniform) fail("BPDQ on the GPU needs at least 1 iteration (iters = 0 is a CPU test mode)");
    const int64_t g = opt.group, G = C / g, k1 = opt.bits + 1;
    const int64_t B = opt.block > 0 ? opt.block : std::max<int64_t>(128, g);
    if (B % g != 0) fail("internal: BPDQ block must be a multiple of the group size");
    const int k = opt.bits, nb = 1 << k, iters = opt.frozen_uniform ? 0 : opt.iters;
    const bool frozen = opt.frozen_uniform;
    BpdqResult res;
    res.rows = R;
    res.cols = C;
    res.bits = k;
    res.group = int(g);

    // Step 0: dead columns, GAR (forced), damped inverse, U (f32) and its f64 original for the K of each group.
    PreparedLayer P = prepare_layer(dW, R, C, dH, g, ColumnOrder::Gar, true, opt.damp, true, res.log, "BPDQ");
    res.damp_used = P.damp_used;
    DeviceArray<double> K, k1s, s11;
    if (!frozen) {
        DeviceArray<double> Ui(size_t(G * g * g));
        QCK(cudaMemset(Ui.data(), 0, Ui.size() * sizeof(double)));
        ss_inverse_kernel<<<unsigned(G), unsigned(g)>>>(P.Ud.data(), C, int(g), Ui.data());
        check_launch("U_SS inverse");
        K.resize(size_t(G * g * g));
        const double one = 1.0, zero = 0.0;
        // Row-major Ui is the column-major Uiᵀ: K = Ui·Uiᵀ = (Uiᵀ)ᵀ(Uiᵀ).
        QCB(cublasDgemmStridedBatched(blas(), CUBLAS_OP_T, CUBLAS_OP_N, int(g), int(g), int(g), &one, Ui.data(), int(g), g * g, Ui.data(),
                                      int(g), g * g, &zero, K.data(), int(g), g * g, int(G)));
        k1s.resize(size_t(G * g));
        s11.resize(size_t(G));
        k_sums_kernel<<<unsigned(G), unsigned(g)>>>(K.data(), int(g), k1s.data(), s11.data());
        check_launch("K sums");
    }
    P.Ud = DeviceArray<double>();

    DeviceArray<double> Yd(size_t(g * R)), KYt(size_t(g * R)), Kb(size_t(k * g * R)), chist(size_t(R * (iters + 1) * k1)),
        shist(size_t(R * (iters + 1))), loss{size_t(R)}, best_score{size_t(G)};
    DeviceArray<uint8_t> beta(size_t(g * R)), codes(size_t(C * R));
    DeviceArray<float> cfin(size_t(G * R * k1)), qt(size_t(C * R)), negerr(size_t(B * R)), Wp;
    DeviceArray<int> err(5), best_it{size_t(G)};
    QCK(cudaMemset(err.data(), 0, 5 * sizeof(int)));
    QCK(cudaMemset(loss.data(), 0, size_t(R) * sizeof(double)));
    const bool shared = tile_fits(B);
    if (!shared) Wp.resize(size_t(B * R));
    if (shared) {
        const int bytes = int(B * kRowsPerBlock * sizeof(float));
        QCK(cudaFuncSetAttribute(phase_a_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        QCK(cudaFuncSetAttribute(phase_b_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    }
    const unsigned grid = blocks_for(R, kRowsPerBlock);
    const int64_t best_chunk = std::max<int64_t>(1, std::min<int64_t>(256, (40 << 10) / (8 * (iters + 1))));
    if (iters + 1 > 256) fail("BPDQ on the GPU: at most 255 iterations");
    for (int64_t i1 = 0; i1 < C; i1 += B) {
        const int64_t i2 = std::min(C, i1 + B);
        for (int64_t g0 = i1; g0 < i2; g0 += g) {
            const int64_t p = g0 / g;
            GroupArgs a{};
            a.Wt = P.Wt.data(), a.R = R, a.C = C, a.g0 = g0, a.i1 = i1, a.ncols = i2 - g0;
            a.g = int(g), a.k = k, a.nb = nb, a.iters = iters, a.nw = int((g + 63) / 64), a.alpha = opt.alpha;
            a.U = P.U.data();
            if (!frozen) a.K = K.data() + p * g * g, a.k1 = k1s.data() + p * g, a.s11 = s11.data() + p;
            a.KYt = KYt.data(), a.Kb = Kb.data(), a.beta = beta.data(), a.chist = chist.data(), a.shist = shist.data(), a.err = err.data();
            a.p = p, a.best_it = best_it.data() + p, a.round_bf16 = opt.round_bf16, a.frozen = frozen;
            a.cfin = cfin.data(), a.codes = codes.data(), a.qt = qt.data(), a.negerr = negerr.data(), a.loss = loss.data();
            a.Wp_global = shared ? nullptr : Wp.data();
            if (!frozen) {
                // K·y of every row: KY = Y·K (f64), Y[r][t] = Wt[g0 + t][r]; stored [t][r] (column-major R × g).
                to_f64_kernel<<<512, 256>>>(P.Wt.data() + g0 * R, size_t(g * R), Yd.data());
                check_launch("Y to f64");
                const double one = 1.0, zero = 0.0;
                QCB(cublasDgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_N, int(R), int(g), int(g), &one, Yd.data(), int(R), a.K, int(g), &zero,
                                KYt.data(), int(R)));
                phase_a_kernel<<<grid, kRowsPerBlock, shared ? size_t(g) * kRowsPerBlock * sizeof(float) : 0>>>(a);
                check_launch("BPDQ phase A");
            }
            best_kernel<<<1, 256, size_t(best_chunk * (iters + 1)) * sizeof(double)>>>(shist.data(), R, iters, best_chunk, frozen,
                                                                                       best_it.data() + p, best_score.data() + p);
            check_launch("BPDQ best iterate");
            phase_b_kernel<<<grid, kRowsPerBlock, shared ? size_t(a.ncols) * kRowsPerBlock * sizeof(float) : 0>>>(a);
            check_launch("BPDQ phase B");
        }
        // W[:, i2:] −= Err1 · U[i1:i2, i2:]
        trailing_update(P.Wt.data(), negerr.data(), P.U.data(), R, C, i1, i2);
    }
    int e[5] = {};
    err.download(e, 5);
    const std::vector<int64_t>& perm = P.perm;
    if (e[0] == 2)
        fail("BPDQ: non-finite coefficient c_" + std::to_string(e[4]) + " at row " + std::to_string(e[1]) + ", group " +
             std::to_string(perm[size_t(int64_t(e[2]) * g)] / g) + " (iteration " + std::to_string(e[3]) + ")");
    if (e[0] == 1) {
        BpdqResult redo;
        redo.log.push_back("BPDQ (cuda): a coefficient system failed its Cholesky at row " + std::to_string(e[1]) + ", group " +
                           std::to_string(perm[size_t(int64_t(e[2]) * g)] / g) + "; the layer is redone on the CPU (eigen-decomposition fallback)");
        return redo;  // rows = 0
    }
    for (double l : loss.download()) res.loss += l;
    res.group_score = best_score.download();
    const std::vector<int> bi = best_it.download();
    res.group_best_iter.assign(bi.begin(), bi.end());

    // Step 3: back to the original column order (planes inside each group) and group order (coefficients).
    res.codes = unpermute_download(codes, R, C, P.dperm.data());
    res.dequant = unpermute_download(qt, R, C, P.dperm.data());
    const std::vector<float> cf = cfin.download();
    res.coefs.resize(size_t(R * G * k1));
    res.coefs_f32.resize(size_t(R * G * k1));
    for (int64_t p = 0; p < G; ++p) {
        const int64_t j = perm[size_t(p * g)] / g;
        for (int64_t r = 0; r < R; ++r)
            for (int64_t m = 0; m < k1; ++m) {
                const float v = cf[size_t((p * R + r) * k1 + m)];
                res.coefs_f32[size_t((r * G + j) * k1 + m)] = v;
                res.coefs[size_t((r * G + j) * k1 + m)] = f32_to_bf16(v);
            }
    }
    return res;
}

}  // namespace planeq::cuda
