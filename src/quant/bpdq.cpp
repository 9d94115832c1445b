// BPDQ (/shared/methods/BPDQ.md). See quant/bpdq.hpp for the structure and the exact reformulations.
#include "quant/bpdq.hpp"

#include <cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/bitplane.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "quant/gptq.hpp"
#include "quant/uniform_grid.hpp"

namespace planeq {

namespace {

#define BPDQ_AI inline __attribute__((always_inline))
// The lane loops are compiled twice: for AVX-512 and for the baseline ISA. FMA contraction is off in
// both, so every lane's arithmetic is the same sequence of IEEE operations on every machine (and the
// same as gptq.cpp's, which the frozen-grid test reproduces bit for bit).
#define BPDQ_AVX512 __attribute__((optimize("fp-contract=off"), target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#define BPDQ_GENERIC __attribute__((optimize("fp-contract=off")))

bool have_avx512() {
    static const bool ok = [] {
        const CpuFeatures& f = cpu_features();
        return f.avx512f && f.avx512vl && f.avx512bw && f.avx512dq && f.fma;
    }();
    return ok;
}

// ---- the column pass (§4(c)), rows in lanes --------------------------------------------------------

struct PassArgs {
    float* Wp;            // [nupd][nr] working weights of positions g0 … (in/out)
    int64_t nr, g, nupd;  // lanes; quantized positions (0 … g−1); updated positions (< nupd)
    const float* V;       // [nb][nr] levels per lane
    int nb;
    const float* U;       // &U[g0][g0], leading dimension ldu
    int64_t ldu;
    uint8_t* beta;        // [g][nr] out
    float* q;             // [g][nr] out (may be null)
    float* e;             // [g][nr] out (may be null): e_t = (y_t − q_t)/U_tt
    float* best;          // [nr] scratch
    int32_t* idx;         // [nr] scratch
    float* qv;            // [nr] scratch
    float* ev;            // [nr] scratch
};

BPDQ_AI void column_pass_impl(const PassArgs& a) {
    const int64_t nr = a.nr;
    float* __restrict best = a.best;
    int32_t* __restrict idx = a.idx;
    float* __restrict qv = a.qv;
    float* __restrict ev = a.ev;
    for (int64_t t = 0; t < a.g; ++t) {
        const float* __restrict w = a.Wp + t * nr;
        // Nearest level, ties toward the lowest β (strict <).
        for (int64_t l = 0; l < nr; ++l) {
            const float d = w[l] - a.V[l];
            best[l] = d * d;
            idx[l] = 0;
            qv[l] = a.V[l];
        }
        for (int b = 1; b < a.nb; ++b) {
            const float* __restrict vb = a.V + b * nr;
            for (int64_t l = 0; l < nr; ++l) {
                const float d = w[l] - vb[l];
                const float d2 = d * d;
                const bool lt = d2 < best[l];
                best[l] = lt ? d2 : best[l];
                idx[l] = lt ? b : idx[l];
                qv[l] = lt ? vb[l] : qv[l];
            }
        }
        const float dt = a.U[t * a.ldu + t];
        uint8_t* __restrict bt = a.beta + t * nr;
        for (int64_t l = 0; l < nr; ++l) {
            ev[l] = (w[l] - qv[l]) / dt;  // "Eq. (3)"
            bt[l] = uint8_t(idx[l]);
        }
        if (a.q) std::memcpy(a.q + t * nr, qv, size_t(nr) * 4);
        if (a.e) std::memcpy(a.e + t * nr, ev, size_t(nr) * 4);
        const float* urow = a.U + t * a.ldu;
        for (int64_t j = t + 1; j < a.nupd; ++j) {  // "Eq. (4)": W[:, j] −= e_t · U[t, j]
            const float u = urow[j];
            float* __restrict wj = a.Wp + j * nr;
            for (int64_t l = 0; l < nr; ++l) wj[l] -= ev[l] * u;
        }
    }
}
BPDQ_AVX512 void column_pass_avx512(const PassArgs& a) { column_pass_impl(a); }
BPDQ_GENERIC void column_pass_generic(const PassArgs& a) { column_pass_impl(a); }
void column_pass(const PassArgs& a) { have_avx512() ? column_pass_avx512(a) : column_pass_generic(a); }

// E with E·U_SS = D, lanes: E_t = (D_t − Σ_{s<t} E_s U_st)/U_tt (f32, forward substitution).
BPDQ_GENERIC void solve_upper_right(const float* D, int64_t nr, int64_t g, const float* U, int64_t ldu, float* E) {
    for (int64_t t = 0; t < g; ++t) {
        float* et = E + t * nr;
        for (int64_t l = 0; l < nr; ++l) et[l] = D[t * nr + l];
        for (int64_t s = 0; s < t; ++s) {
            const float u = U[s * ldu + t];
            for (int64_t l = 0; l < nr; ++l) et[l] -= E[s * nr + l] * u;
        }
        const float d = U[t * ldu + t];
        for (int64_t l = 0; l < nr; ++l) et[l] /= d;
    }
}

// W[tail] −= E·U[S, tail], lanes (Wtail [ntail][nr], E [g][nr], U = &U[g0][g0 + g]).
BPDQ_GENERIC void tail_update(float* Wtail, int64_t ntail, const float* E, int64_t nr, int64_t g, const float* U, int64_t ldu) {
    for (int64_t s = 0; s < g; ++s)
        for (int64_t u = 0; u < ntail; ++u) {
            const float x = U[s * ldu + u];
            for (int64_t l = 0; l < nr; ++l) Wtail[u * nr + l] -= E[s * nr + l] * x;
        }
}

// kb ±= krow (g doubles).
BPDQ_AI void axpy_sign_impl(double* __restrict kb, const double* __restrict krow, int64_t g, bool add) {
    if (add)
        for (int64_t i = 0; i < g; ++i) kb[i] += krow[i];
    else
        for (int64_t i = 0; i < g; ++i) kb[i] -= krow[i];
}
BPDQ_AVX512 void axpy_sign_avx512(double* kb, const double* krow, int64_t g, bool add) { axpy_sign_impl(kb, krow, g, add); }
BPDQ_GENERIC void axpy_sign_generic(double* kb, const double* krow, int64_t g, bool add) { axpy_sign_impl(kb, krow, g, add); }

// ---- SolveC (§4(b)) through K = (U_SSᵀU_SS)⁻¹ ------------------------------------------------------

constexpr int kMaxK = 8;
constexpr int kMaxWords = 4;  // g ≤ 256

double sum_bits(const uint64_t* bits, int nw, const double* v) {
    double s = 0;
    for (int w = 0; w < nw; ++w)
        for (uint64_t x = bits[w]; x; x &= x - 1) s += v[64 * w + __builtin_ctzll(x)];
    return s;
}

// (A + αI) c = rhs for n ≤ 9 (symmetric A): Cholesky; on failure the eigen-decomposition pseudo-inverse
// (eigenvalues below 1e-10 · max set to 0), BPDQ.md §6.
void solve_small(const double* A, const double* rhs, int n, double alpha, double* c) {
    double L[(kMaxK + 1) * (kMaxK + 1)];
    bool ok = true;
    for (int i = 0; i < n && ok; ++i)
        for (int j = 0; j <= i; ++j) {
            double s = A[i * n + j] + (i == j ? alpha : 0.0);
            for (int p = 0; p < j; ++p) s -= L[i * n + p] * L[j * n + p];
            if (i == j) {
                if (!(s > 0.0)) {
                    ok = false;
                    break;
                }
                L[i * n + i] = std::sqrt(s);
            } else {
                L[i * n + j] = s / L[j * n + j];
            }
        }
    if (ok) {
        double z[kMaxK + 1];
        for (int i = 0; i < n; ++i) {
            double s = rhs[i];
            for (int p = 0; p < i; ++p) s -= L[i * n + p] * z[p];
            z[i] = s / L[i * n + i];
        }
        for (int i = n - 1; i >= 0; --i) {
            double s = z[i];
            for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * c[p];
            c[i] = s / L[i * n + i];
        }
        return;
    }
    Eigen::MatrixXd M(n, n);
    Eigen::VectorXd b(n);
    for (int i = 0; i < n; ++i) {
        b(i) = rhs[i];
        for (int j = 0; j < n; ++j) M(i, j) = A[i * n + j] + (i == j ? alpha : 0.0);
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(M);
    const Eigen::VectorXd ev = es.eigenvalues();
    const double top = ev.cwiseAbs().maxCoeff();
    Eigen::VectorXd y = es.eigenvectors().transpose() * b;
    for (int i = 0; i < n; ++i) y(i) = ev(i) > 1e-10 * top ? y(i) / ev(i) : 0.0;
    const Eigen::VectorXd x = es.eigenvectors() * y;
    for (int i = 0; i < n; ++i) c[i] = x(i);
}

// Per-group quantities shared by all rows.
struct GroupShared {
    int64_t g = 0;
    std::vector<double> K;   // g×g, (U_SSᵀU_SS)⁻¹
    std::vector<double> k1;  // K·1
    double s11 = 0;          // 1ᵀK1
};

// One row's planes and the K·b_m it keeps up to date.
struct RowState {
    uint64_t bits[kMaxK][kMaxWords];
    double* Kb = nullptr;  // [k][g]
};

struct Solver {
    int k = 2;
    int64_t g = 0;
    int nw = 0;
    double alpha = 1e-4;
    const GroupShared* sh = nullptr;

    void reset(RowState& st) const {
        std::memset(st.bits, 0, sizeof st.bits);
        std::fill_n(st.Kb, size_t(k) * size_t(g), 0.0);
    }
    // New planes from codes β (beta[t·stride]); K·b_m updated where bits flipped.
    void set_planes(RowState& st, const uint8_t* beta, int64_t stride) const {
        const bool fast = have_avx512();
        for (int m = 0; m < k; ++m) {
            uint64_t nb[kMaxWords] = {};
            for (int64_t t = 0; t < g; ++t) nb[t / 64] |= uint64_t((beta[t * stride] >> m) & 1u) << (t % 64);
            double* kb = st.Kb + m * g;
            for (int w = 0; w < nw; ++w) {
                for (uint64_t x = nb[w] ^ st.bits[m][w]; x; x &= x - 1) {
                    const int64_t i = 64 * w + __builtin_ctzll(x);
                    const bool add = (nb[w] >> (i % 64)) & 1u;
                    (fast ? axpy_sign_avx512 : axpy_sign_generic)(kb, sh->K.data() + i * g, g, add);
                }
                st.bits[m][w] = nb[w];
            }
        }
    }
    // c (c_0, c_1 … c_k) minimizing ‖(y − Xc)ᵀ U_SS⁻¹‖² + α‖c‖²; returns ‖(y − Xc)ᵀ U_SS⁻¹‖².
    double solve(const RowState& st, const double* Ky, double yKy, double* c) const {
        const int n = k + 1;
        double A[(kMaxK + 1) * (kMaxK + 1)], rhs[kMaxK + 1];
        A[0] = sh->s11;
        rhs[0] = 0;
        for (int64_t i = 0; i < g; ++i) rhs[0] += Ky[i];
        for (int m = 1; m <= k; ++m) {
            const uint64_t* bm = st.bits[m - 1];
            A[m] = A[m * n] = sum_bits(bm, nw, sh->k1.data());
            rhs[m] = sum_bits(bm, nw, Ky);
            for (int p = m; p <= k; ++p) A[m * n + p] = A[p * n + m] = sum_bits(bm, nw, st.Kb + (p - 1) * g);
        }
        solve_small(A, rhs, n, alpha, c);
        double s = yKy;
        for (int i = 0; i < n; ++i) {
            s -= 2.0 * c[i] * rhs[i];
            for (int j = 0; j < n; ++j) s += c[i] * A[i * n + j] * c[j];
        }
        return s;
    }
};

// The initial codes of a row (§4(a)): an 8-bit asymmetric min-max code of the group target, its top k bits.
void init_codes(const float* W0, int64_t nr, int64_t l, int64_t g, int k, uint8_t* beta) {
    const UniformGrid grid{8, false};
    float lo = W0[l], hi = lo;
    for (int64_t t = 1; t < g; ++t) {
        lo = std::min(lo, W0[t * nr + l]);
        hi = std::max(hi, W0[t * nr + l]);
    }
    const GridParams p = grid.fit(lo, hi);
    for (int64_t t = 0; t < g; ++t) beta[t * nr + l] = uint8_t(grid.code(W0[t * nr + l], p) >> (8 - k));
}

// Levels per lane: V[β][l] = bitplane_level(c_l, k, β) in f32.
void build_levels(const float* cf, int k, int64_t nr, float* V) {
    for (int64_t l = 0; l < nr; ++l)
        for (unsigned b = 0; b < (1u << k); ++b) V[b * nr + l] = bitplane_level(cf + l * (k + 1), k, b);
}

// The whole layer's state during quantization.
struct Layer {
    const BpdqOptions& opt;
    int64_t R, C, g, B;
    int k, nb;
    std::vector<float> Wt;       // [C][R] working weights, permuted
    std::vector<float> U;        // [C][C] f32
    std::vector<double> Ublk;    // [C/g][g][g] the diagonal blocks of U in fp64
    std::vector<uint8_t> codes;  // [C][R]
    std::vector<float> qt;       // [C][R]
    std::vector<float> err;      // [B][R] −E of the current block
    std::vector<float> cfin;     // [C/g][R][k+1] final coefficients (f32 values used)
    std::vector<double> group_score;
    std::vector<int> group_best;
    double loss = 0;
    std::vector<int64_t> perm;

    Layer(const BpdqOptions& o) : opt(o) {}

    void group(int64_t g0, int64_t i1, int64_t i2);
};

// Per-thread scratch for a chunk of nr rows.
struct Work {
    std::vector<float> W0, Wp, V, q, e, q2, e2, scratch;
    std::vector<uint8_t> beta;
    std::vector<double> Kb;
    std::vector<RowState> rows;
    std::vector<float> cf;
    void ensure(int64_t nr, int64_t ncols, int64_t g, int k) {
        W0.resize(size_t(ncols * nr));
        Wp.resize(size_t(ncols * nr));
        V.resize(size_t((int64_t(1) << k) * nr));
        q.resize(size_t(g * nr));
        e.resize(size_t(g * nr));
        q2.resize(size_t(g * nr));
        e2.resize(size_t(g * nr));
        scratch.resize(size_t(4 * nr));
        beta.resize(size_t(g * nr));
        Kb.resize(size_t(nr * k * g));
        rows.resize(size_t(nr));
        for (int64_t l = 0; l < nr; ++l) rows[size_t(l)].Kb = Kb.data() + l * k * g;
        cf.resize(size_t(nr * (k + 1)));
    }
    PassArgs pass(int64_t nr, int64_t g, int64_t nupd, int nb, const float* U, int64_t ldu, float* qo, float* eo) {
        PassArgs a;
        a.Wp = Wp.data();
        a.nr = nr;
        a.g = g;
        a.nupd = nupd;
        a.V = V.data();
        a.nb = nb;
        a.U = U;
        a.ldu = ldu;
        a.beta = beta.data();
        a.q = qo;
        a.e = eo;
        a.best = scratch.data();
        a.idx = reinterpret_cast<int32_t*>(scratch.data() + nr);
        a.qv = scratch.data() + 2 * nr;
        a.ev = scratch.data() + 3 * nr;
        return a;
    }
};

// Runs f(r0, r1) over row chunks in parallel; the first exception is rethrown after the loop.
template <class F>
void parallel_rows(int64_t R, int64_t chunk, F&& f) {
    std::exception_ptr first;
    std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        try {
            f(r0, std::min(R, r0 + chunk));
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu);
            if (!first) first = std::current_exception();
        }
    }
    if (first) std::rethrow_exception(first);
}

void Layer::group(int64_t g0, int64_t i1, int64_t i2) {
    const int64_t ncols = i2 - g0, ntail = ncols - g, p = g0 / g, iters = opt.iters;
    const float* Ug = U.data() + g0 * C + g0;  // &U[g0][g0]
    const bool tracing = bool(opt.trace), frozen = opt.frozen_uniform;
    const int64_t chunk = tracing ? R : std::max<int64_t>(1, opt.row_chunk);
    const int k1 = k + 1;

    // Shared by all rows: K = (U_SSᵀU_SS)⁻¹ = U_SS⁻¹U_SS⁻ᵀ, K·1, 1ᵀK1, and K·y of every row (one dgemm).
    GroupShared sh;
    sh.g = g;
    std::vector<double> KY, yKy;
    if (!frozen) {
        const double* Us = Ublk.data() + p * g * g;
        std::vector<double> Ui(size_t(g * g), 0.0);  // U_SS⁻¹ (upper), column by column
        for (int64_t j = 0; j < g; ++j) {
            Ui[size_t(j * g + j)] = 1.0 / Us[j * g + j];
            for (int64_t i = j - 1; i >= 0; --i) {
                double s = 0;
                for (int64_t m = i + 1; m <= j; ++m) s += Us[i * g + m] * Ui[size_t(m * g + j)];
                Ui[size_t(i * g + j)] = -s / Us[i * g + i];
            }
        }
        sh.K.assign(size_t(g * g), 0.0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(g), int(g), int(g), 1.0, Ui.data(), int(g), Ui.data(), int(g), 0.0,
                    sh.K.data(), int(g));
        for (int64_t i = 0; i < g; ++i)  // exactly symmetric
            for (int64_t j = 0; j < i; ++j) sh.K[size_t(i * g + j)] = sh.K[size_t(j * g + i)];
        sh.k1.assign(size_t(g), 0.0);
        for (int64_t i = 0; i < g; ++i)
            for (int64_t j = 0; j < g; ++j) sh.k1[size_t(i)] += sh.K[size_t(i * g + j)];
        for (int64_t i = 0; i < g; ++i) sh.s11 += sh.k1[size_t(i)];
        std::vector<double> Y(size_t(R * g));
        for (int64_t t = 0; t < g; ++t)
            for (int64_t r = 0; r < R; ++r) Y[size_t(r * g + t)] = Wt[size_t((g0 + t) * R + r)];
        KY.assign(size_t(R * g), 0.0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(R), int(g), int(g), 1.0, Y.data(), int(g), sh.K.data(), int(g), 0.0,
                    KY.data(), int(g));
        yKy.resize(size_t(R));
        for (int64_t r = 0; r < R; ++r) {
            double s = 0;
            for (int64_t t = 0; t < g; ++t) s += Y[size_t(r * g + t)] * KY[size_t(r * g + t)];
            yKy[size_t(r)] = s;
        }
    }
    Solver solver;
    solver.k = k;
    solver.g = g;
    solver.nw = int((g + 63) / 64);
    solver.alpha = opt.alpha;
    solver.sh = &sh;

    // c and score of every row at every iteration (0 = initialization).
    std::vector<double> chist(size_t(R * (iters + 1) * k1), 0.0), shist(size_t(R * (iters + 1)), 0.0);
    auto load_w0 = [&](Work& w, int64_t r0, int64_t nr, int64_t npos) {
        for (int64_t t = 0; t < npos; ++t) std::memcpy(w.W0.data() + t * nr, Wt.data() + (g0 + t) * R + r0, size_t(nr) * 4);
    };

    // Phase A: initialization and the iterations, rows in parallel chunks.
    if (!frozen) {
        parallel_rows(R, chunk, [&](int64_t r0, int64_t r1) {
            thread_local Work w;
            const int64_t nr = r1 - r0;
            w.ensure(nr, ncols, g, k);
            const int64_t nupd = tracing ? ncols : g;  // the iterations need no tail (the final pass redoes it)
            load_w0(w, r0, nr, nupd);
            std::vector<double> c(size_t(nr * k1));
            for (int64_t l = 0; l < nr; ++l) {
                const int64_t r = r0 + l;
                init_codes(w.W0.data(), nr, l, g, k, w.beta.data());
                RowState& st = w.rows[size_t(l)];
                solver.reset(st);
                solver.set_planes(st, w.beta.data() + l, nr);
                shist[size_t(r * (iters + 1))] = solver.solve(st, KY.data() + r * g, yKy[size_t(r)], c.data() + l * k1);
                std::copy_n(c.data() + l * k1, k1, chist.data() + r * (iters + 1) * k1);
            }
            if (tracing) {  // iteration 0: Q = X(B_init)c, E·U_SS = Wt − Q
                for (int64_t i = 0; i < nr * k1; ++i) w.cf[size_t(i)] = float(c[size_t(i)]);
                build_levels(w.cf.data(), k, nr, w.V.data());
                for (int64_t t = 0; t < g; ++t)
                    for (int64_t l = 0; l < nr; ++l) {
                        w.q[size_t(t * nr + l)] = w.V[size_t(w.beta[size_t(t * nr + l)] * nr + l)];
                        w.q2[size_t(t * nr + l)] = w.W0[size_t(t * nr + l)] - w.q[size_t(t * nr + l)];
                    }
                solve_upper_right(w.q2.data(), nr, g, Ug, C, w.e.data());
                std::vector<double> sc(static_cast<size_t>(nr));
                for (int64_t l = 0; l < nr; ++l) sc[size_t(l)] = shist[size_t((r0 + l) * (iters + 1))];
                BpdqTrace tr;
                tr.g0 = g0, tr.rows = R, tr.group = g, tr.tail = ntail, tr.iter = 0;
                tr.Wt = w.W0.data(), tr.U = U.data(), tr.C = C, tr.codes = w.beta.data(), tr.coefs = c.data(), tr.scores = sc.data();
                tr.Qnew = w.q.data(), tr.Enew = w.e.data();
                opt.trace(tr);
            }
            for (int64_t it = 1; it <= iters; ++it) {
                for (int64_t i = 0; i < nr * k1; ++i) w.cf[size_t(i)] = float(c[size_t(i)]);
                build_levels(w.cf.data(), k, nr, w.V.data());
                std::copy_n(w.W0.data(), nupd * nr, w.Wp.data());
                column_pass(w.pass(nr, g, nupd, nb, Ug, C, tracing ? w.q.data() : nullptr, tracing ? w.e.data() : nullptr));
                for (int64_t l = 0; l < nr; ++l) {
                    const int64_t r = r0 + l;
                    RowState& st = w.rows[size_t(l)];
                    solver.set_planes(st, w.beta.data() + l, nr);
                    double* cn = c.data() + l * k1;
                    shist[size_t(r * (iters + 1) + it)] = solver.solve(st, KY.data() + r * g, yKy[size_t(r)], cn);
                    for (int m = 0; m < k1; ++m)
                        if (!std::isfinite(cn[m]))
                            fail("BPDQ: non-finite coefficient c_" + std::to_string(m) + " at row " + std::to_string(r) + ", group " +
                                 std::to_string(perm[size_t(g0)] / g) + " (iteration " + std::to_string(it) + ")");
                    std::copy_n(cn, k1, chist.data() + (r * (iters + 1) + it) * k1);
                }
                if (tracing) {  // the spec's explicit quantities: Qnew, δE·U_SS = Qold − Qnew, Enew, tail fix
                    std::vector<float> cfn(size_t(nr * k1)), Qn(size_t(g * nr)), D(size_t(g * nr)), dE(size_t(g * nr)), En(size_t(g * nr));
                    for (int64_t i = 0; i < nr * k1; ++i) cfn[size_t(i)] = float(c[size_t(i)]);
                    for (int64_t t = 0; t < g; ++t)
                        for (int64_t l = 0; l < nr; ++l) {
                            const size_t i = size_t(t * nr + l);
                            Qn[i] = bitplane_level(cfn.data() + l * k1, k, w.beta[i]);
                            D[i] = w.q[i] - Qn[i];
                        }
                    solve_upper_right(D.data(), nr, g, Ug, C, dE.data());
                    for (size_t i = 0; i < En.size(); ++i) En[i] = w.e[i] + dE[i];
                    tail_update(w.Wp.data() + g * nr, ntail, dE.data(), nr, g, Ug + g, C);
                    std::vector<double> sc(static_cast<size_t>(nr));
                    for (int64_t l = 0; l < nr; ++l) sc[size_t(l)] = shist[size_t((r0 + l) * (iters + 1) + it)];
                    BpdqTrace tr;
                    tr.g0 = g0, tr.rows = R, tr.group = g, tr.tail = ntail, tr.iter = int(it);
                    tr.Wt = w.W0.data(), tr.U = U.data(), tr.C = C, tr.codes = w.beta.data(), tr.coefs = c.data(), tr.scores = sc.data();
                    tr.Qold = w.q.data(), tr.Eold = w.e.data(), tr.Qnew = Qn.data(), tr.Enew = En.data();
                    tr.tail_w = w.Wp.data() + g * nr;
                    opt.trace(tr);
                }
            }
        });
    }

    // The best iterate: the smallest group score Σ_r ‖Enew_r‖² (strict <: the earliest on ties).
    int64_t best_it = 0;
    double best = std::numeric_limits<double>::infinity();
    if (!frozen) {
        for (int64_t it = iters == 0 ? 0 : 1; it <= iters; ++it) {
            double s = 0;
            for (int64_t r = 0; r < R; ++r) s += shist[size_t(r * (iters + 1) + it)];
            if (s < best) {
                best = s;
                best_it = it;
            }
        }
    }
    group_score[size_t(p)] = frozen ? 0.0 : best;
    group_best[size_t(p)] = int(best_it);

    // Phase B (§4(e)): ĉ = bf16(c), one column pass from the snapshot over the whole block range T.
    std::vector<double> loss_chunk(size_t((R + chunk - 1) / chunk), 0.0);
    parallel_rows(R, chunk, [&](int64_t r0, int64_t r1) {
        thread_local Work w;
        const int64_t nr = r1 - r0;
        w.ensure(nr, ncols, g, k);
        load_w0(w, r0, nr, ncols);
        for (int64_t l = 0; l < nr; ++l) {
            const int64_t r = r0 + l;
            float* cf = w.cf.data() + l * k1;
            if (frozen) {  // GPTQ's k-bit grid of the group target: c_0 = −s·z, c_m = s·2^(m−1)
                const UniformGrid grid{k, false};
                float lo = w.W0[size_t(l)], hi = lo;
                for (int64_t t = 1; t < g; ++t) {
                    lo = std::min(lo, w.W0[size_t(t * nr + l)]);
                    hi = std::max(hi, w.W0[size_t(t * nr + l)]);
                }
                const GridParams gp = grid.fit(lo, hi);
                cf[0] = -(gp.scale * float(gp.zero));
                for (int m = 1; m <= k; ++m) cf[m] = gp.scale * float(1 << (m - 1));
            } else {
                const double* c = chist.data() + (r * (iters + 1) + best_it) * k1;
                for (int m = 0; m < k1; ++m) {
                    if (!std::isfinite(c[m]))
                        fail("BPDQ: non-finite coefficient c_" + std::to_string(m) + " at row " + std::to_string(r) + ", group " +
                             std::to_string(perm[size_t(g0)] / g));
                    cf[m] = opt.round_bf16 ? round_to_bf16(float(c[m])) : float(c[m]);
                }
            }
            std::copy_n(cf, k1, cfin.data() + (p * R + r) * k1);
        }
        build_levels(w.cf.data(), k, nr, w.V.data());
        std::copy_n(w.W0.data(), ncols * nr, w.Wp.data());
        if (iters == 0 && !frozen) {  // test-only mode: Q = X(B_init)ĉ, E·U_SS = Wt − Q, tail −= E·U[S, T∖S]
            for (int64_t l = 0; l < nr; ++l) init_codes(w.W0.data(), nr, l, g, k, w.beta.data());
            for (int64_t t = 0; t < g; ++t)
                for (int64_t l = 0; l < nr; ++l) {
                    const size_t i = size_t(t * nr + l);
                    w.q[i] = w.V[size_t(w.beta[i] * nr + l)];
                    w.q2[i] = w.W0[i] - w.q[i];
                }
            solve_upper_right(w.q2.data(), nr, g, Ug, C, w.e.data());
            tail_update(w.Wp.data() + g * nr, ntail, w.e.data(), nr, g, Ug + g, C);
        } else {
            column_pass(w.pass(nr, g, ncols, nb, Ug, C, w.q.data(), w.e.data()));
        }
        double ls = 0;
        for (int64_t t = 0; t < g; ++t) {
            const int64_t pos = g0 + t;
            for (int64_t l = 0; l < nr; ++l) {
                const size_t i = size_t(t * nr + l);
                codes[size_t(pos * R + r0 + l)] = w.beta[i];
                qt[size_t(pos * R + r0 + l)] = w.q[i];
                err[size_t((pos - i1) * R + r0 + l)] = -w.e[i];
                ls += 0.5 * double(w.e[i]) * double(w.e[i]);
            }
        }
        for (int64_t u = 0; u < ntail; ++u)
            std::memcpy(Wt.data() + (g0 + g + u) * R + r0, w.Wp.data() + (g + u) * nr, size_t(nr) * 4);
        loss_chunk[size_t(r0 / chunk)] = ls;
        if (tracing) {
            std::vector<double> c(size_t(nr * k1));
            for (int64_t i = 0; i < nr * k1; ++i) c[size_t(i)] = w.cf[size_t(i)];
            BpdqTrace tr;
            tr.g0 = g0, tr.rows = R, tr.group = g, tr.tail = ntail, tr.iter = -1;
            tr.Wt = w.W0.data(), tr.U = U.data(), tr.C = C, tr.codes = w.beta.data(), tr.coefs = c.data();
            tr.Qold = w.q.data(), tr.Eold = w.e.data(), tr.tail_w = w.Wp.data() + g * nr;
            tr.best_iter = int(best_it), tr.best_score = frozen ? 0.0 : best;
            opt.trace(tr);
        }
    });
    for (double l : loss_chunk) loss += l;
}

}  // namespace

void bpdq_solve_c_whitened(const double* Uss, int64_t g, int k, const uint8_t* codes, const double* y, double alpha, double* c) {
    const int n = k + 1;
    // Columns of X: the planes, then ones (the spec's order); c is returned as (c_0, c_1 … c_k).
    std::vector<double> X(size_t(g * n)), Xw(size_t(g * n)), yw(static_cast<size_t>(g));
    for (int64_t t = 0; t < g; ++t) {
        for (int m = 1; m <= k; ++m) X[size_t(t * n + m - 1)] = double((codes[t] >> (m - 1)) & 1u);
        X[size_t(t * n + k)] = 1.0;
    }
    // U_SSᵀ z = v (U_SSᵀ lower triangular): z_t = (v_t − Σ_{s<t} U_st z_s)/U_tt.
    auto whiten = [&](auto get, auto put) {
        for (int64_t t = 0; t < g; ++t) {
            double s = get(t);
            for (int64_t q = 0; q < t; ++q) s -= Uss[q * g + t] * put(q);
            put(t) = s / Uss[t * g + t];
        }
    };
    for (int j = 0; j < n; ++j) whiten([&](int64_t t) { return X[size_t(t * n + j)]; }, [&](int64_t t) -> double& { return Xw[size_t(t * n + j)]; });
    whiten([&](int64_t t) { return y[t]; }, [&](int64_t t) -> double& { return yw[size_t(t)]; });
    double A[(kMaxK + 1) * (kMaxK + 1)] = {}, rhs[kMaxK + 1] = {}, sol[kMaxK + 1];
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j)
            for (int64_t t = 0; t < g; ++t) A[i * n + j] += Xw[size_t(t * n + i)] * Xw[size_t(t * n + j)];
        for (int64_t t = 0; t < g; ++t) rhs[i] += Xw[size_t(t * n + i)] * yw[size_t(t)];
    }
    solve_small(A, rhs, n, alpha, sol);
    c[0] = sol[k];
    for (int m = 1; m <= k; ++m) c[m] = sol[m - 1];
}

BpdqResult bpdq_quantize(const float* W, int64_t R, int64_t C, const double* H, const BpdqOptions& opt) {
    if (opt.bits < 1 || opt.bits > kMaxK) fail("BPDQ: planes k must be between 1 and 8, got " + std::to_string(opt.bits));
    if (opt.group <= 0 || opt.group > 64 * kMaxWords || C % opt.group != 0)
        fail("BPDQ: group size " + std::to_string(opt.group) + " must be at most 256 and divide " + std::to_string(C) + " input columns");
    if (opt.iters < 0) fail("BPDQ: iterations must be ≥ 0");
    if (!H) fail("internal: BPDQ needs a Hessian");
    Layer L(opt);
    L.R = R;
    L.C = C;
    L.g = opt.group;
    L.B = opt.block > 0 ? opt.block : std::max<int64_t>(128, L.g);
    if (L.B % L.g != 0) fail("internal: BPDQ block must be a multiple of the group size");
    L.k = opt.bits;
    L.nb = 1 << opt.bits;
    const int64_t g = L.g, G = C / g, k1 = L.k + 1;
    BpdqResult res;
    res.rows = R;
    res.cols = C;
    res.bits = L.k;
    res.group = int(g);

    // Step 0 (GPTQ.md steps 2-4): dead columns, GAR order (forced), damped inverse, U.
    std::vector<double> Hd(H, H + C * C), diag(static_cast<size_t>(C));
    std::vector<char> dead(size_t(C), 0);
    for (int64_t i = 0; i < C; ++i) {
        if (Hd[size_t(i * C + i)] == 0.0) {
            Hd[size_t(i * C + i)] = 1.0;
            dead[size_t(i)] = 1;
        }
        diag[size_t(i)] = Hd[size_t(i * C + i)];
    }
    L.perm = column_permutation(diag, g, ColumnOrder::Gar);
    const std::vector<int64_t>& perm = L.perm;
    L.Wt.resize(size_t(C * R));
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) L.Wt[size_t(t * R + r)] = dead[size_t(c)] ? 0.0f : W[r * C + c];
    }
    std::vector<float> Lt(size_t(C * C));  // Uᵀ for the block GEMM
    {
        std::vector<double> Hp(size_t(C * C));
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) Hp[size_t(i * C + j)] = Hd[size_t(perm[size_t(i)] * C + perm[size_t(j)])];
        Hd.clear();
        Hd.shrink_to_fit();
        std::vector<double> Ud;
        res.damp_used = damped_inverse_cholesky(Hp.data(), C, opt.damp, Ud, res.log, "BPDQ");
        Hp.clear();
        Hp.shrink_to_fit();
        L.U.resize(size_t(C * C));
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) {
                L.U[size_t(i * C + j)] = float(Ud[size_t(i * C + j)]);
                Lt[size_t(j * C + i)] = float(Ud[size_t(i * C + j)]);
            }
        L.Ublk.resize(size_t(G * g * g));
        for (int64_t p = 0; p < G; ++p)
            for (int64_t a = 0; a < g; ++a)
                std::copy_n(Ud.data() + (p * g + a) * C + p * g, g, L.Ublk.data() + (p * g + a) * g);
    }

    L.codes.assign(size_t(C * R), 0);
    L.qt.assign(size_t(C * R), 0.0f);
    L.err.assign(size_t(L.B * R), 0.0f);
    L.cfin.assign(size_t(G * R * k1), 0.0f);
    L.group_score.assign(size_t(G), 0.0);
    L.group_best.assign(size_t(G), 0);

    std::vector<float> w_start;
    for (int64_t i1 = 0; i1 < C; i1 += L.B) {
        const int64_t i2 = std::min(C, i1 + L.B);
        if (opt.block_trace) w_start.assign(L.Wt.begin() + i1 * R, L.Wt.begin() + i2 * R);
        for (int64_t g0 = i1; g0 < i2; g0 += g) L.group(g0, i1, i2);
        if (opt.block_trace) {
            std::vector<float> e_pos(L.err.begin(), L.err.begin() + (i2 - i1) * R);
            for (float& v : e_pos) v = -v;
            opt.block_trace(i1, i2, w_start.data(), L.qt.data() + i1 * R, e_pos.data(), L.U.data());
        }
        // W[:, i2:] −= Err1 · U[i1:i2, i2:]  (transposed: Wt[i2:] += Uᵀ[i2:, i1:i2] · (−Err1)).
        if (i2 < C)
            cpu::gemm_f32(C - i2, R, i2 - i1, Lt.data() + i2 * C + i1, C, cpu::BOperand{L.err.data(), DType::F32, R, false},
                          L.Wt.data() + i2 * R, R, /*accumulate=*/true);
    }
    res.loss = L.loss;
    res.group_score = L.group_score;
    res.group_best_iter = L.group_best;

    // Step 3: back to the original column order (planes inside each group) and group order (coefficients).
    res.codes.resize(size_t(R * C));
    res.dequant.resize(size_t(R * C));
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) {
            res.codes[size_t(r * C + c)] = L.codes[size_t(t * R + r)];
            res.dequant[size_t(r * C + c)] = L.qt[size_t(t * R + r)];
        }
    }
    res.coefs.resize(size_t(R * G * k1));
    res.coefs_f32.resize(size_t(R * G * k1));
    for (int64_t p = 0; p < G; ++p) {
        const int64_t j = perm[size_t(p * g)] / g;
        for (int64_t r = 0; r < R; ++r)
            for (int64_t m = 0; m < k1; ++m) {
                const float v = L.cfin[size_t((p * R + r) * k1 + m)];
                res.coefs_f32[size_t((r * G + j) * k1 + m)] = v;
                res.coefs[size_t((r * G + j) * k1 + m)] = f32_to_bf16(v);
            }
    }
    return res;
}

}  // namespace planeq
