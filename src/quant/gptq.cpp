#include "quant/gptq.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "quant/linalg.hpp"
#include "quant/uniform_grid.hpp"

namespace planeq {

ColumnOrder parse_column_order(const std::string& s) {
    if (s == "none") return ColumnOrder::None;
    if (s == "gar") return ColumnOrder::Gar;
    if (s == "static") return ColumnOrder::Static;
    if (s == "dynamic") return ColumnOrder::Dynamic;
    fail("unknown column order '" + s + "' (none, gar, static, dynamic)");
}

std::string column_order_name(ColumnOrder o) {
    switch (o) {
        case ColumnOrder::None: return "none";
        case ColumnOrder::Gar: return "gar";
        case ColumnOrder::Static: return "static";
        case ColumnOrder::Dynamic: return "dynamic";
    }
    return "?";
}

std::vector<int64_t> column_permutation(const std::vector<double>& diag, int64_t group, ColumnOrder order) {
    const int64_t n = int64_t(diag.size());
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    // Stable sorts: equal diagonals keep their original order, so the result is deterministic.
    auto by_diag_desc = [&](int64_t a, int64_t b) { return diag[size_t(a)] > diag[size_t(b)]; };
    if (order == ColumnOrder::Static || order == ColumnOrder::Dynamic) {
        std::stable_sort(perm.begin(), perm.end(), by_diag_desc);
    } else if (order == ColumnOrder::Gar) {
        // Group-aware reordering: sort inside each group, then order whole groups by their largest diagonal.
        const int64_t groups = n / group;
        for (int64_t j = 0; j < groups; ++j)
            std::stable_sort(perm.begin() + j * group, perm.begin() + (j + 1) * group, by_diag_desc);
        std::vector<int64_t> gorder(static_cast<size_t>(groups));
        std::iota(gorder.begin(), gorder.end(), 0);
        std::stable_sort(gorder.begin(), gorder.end(),
                         [&](int64_t a, int64_t b) { return diag[size_t(perm[size_t(a * group)])] > diag[size_t(perm[size_t(b * group)])]; });
        std::vector<int64_t> out;
        out.reserve(size_t(n));
        for (int64_t j : gorder) out.insert(out.end(), perm.begin() + j * group, perm.begin() + (j + 1) * group);
        perm = std::move(out);
    }
    return perm;
}

double damped_inverse_cholesky(const double* H, int64_t n, double damp, std::vector<double>& U, std::vector<std::string>& log,
                               const std::string& what) {
    double mean_diag = 0, max_diag = 0;
    for (int64_t i = 0; i < n; ++i) {
        mean_diag += H[i * n + i];
        max_diag = std::max(max_diag, std::abs(H[i * n + i]));
    }
    mean_diag /= double(n);
    for (int64_t i = 0; i < n * n; ++i)
        if (!std::isfinite(H[i])) fail(what + ": the Hessian has non-finite entries (activations overflowed?)");

    // Retry policy of GPTQ.md §5: raise relative damping by 0.01 up to 10 times, then add an absolute floor.
    auto attempt = [&](double rel, double floor) {
        U.assign(H, H + n * n);
        for (int64_t i = 0; i < n; ++i) U[size_t(i * n + i)] += rel * mean_diag + floor;
        if (!cholesky_upper(U, n)) return false;
        inverse_from_cholesky(U, n);
        return cholesky_upper(U, n);
    };
    double rel = damp;
    for (int k = 0; k <= 10; ++k, rel += 0.01) {
        if (attempt(rel, 0.0)) return rel;
        log.push_back(what + ": Cholesky failed at damping " + std::to_string(rel) + ", retrying");
    }
    rel -= 0.01;
    for (int k = 0; k < 3; ++k) {
        const double floor = 1e-6 * max_diag * std::pow(10.0, k);
        if (attempt(rel, floor)) {
            log.push_back(what + ": succeeded with diagonal floor " + std::to_string(floor));
            return rel;
        }
    }
    fail(what + ": the Hessian is not positive definite even with damping " + std::to_string(rel) + " and a diagonal floor");
}

namespace {

// The per-row grid parameters of one group, from rows [r0, r1) of the working copy Wt (positions
// [t0, t0 + g), transposed layout [position][row]).
void fit_group(const UniformGrid& grid, const float* Wt, int64_t R, int64_t t0, int64_t g, int64_t r0, int64_t r1, GridParams* out) {
    for (int64_t r = r0; r < r1; ++r) {
        float lo = Wt[t0 * R + r], hi = lo;
        for (int64_t t = t0 + 1; t < t0 + g; ++t) {
            lo = std::min(lo, Wt[t * R + r]);
            hi = std::max(hi, Wt[t * R + r]);
        }
        out[r] = grid.fit(lo, hi);
    }
}

}  // namespace

IntQuantResult gptq_quantize(const float* W, int64_t R, int64_t C, const double* H, const GptqOptions& opt) {
    if (opt.bits < 2 || opt.bits > 8) fail("bits must be between 2 and 8, got " + std::to_string(opt.bits));
    if (opt.group <= 0 || C % opt.group != 0)
        fail("group size " + std::to_string(opt.group) + " does not divide " + std::to_string(C) + " input columns");
    const bool need_h = opt.compensate || opt.order != ColumnOrder::None;
    if (need_h && !H) fail("internal: this GPTQ configuration needs a Hessian");
    const int64_t g = opt.group, G = C / g;
    const int64_t B = opt.block > 0 ? opt.block : std::max<int64_t>(128, g);
    if (B % g != 0) fail("internal: GPTQ block must be a multiple of the group size");
    const UniformGrid grid{opt.bits, opt.sym};

    IntQuantResult res;
    res.rows = R;
    res.cols = C;

    // Dead inputs (H_ii = 0) carry no signal: their weights are zeroed and their diagonal set to 1.
    std::vector<double> Hd;
    std::vector<double> diag(static_cast<size_t>(C), 1.0);
    std::vector<char> dead(static_cast<size_t>(C), 0);
    if (H) {
        Hd.assign(H, H + C * C);
        for (int64_t i = 0; i < C; ++i) {
            if (Hd[size_t(i * C + i)] == 0.0) {
                Hd[size_t(i * C + i)] = 1.0;
                dead[size_t(i)] = 1;
            }
            diag[size_t(i)] = Hd[size_t(i * C + i)];
        }
    }
    const std::vector<int64_t> perm = column_permutation(diag, g, opt.order);

    // Working copy in permuted, transposed layout: Wt[t][r] = W[r][perm[t]]; a column is contiguous.
    std::vector<float> Wt(static_cast<size_t>(C * R));
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) Wt[size_t(t * R + r)] = dead[size_t(c)] ? 0.0f : W[r * C + c];
    }

    // U (upper Cholesky factor of the damped inverse Hessian, permuted) in f32, and L = Uᵀ for the
    // block update GEMM.
    std::vector<float> U, L;
    if (opt.compensate) {
        std::vector<double> Hp(static_cast<size_t>(C * C));
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) Hp[size_t(i * C + j)] = Hd[size_t(perm[size_t(i)] * C + perm[size_t(j)])];
        std::vector<double> Ud;
        res.damp_used = damped_inverse_cholesky(Hp.data(), C, opt.damp, Ud, res.log, "GPTQ");
        U.resize(size_t(C * C));
        L.resize(size_t(C * C));
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) {
                U[size_t(i * C + j)] = float(Ud[size_t(i * C + j)]);
                L[size_t(j * C + i)] = float(Ud[size_t(i * C + j)]);
            }
    }

    // Group parameters, indexed [group][row]. The stored group of position t: dynamic order groups by
    // position, every other order keeps the original contiguous groups (GAR moves whole groups).
    std::vector<GridParams> params(static_cast<size_t>(G * R));
    auto group_of = [&](int64_t t) { return opt.order == ColumnOrder::Dynamic ? t / g : perm[size_t(t)] / g; };
    if (opt.order == ColumnOrder::Static) {  // from the un-permuted original weights, before the loop
        std::vector<float> orig(static_cast<size_t>(C * R));
        for (int64_t c = 0; c < C; ++c)
            for (int64_t r = 0; r < R; ++r) orig[size_t(c * R + r)] = dead[size_t(c)] ? 0.0f : W[r * C + c];
        for (int64_t j = 0; j < G; ++j) fit_group(grid, orig.data(), R, j * g, g, 0, R, params.data() + j * R);
    }

    std::vector<uint8_t> codes_t(static_cast<size_t>(C * R));
    std::vector<float> q_t(static_cast<size_t>(C * R));
    std::vector<float> err(static_cast<size_t>(B * R));  // −e for the current block, [t − i1][r]
    double loss = 0;
    const int64_t row_chunk = 64;

    std::vector<float> w_start;  // only for opt.trace
    for (int64_t i1 = 0; i1 < C; i1 += B) {
        const int64_t i2 = std::min(C, i1 + B);
        if (opt.trace) w_start.assign(Wt.begin() + i1 * R, Wt.begin() + i2 * R);
#pragma omp parallel for schedule(dynamic) reduction(+ : loss)
        for (int64_t r0 = 0; r0 < R; r0 += row_chunk) {
            const int64_t r1 = std::min(R, r0 + row_chunk);
            for (int64_t t = i1; t < i2; ++t) {
                GridParams* p = params.data() + group_of(t) * R;
                if (opt.order != ColumnOrder::Static && t % g == 0) fit_group(grid, Wt.data(), R, t, g, r0, r1, p);
                const float d = opt.compensate ? U[size_t(t * C + t)] : 1.0f;
                float* w = Wt.data() + t * R;
                float* e = err.data() + (t - i1) * R;
                for (int64_t r = r0; r < r1; ++r) {
                    const uint8_t q = grid.code(w[r], p[r]);
                    const float qhat = UniformGrid::value(q, p[r]);
                    codes_t[size_t(t * R + r)] = q;
                    q_t[size_t(t * R + r)] = qhat;
                    const float et = (w[r] - qhat) / d;
                    e[r] = -et;
                    loss += 0.5 * double(et) * double(et);
                }
                if (!opt.compensate) continue;
                // Rank-1 update of the rest of the block: W1[:, j] −= e · U[t, j].
                for (int64_t j = t + 1; j < i2; ++j) {
                    const float u = U[size_t(t * C + j)];
                    float* wj = Wt.data() + j * R;
                    for (int64_t r = r0; r < r1; ++r) wj[r] += e[r] * u;
                }
            }
        }
        if (opt.trace) {
            std::vector<float> e_pos(err.begin(), err.begin() + (i2 - i1) * R);
            for (float& v : e_pos) v = -v;
            opt.trace(i1, i2, w_start.data(), q_t.data() + i1 * R, e_pos.data(), U.data());
        }
        // Lazy global update: W[:, i2:] −= Err1 · U[i1:i2, i2:]  (transposed: Wt[i2:] += L[i2:, i1:i2] · (−Err1)).
        if (opt.compensate && i2 < C)
            cpu::gemm_f32(C - i2, R, i2 - i1, L.data() + i2 * C + i1, C, cpu::BOperand{err.data(), DType::F32, R, false},
                          Wt.data() + i2 * R, R, /*accumulate=*/true);
    }
    res.loss = opt.compensate ? loss : 0.0;

    // Back to the original column order and row-major layout.
    res.codes.resize(size_t(R * C));
    res.dequant.resize(size_t(R * C));
    for (int64_t t = 0; t < C; ++t) {
        const int64_t c = perm[size_t(t)];
        for (int64_t r = 0; r < R; ++r) {
            res.codes[size_t(r * C + c)] = codes_t[size_t(t * R + r)];
            res.dequant[size_t(r * C + c)] = q_t[size_t(t * R + r)];
        }
    }
    res.scales.resize(size_t(R * G));
    res.zeros.resize(size_t(R * G));
    for (int64_t j = 0; j < G; ++j)
        for (int64_t r = 0; r < R; ++r) {
            res.scales[size_t(r * G + j)] = f32_to_f16(params[size_t(j * R + r)].scale);
            res.zeros[size_t(r * G + j)] = params[size_t(j * R + r)].zero;
        }
    if (opt.order == ColumnOrder::Dynamic) {
        res.g_idx.resize(size_t(C));
        for (int64_t t = 0; t < C; ++t) res.g_idx[size_t(perm[size_t(t)])] = int32_t(t / g);
    }
    return res;
}

}  // namespace planeq
