// PTQTP and PTQTP-H (quant/ptqtp.hpp, /shared/methods/PTQTP.md §4–6). The global scale search (the escape
// step) and step 3b are in ptqtp_search.cpp.
#include "quant/ptqtp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/tritplane.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"

namespace planeq {

uint16_t f64_to_f16(double x) {
    if (std::isnan(x)) return 0x7e00;
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double ax = std::fabs(x);
    if (ax >= 65520.0) return sign | 0x7c00;  // the midpoint between 65504 and 2^16 rounds (to even) up
    // f32_to_f16(float(ax)) is within one fp16 step of the answer (the f32 detour may round twice):
    // pick the nearest of it and its neighbours in f64, ties to the even code.
    const int h = f32_to_f16(float(ax)) & 0x7fff;
    int best = h;
    double bd = std::fabs(ax - double(f16_to_f32(uint16_t(h))));
    for (int c : {h - 1, h + 1}) {
        if (c < 0 || c > 0x7bff) continue;
        const double dd = std::fabs(ax - double(f16_to_f32(uint16_t(c))));
        if (dd < bd || (dd == bd && (c & 1) == 0)) {
            best = c;
            bd = dd;
        }
    }
    return uint16_t(sign | best);
}

double ptqtp_err(const double* w, int n, double a1, double a2, const int8_t* t1, const int8_t* t2) {
    double s = 0;
    for (int i = 0; i < n; ++i) {
        const double l = double(t1[i]) * a1 + double(t2[i]) * a2;
        const double d = w[i] - l;
        s += d * d;
    }
    return s;
}

int64_t ptqtp_topology(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2) {
    if (simd_level() == SimdLevel::Avx512) return cpu::tritplane_topology_avx512(w, n, a1, a2, t1, t2);
    return cpu::tritplane_topology_scalar(w, n, a1, a2, t1, t2);
}

// α = (A + λI)⁻¹ b for the symmetric 2×2 A = [[a11, a12], [a12, a22]]: λ = 0 when cond(A) ≤ κ_max, else
// the adaptive ridge (λ = λ0, ×10 while cond(A + λI) > κ_max and λ < λ_max). Returns whether ridge ran.
// det(A + λI) = det(A) + λ·(a11 + a22 + λ) and the numerators likewise: for the integer SᵀS of the scale
// step det(A) is exact, so a near-singular system loses nothing to cancellation ((16 + λ)² − 16² would
// lose 5 digits at λ = 1e-4).
bool ptqtp_solve2x2(double a11, double a12, double a22, double b1, double b2, const PtqtpOptions& o, double alpha[2]) {
    const double det0 = a11 * a22 - a12 * a12;
    auto det = [&](double lam) { return det0 + lam * (a11 + a22 + lam); };
    auto cond = [&](double lam) {
        const double dt = det(lam);
        if (!(dt > 0)) return std::numeric_limits<double>::infinity();
        const double lmax = 0.5 * (a11 + a22 + 2.0 * lam + std::sqrt((a11 - a22) * (a11 - a22) + 4.0 * a12 * a12));
        return lmax / (dt / lmax);  // λmax / λmin, λmin = det / λmax without cancellation
    };
    double lam = 0;
    bool ridge = false;
    if (!(cond(0) <= o.kappa_max)) {
        ridge = true;
        lam = o.lambda0;
        while (cond(lam) > o.kappa_max && lam < o.lambda_max) lam *= 10.0;
    }
    const double dt = det(lam);
    if (!(dt > 0)) {
        alpha[0] = alpha[1] = 0.0;
        return ridge;
    }
    alpha[0] = ((a22 * b1 - a12 * b2) + lam * b1) / dt;
    alpha[1] = ((a11 * b2 - a12 * b1) + lam * b2) / dt;
    return ridge;
}

bool ptqtp_solve_scales(const double* w, int n, const int8_t* t1, const int8_t* t2, const PtqtpOptions& o, double alpha[2]) {
    int64_t n1 = 0, n2 = 0, n12 = 0;
    double b1 = 0, b2 = 0;
    for (int i = 0; i < n; ++i) {
        n1 += t1[i] != 0;
        n2 += t2[i] != 0;
        n12 += t1[i] * t2[i];
        b1 += double(t1[i]) * w[i];
        b2 += double(t2[i]) * w[i];
    }
    const bool ridge = ptqtp_solve2x2(double(n1), double(n12), double(n2), b1, b2, o, alpha);
    if (n1 == 0) alpha[0] = 0.0;  // an all-zero plane's scale is 0 explicitly
    if (n2 == 0) alpha[1] = 0.0;
    return ridge;
}

// Step 3: α1, α2 ≥ 0 (negating a plane with its scale), α1 ≥ α2 (swapping the planes). ŵ is unchanged.
void ptqtp_canonicalize(int n, double& a1, double& a2, int8_t* t1, int8_t* t2) {
    if (a1 < 0) {
        a1 = -a1;
        for (int i = 0; i < n; ++i) t1[i] = int8_t(-t1[i]);
    }
    if (a2 < 0) {
        a2 = -a2;
        for (int i = 0; i < n; ++i) t2[i] = int8_t(-t2[i]);
    }
    if (a2 > a1) {
        std::swap(a1, a2);
        std::swap_ranges(t1, t1 + n, t2);
    }
}

void ptqtp_fit_group(const double* w, int n, const PtqtpOptions& o, double alpha[2], int8_t* t1, int8_t* t2,
                     PtqtpGroupStats* stats) {
    double maxabs = 0, sumabs = 0, sumsq = 0;
    for (int i = 0; i < n; ++i) {
        const double a = std::fabs(w[i]);
        maxabs = std::max(maxabs, a);
        sumabs += a;
        sumsq += w[i] * w[i];
    }
    if (stats) {
        stats->iterations = 0;
        stats->fixed_point = false;
        stats->ridge_steps = stats->guard_rejections = stats->escapes = 0;
        stats->errs.clear();
    }
    if (maxabs == 0.0) {  // step 0
        alpha[0] = alpha[1] = 0.0;
        std::fill_n(t1, n, int8_t(0));
        std::fill_n(t2, n, int8_t(0));
        if (stats) {
            stats->fixed_point = true;
            stats->err_twn = 0.0;
            if (stats->trace) stats->errs.push_back(0.0);
        }
        return;
    }
    const double rms = std::sqrt(sumsq / n);
    auto sgn = [](double v) { return int8_t((v > 0) - (v < 0)); };
    double a1, a2;
    if (o.init_sign) {
        for (int i = 0; i < n; ++i) t1[i] = t2[i] = sgn(w[i]);
        a1 = a2 = 1.0;
    } else {  // step 1: ternary-weight-network fit, then the same fit on the residual
        const double d1 = 0.7 * sumabs / n;
        int64_t c1 = 0;
        double s1 = 0;
        for (int i = 0; i < n; ++i) {
            const double a = std::fabs(w[i]);
            t1[i] = a > d1 ? sgn(w[i]) : int8_t(0);
            if (t1[i]) {
                ++c1;
                s1 += a;
            }
        }
        a1 = s1 / double(c1);  // c1 > 0: some |w_i| exceeds 0.7·mean|w|
        double rabs = 0;
        for (int i = 0; i < n; ++i) rabs += std::fabs(w[i] - double(t1[i]) * a1);
        const double d2 = 0.7 * rabs / n;
        int64_t c2 = 0;
        double s2 = 0;
        for (int i = 0; i < n; ++i) {
            const double r = w[i] - double(t1[i]) * a1, a = std::fabs(r);
            t2[i] = a > d2 ? sgn(r) : int8_t(0);
            if (t2[i]) {
                ++c2;
                s2 += a;
            }
        }
        a2 = c2 ? s2 / double(c2) : 0.0;
    }
    if (stats) {
        double e = 0;
        for (int i = 0; i < n; ++i) {
            const double d = w[i] - double(t1[i]) * a1;
            e += d * d;
        }
        stats->err_twn = o.init_sign ? std::numeric_limits<double>::infinity() : e;
    }
    double err = ptqtp_err(w, n, a1, a2, t1, t2);
    if (stats && stats->trace) stats->errs.push_back(err);
    int it = 0;
    bool fixed_point = false;
    auto alternate = [&] {
        while (it < o.max_iter) {
            ++it;
            // a. scale step, with the monotonicity guard
            double na[2];
            const bool ridge = ptqtp_solve_scales(w, n, t1, t2, o, na);
            const double enew = ptqtp_err(w, n, na[0], na[1], t1, t2);
            double change = 0;
            if (enew <= err) {
                change = std::max(std::fabs(na[0] - a1), std::fabs(na[1] - a2));
                a1 = na[0];
                a2 = na[1];
                err = enew;
            } else if (stats) {
                ++stats->guard_rejections;
            }
            if (stats) {
                stats->ridge_steps += ridge;
                if (stats->trace) stats->errs.push_back(err);
            }
            // b. topology step
            const int64_t changed = ptqtp_topology(w, n, a1, a2, t1, t2);
            err = ptqtp_err(w, n, a1, a2, t1, t2);
            if (stats && stats->trace) stats->errs.push_back(err);
            // c. stop
            fixed_point = changed == 0;
            if (fixed_point || change < o.eps * rms) break;
        }
    };
    alternate();
    if (o.global_search) {
        // The escape step: jump to the globally searched scales (with their optimal trits) only if that
        // strictly lowers err, then resume the alternation.
        thread_local std::vector<int8_t> u1, u2;
        double sa[2];
        ptqtp_search_scales(w, n, o, sa);
        u1.assign(t1, t1 + n);
        u2.assign(t2, t2 + n);
        ptqtp_topology(w, n, sa[0], sa[1], u1.data(), u2.data());
        const double es = ptqtp_err(w, n, sa[0], sa[1], u1.data(), u2.data());
        if (es < err) {
            a1 = sa[0];
            a2 = sa[1];
            std::copy(u1.begin(), u1.end(), t1);
            std::copy(u2.begin(), u2.end(), t2);
            err = es;
            fixed_point = false;
            if (stats) {
                stats->escapes = 1;
                if (stats->trace) stats->errs.push_back(err);
            }
            alternate();
        }
    }
    if (stats) {
        stats->iterations = it;
        stats->fixed_point = fixed_point;
    }
    // 3. canonical form: α1, α2 ≥ 0, |α1| ≥ |α2|; then the servable one of equivalent representations.
    ptqtp_canonicalize(n, a1, a2, t1, t2);
    if (ptqtp_prefer_servable(w, n, a1, a2, t1, t2, err) && stats && stats->trace) stats->errs.push_back(err);
    alpha[0] = a1;
    alpha[1] = a2;
}

int64_t ptqtp_serve_group(const double* w, int n, const double alpha[2], int8_t* t1, int8_t* t2, uint16_t scales_f16[2]) {
    for (int p = 0; p < 2; ++p) {
        scales_f16[p] = f64_to_f16(alpha[p]);
        if ((scales_f16[p] & 0x7c00) == 0x7c00)
            fail("PTQTP: a group scale " + std::to_string(alpha[p]) + " is outside the fp16 range (|α| > 65504)");
    }
    return ptqtp_topology(w, n, double(f16_to_f32(scales_f16[0])), double(f16_to_f32(scales_f16[1])), t1, t2);
}

namespace {

void check_shape(int64_t cols, int g, const char* what) {
    if (g != 32 && g != 64 && g != 128 && g != 256)
        fail(std::string(what) + ": group size must be 32, 64, 128 or 256 (got " + std::to_string(g) + ")");
    if (cols % g != 0) fail("group size " + std::to_string(g) + " does not divide " + std::to_string(cols) + " input columns");
}

// The served weight, as the tritplane format computes it (f32, both products exact, one rounding).
inline float served(float a1, float a2, int8_t t1, int8_t t2) { return a1 * float(t1) + a2 * float(t2); }

void summary_log(TritplaneQuantResult& res) {
    if (res.groups == 0) return;
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "%lld groups, %.2f iterations on average, %lld stopped at the cap, %lld ridge steps, %lld guard rejections, "
                  "%lld escapes from local minima",
                  (long long)res.groups, double(res.iterations) / double(res.groups), (long long)res.capped,
                  (long long)res.ridge_steps, (long long)res.guard_rejections, (long long)res.escapes);
    res.log.push_back(buf);
}

}  // namespace

TritplaneQuantResult ptqtp_quantize(const float* W, int64_t R, int64_t C, const PtqtpOptions& o) {
    const int g = o.group;
    check_shape(C, g, "PTQTP");
    const int64_t G = C / g;
    TritplaneQuantResult res;
    res.rows = R;
    res.cols = C;
    res.group = g;
    res.t1.resize(size_t(R * C));
    res.t2.resize(size_t(R * C));
    res.scales.resize(size_t(R * 2 * G));
    res.dequant.resize(size_t(R * C));
    double loss = 0;
    int64_t iters = 0, capped = 0, ridge = 0, rejected = 0, escapes = 0;
#pragma omp parallel reduction(+ : loss, iters, capped, ridge, rejected, escapes)
    {
        std::vector<double> w(static_cast<size_t>(g));
        PtqtpGroupStats st;
#pragma omp for schedule(dynamic, 64)
        for (int64_t k = 0; k < R * G; ++k) {
            const int64_t r = k / G, j = k % G;
            const float* src = W + r * C + j * g;
            for (int i = 0; i < g; ++i) w[size_t(i)] = double(src[i]);
            int8_t* t1 = res.t1.data() + r * C + j * g;
            int8_t* t2 = res.t2.data() + r * C + j * g;
            double alpha[2];
            ptqtp_fit_group(w.data(), g, o, alpha, t1, t2, &st);
            uint16_t* sc = res.scales.data() + r * 2 * G + 2 * j;
            ptqtp_serve_group(w.data(), g, alpha, t1, t2, sc);
            const float a1 = f16_to_f32(sc[0]), a2 = f16_to_f32(sc[1]);
            float* dq = res.dequant.data() + r * C + j * g;
            for (int i = 0; i < g; ++i) dq[i] = served(a1, a2, t1[i], t2[i]);
            loss += ptqtp_err(w.data(), g, double(a1), double(a2), t1, t2);
            iters += st.iterations;
            capped += st.iterations == o.max_iter && !st.fixed_point;
            ridge += st.ridge_steps;
            rejected += st.guard_rejections;
            escapes += st.escapes;
        }
    }
    res.loss = loss;
    res.groups = R * G;
    res.iterations = iters;
    res.capped = capped;
    res.ridge_steps = ridge;
    res.guard_rejections = rejected;
    res.escapes = escapes;
    summary_log(res);
    return res;
}

// ---- PTQTP-H --------------------------------------------------------------------------------------

namespace {

constexpr int8_t kPair1[9] = {0, 1, -1, 0, 0, 1, 1, -1, -1};
constexpr int8_t kPair2[9] = {0, 0, 0, 1, -1, 1, -1, 1, -1};

// One group of a chunk of nr rows in transposed layout ([position][row]), with the group's diagonal
// block Ug (g×g, upper triangular, row-major) of U.
struct GroupChunk {
    int g = 0;
    int64_t nr = 0;
    const double* Ug = nullptr;
    std::vector<double> w0;     // [g][nr] working weights at group start
    std::vector<double> work;   // [g][nr]
    std::vector<double> e;      // [g][nr] scaled errors of the last pass
    std::vector<int8_t> t1, t2; // [g][nr] trits of the last pass
    std::vector<double> loss;   // [nr]

    GroupChunk(int g_, int64_t nr_, const double* Ug_)
        : g(g_), nr(nr_), Ug(Ug_), w0(size_t(g_ * nr_)), work(size_t(g_ * nr_)), e(size_t(g_ * nr_)),
          t1(size_t(g_ * nr_)), t2(size_t(g_ * nr_)), loss(size_t(nr_)) {}

    // x·Ug = b for every row (b = x_in [g][nr], solved in place): column i's x is its b over Ug_ii, then
    // removed from the later columns — the GPTQ rank-1 update.
    void solve_rows(double* x) const {
        for (int i = 0; i < g; ++i) {
            double* xi = x + i * nr;
            const double dii = Ug[i * g + i];
            for (int64_t r = 0; r < nr; ++r) xi[r] /= dii;
            for (int k = i + 1; k < g; ++k) {
                const double u = Ug[i * g + k];
                double* xk = x + k * nr;
                for (int64_t r = 0; r < nr; ++r) xk[r] -= xi[r] * u;
            }
        }
    }

    // The sequential pass with per-row scales a1, a2: each weight rounded to its nearest level (9-way,
    // PTQTP's tie order), its scaled error propagated to the group's later columns. Sets t1, t2, e, loss.
    void pass(const double* a1, const double* a2) {
        std::copy(w0.begin(), w0.end(), work.begin());
        std::fill(loss.begin(), loss.end(), 0.0);
        std::vector<double> lv(size_t(9 * nr));
        for (int c = 0; c < 9; ++c)
            for (int64_t r = 0; r < nr; ++r) lv[size_t(c * nr + r)] = double(kPair1[c]) * a1[r] + double(kPair2[c]) * a2[r];
        for (int i = 0; i < g; ++i) {
            double* wi = work.data() + i * nr;
            double* ei = e.data() + i * nr;
            const double dii = Ug[i * g + i];
            for (int64_t r = 0; r < nr; ++r) {
                double d = wi[r] - lv[size_t(r)];
                double best = d * d;
                int bc = 0;
                for (int c = 1; c < 9; ++c) {
                    d = wi[r] - lv[size_t(c * nr + r)];
                    if (d * d < best) {
                        best = d * d;
                        bc = c;
                    }
                }
                t1[size_t(i * nr + r)] = kPair1[bc];
                t2[size_t(i * nr + r)] = kPair2[bc];
                const double ev = (wi[r] - lv[size_t(bc * nr + r)]) / dii;
                ei[r] = ev;
                loss[size_t(r)] += ev * ev;
            }
            for (int k = i + 1; k < g; ++k) {
                const double u = Ug[i * g + k];
                double* wk = work.data() + k * nr;
                for (int64_t r = 0; r < nr; ++r) wk[r] -= ei[r] * u;
            }
        }
    }
};

}  // namespace

TritplaneQuantResult ptqtp_h_quantize(const float* W, int64_t R, int64_t C, const double* H, const PtqtpHOptions& o) {
    const int g = o.fit.group;
    check_shape(C, g, "PTQTP-H");
    if (o.order != ColumnOrder::None && o.order != ColumnOrder::Gar)
        fail("PTQTP-H: column order must be none or gar (groups stay whole)");
    if (!H) fail("internal: PTQTP-H needs a Hessian");
    const int64_t G = C / g;
    TritplaneQuantResult res;
    res.rows = R;
    res.cols = C;
    res.group = g;

    // Dead inputs (H_ii = 0): weights zeroed, diagonal set to 1 (GPTQ.md §3 step 2).
    std::vector<double> Hd(H, H + C * C), diag(static_cast<size_t>(C));
    std::vector<char> dead(static_cast<size_t>(C), 0);
    for (int64_t i = 0; i < C; ++i) {
        if (Hd[size_t(i * C + i)] == 0.0) {
            Hd[size_t(i * C + i)] = 1.0;
            dead[size_t(i)] = 1;
        }
        diag[size_t(i)] = Hd[size_t(i * C + i)];
    }
    const std::vector<int64_t> perm = column_permutation(diag, g, o.order);
    std::vector<float> Wt(static_cast<size_t>(C * R));
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) Wt[size_t(t * R + r)] = dead[size_t(c)] ? 0.0f : W[r * C + c];
    }
    std::vector<double> Ud;
    {
        std::vector<double> Hp(static_cast<size_t>(C * C));
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) Hp[size_t(i * C + j)] = Hd[size_t(perm[size_t(i)] * C + perm[size_t(j)])];
        res.damp_used = damped_inverse_cholesky(Hp.data(), C, o.damp, Ud, res.log, "PTQTP-H");
    }
    std::vector<float> L(static_cast<size_t>(C * C));  // Uᵀ in f32 for the lazy block update
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j) L[size_t(j * C + i)] = float(Ud[size_t(i * C + j)]);

    std::vector<int8_t> t1t(static_cast<size_t>(C * R)), t2t(static_cast<size_t>(C * R));  // [position][row]
    std::vector<uint16_t> sc_t(static_cast<size_t>(G * R * 2));                            // [group position][row][2]
    std::vector<float> err(static_cast<size_t>(g * R));                                    // −e of the group, [i][row]
    double loss = 0;
    int64_t iters = 0, capped = 0, ridge = 0, rejected = 0, escapes = 0;
    const int64_t chunk = 32;
    std::vector<double> Ug(static_cast<size_t>(g * g));

    for (int64_t jp = 0; jp < G; ++jp) {
        const int64_t i1 = jp * g, i2 = i1 + g;
        for (int a = 0; a < g; ++a)
            for (int b = 0; b < g; ++b) Ug[size_t(a * g + b)] = b >= a ? Ud[size_t((i1 + a) * C + i1 + b)] : 0.0;
#pragma omp parallel reduction(+ : loss, iters, capped, ridge, rejected, escapes)
        {
            std::vector<double> w(static_cast<size_t>(g)), z0, z1, z2;
            std::vector<int8_t> f1(static_cast<size_t>(g)), f2(static_cast<size_t>(g));
            PtqtpGroupStats st;
#pragma omp for schedule(dynamic, 1)
            for (int64_t r0 = 0; r0 < R; r0 += chunk) {
                const int64_t nr = std::min(chunk, R - r0);
                GroupChunk gc(g, nr, Ug.data());
                for (int i = 0; i < g; ++i)
                    for (int64_t r = 0; r < nr; ++r) gc.w0[size_t(i * nr + r)] = double(Wt[size_t((i1 + i) * R + r0 + r)]);
                // Initial scales: plain PTQTP on the compensated working weights.
                std::vector<double> a1(static_cast<size_t>(nr)), a2(static_cast<size_t>(nr));
                for (int64_t r = 0; r < nr; ++r) {
                    for (int i = 0; i < g; ++i) w[size_t(i)] = gc.w0[size_t(i * nr + r)];
                    double al[2];
                    ptqtp_fit_group(w.data(), g, o.fit, al, f1.data(), f2.data(), &st);
                    a1[size_t(r)] = al[0];
                    a2[size_t(r)] = al[1];
                    iters += st.iterations;
                    capped += st.iterations == o.fit.max_iter && !st.fixed_point;
                    ridge += st.ridge_steps;
                    rejected += st.guard_rejections;
                    escapes += st.escapes;
                }
                gc.pass(a1.data(), a2.data());
                std::vector<double> best = gc.loss;
                if (o.alternations > 0) {
                    z0 = gc.w0;
                    gc.solve_rows(z0.data());
                }
                // Alternate: refit the scales in the metric of U for the last trits, re-run the pass.
                for (int alt = 0; alt < o.alternations; ++alt) {
                    z1.assign(size_t(g * nr), 0.0);
                    z2.assign(size_t(g * nr), 0.0);
                    for (size_t k = 0; k < z1.size(); ++k) {
                        z1[k] = gc.t1[k];
                        z2[k] = gc.t2[k];
                    }
                    gc.solve_rows(z1.data());
                    gc.solve_rows(z2.data());
                    std::vector<double> n1(static_cast<size_t>(nr)), n2(static_cast<size_t>(nr));
                    for (int64_t r = 0; r < nr; ++r) {
                        double s11 = 0, s12 = 0, s22 = 0, c1 = 0, c2 = 0;
                        for (int i = 0; i < g; ++i) {
                            const size_t k = size_t(i * nr + r);
                            s11 += z1[k] * z1[k];
                            s12 += z1[k] * z2[k];
                            s22 += z2[k] * z2[k];
                            c1 += z1[k] * z0[k];
                            c2 += z2[k] * z0[k];
                        }
                        double al[2];
                        ptqtp_solve2x2(s11, s12, s22, c1, c2, o.fit, al);
                        n1[size_t(r)] = al[0];
                        n2[size_t(r)] = al[1];
                    }
                    GroupChunk trial(g, nr, Ug.data());
                    trial.w0 = gc.w0;
                    trial.pass(n1.data(), n2.data());
                    bool improved = false;
                    for (int64_t r = 0; r < nr; ++r)
                        if (trial.loss[size_t(r)] < best[size_t(r)]) {
                            improved = true;
                            best[size_t(r)] = trial.loss[size_t(r)];
                            a1[size_t(r)] = n1[size_t(r)];
                            a2[size_t(r)] = n2[size_t(r)];
                            for (int i = 0; i < g; ++i) {  // the next refit starts from the best trits
                                gc.t1[size_t(i * nr + r)] = trial.t1[size_t(i * nr + r)];
                                gc.t2[size_t(i * nr + r)] = trial.t2[size_t(i * nr + r)];
                            }
                        }
                    if (!improved) break;
                }
                // Canonical form, fp16 scales, and the final pass with the served scales.
                for (int64_t r = 0; r < nr; ++r) {
                    double x1 = std::fabs(a1[size_t(r)]), x2 = std::fabs(a2[size_t(r)]);
                    if (x2 > x1) std::swap(x1, x2);
                    uint16_t* sc = sc_t.data() + (jp * R + r0 + r) * 2;
                    sc[0] = f64_to_f16(x1);
                    sc[1] = f64_to_f16(x2);
                    if ((sc[0] & 0x7c00) == 0x7c00) fail("PTQTP-H: a group scale is outside the fp16 range (|α| > 65504)");
                    a1[size_t(r)] = double(f16_to_f32(sc[0]));
                    a2[size_t(r)] = double(f16_to_f32(sc[1]));
                }
                gc.pass(a1.data(), a2.data());
                for (int i = 0; i < g; ++i)
                    for (int64_t r = 0; r < nr; ++r) {
                        const size_t k = size_t(i * nr + r), out = size_t((i1 + i) * R + r0 + r);
                        t1t[out] = gc.t1[k];
                        t2t[out] = gc.t2[k];
                        err[size_t(i * R + r0 + r)] = float(-gc.e[k]);
                    }
                for (int64_t r = 0; r < nr; ++r) loss += 0.5 * gc.loss[size_t(r)];
            }
        }
        // Lazy global update: W[:, i2:] −= Err · U[i1:i2, i2:]  (transposed: Wt[i2:] += L[i2:, i1:i2] · (−Err)).
        if (i2 < C)
            cpu::gemm_f32(C - i2, R, g, L.data() + i2 * C + i1, C, cpu::BOperand{err.data(), DType::F32, R, false},
                          Wt.data() + i2 * R, R, /*accumulate=*/true);
    }

    // Back to the original column and group order.
    res.t1.resize(size_t(R * C));
    res.t2.resize(size_t(R * C));
    res.scales.resize(size_t(R * 2 * G));
    res.dequant.resize(size_t(R * C));
    for (int64_t jp = 0; jp < G; ++jp) {
        const int64_t j = perm[size_t(jp * g)] / g;
        for (int64_t r = 0; r < R; ++r) {
            res.scales[size_t(r * 2 * G + 2 * j)] = sc_t[size_t((jp * R + r) * 2)];
            res.scales[size_t(r * 2 * G + 2 * j + 1)] = sc_t[size_t((jp * R + r) * 2 + 1)];
        }
    }
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) {
            res.t1[size_t(r * C + c)] = t1t[size_t(t * R + r)];
            res.t2[size_t(r * C + c)] = t2t[size_t(t * R + r)];
        }
    }
    for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) {
            const uint16_t* sc = res.scales.data() + r * 2 * G + 2 * (c / g);
            res.dequant[size_t(r * C + c)] = served(f16_to_f32(sc[0]), f16_to_f32(sc[1]), res.t1[size_t(r * C + c)], res.t2[size_t(r * C + c)]);
        }
    res.loss = loss;
    res.groups = R * G;
    res.iterations = iters;
    res.capped = capped;
    res.ridge_steps = ridge;
    res.guard_rejections = rejected;
    res.escapes = escapes;
    summary_log(res);
    return res;
}

// ---- the methods ------------------------------------------------------------------------------------

namespace {

FormatParams tp_params(const LayerSetting& s) { return FormatParams{2, s.group, false, false}; }

std::string check_ptqtp(const LayerSetting& s, int64_t rows, int64_t cols) { return kFormatTritplane.check(rows, cols, tp_params(s)); }

std::string check_ptqtp_h(const LayerSetting& s, int64_t rows, int64_t cols) {
    if (s.order != ColumnOrder::None && s.order != ColumnOrder::Gar) return "ptqtp-h: column order must be none or gar";
    return check_ptqtp(s, rows, cols);
}

double bpw_tritplane(const LayerSetting& s, int64_t rows, int64_t cols) {
    size_t bytes = 0;
    for (const PartSpec& part : kFormatTritplane.layout(rows, cols, tp_params(s))) bytes += part.nbytes();
    return 8.0 * double(bytes) / double(rows * cols);
}

LinearQuantResult to_linear(TritplaneQuantResult&& q) {
    LinearQuantResult r;
    r.weight = pack_tritplane(q.rows, q.cols, q.group, q.t1, q.t2, q.scales);
    r.dequant = std::move(q.dequant);
    r.proxy_loss = q.loss;
    r.damp_used = q.damp_used;
    r.log = std::move(q.log);
    return r;
}

LinearQuantResult run_ptqtp(const float* W, int64_t rows, int64_t cols, const double*, const LayerSetting& s) {
    PtqtpOptions o;
    o.group = s.group;
    return to_linear(ptqtp_quantize(W, rows, cols, o));
}

LinearQuantResult run_ptqtp_h(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s) {
    PtqtpHOptions o;
    o.fit.group = s.group;
    o.order = s.order;
    o.damp = s.damp;
    return to_linear(ptqtp_h_quantize(W, rows, cols, H, o));
}

}  // namespace

const QuantMethod kMethodPtqtp{"ptqtp",
                               "PTQTP: two ternary trit-planes + two fp16 scales per group, data-free alternating fit "
                               "(tritplane format, 3.5 bpw at g128)",
                               false, &check_ptqtp, &run_ptqtp, &bpw_tritplane, nullptr};
const QuantMethod kMethodPtqtpH{"ptqtp-h",
                                "PTQTP fitted to the GPTQ objective: per-group trit-plane fits in the metric of U with "
                                "GPTQ error propagation (needs --calib; tritplane format)",
                                true, &check_ptqtp_h, &run_ptqtp_h, &bpw_tritplane, nullptr};

}  // namespace planeq
