#include "eval/sinks.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "model/forward.hpp"

namespace planeq {

namespace {

double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    const size_t h = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + long(h), v.end());
    if (v.size() % 2) return v[h];
    const double hi = v[h];
    return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + long(h)));
}

}  // namespace

SinkReport sink_report(const Model& m, const std::vector<std::vector<int32_t>>& windows, const SinkReportOptions& opt,
                       const SinkProgress& progress) {
    const ModelConfig& c = m.config;
    if (windows.empty()) fail("no windows to analyse");
    const int64_t T = int64_t(windows.front().size());
    if (T < 3) fail("sink diagnostics need windows of at least 3 tokens");
    const int64_t L = c.n_layers, H = c.n_heads, hd = c.head_dim, qd = c.q_dim(), kvd = c.kv_dim(), d = c.hidden;
    const int64_t group = H / c.n_kv_heads;
    const float scale = 1.0f / std::sqrt(float(hd));

    SinkReport rep;
    rep.ctx = T;
    rep.samples = int64_t(windows.size());
    rep.layers.resize(size_t(L));
    // Sums over samples: m(j) per (l, h, j), r(0), sink counts, norms.
    std::vector<double> m_sum(size_t(L * H * T), 0.0), r0_sum(size_t(L * H), 0.0), sinks(size_t(L * H), 0.0);
    std::vector<double> kn_sum(size_t(L * H), 0.0), vn_sum(size_t(L * H), 0.0);
    std::vector<std::vector<MassiveActivation>> tops(static_cast<size_t>(L));
    std::vector<double> med_sum(size_t(L), 0.0);

    ForwardBuffers buf(c, T);
    std::vector<float> A(static_cast<size_t>(H * T * T));
    std::vector<double> col(static_cast<size_t>(H * T)), col_excl(static_cast<size_t>(H * T));
    m.rope.reserve(T);
    for (size_t s = 0; s < windows.size(); ++s) {
        if (int64_t(windows[s].size()) != T) fail("internal: sink windows differ in length");
        float* x = buf.x.data();
        m.embed_tokens(windows[s].data(), T, x);
        for (int64_t l = 0; l < L; ++l) {
            const Block& b = m.blocks[size_t(l)];
            rmsnorm(x, b.attn_norm.data(), T, d, c.rms_eps, buf.h.data());
            b.q.forward(buf.h.data(), T, buf.q.data());
            b.k.forward(buf.h.data(), T, buf.k.data());
            b.v.forward(buf.h.data(), T, buf.v.data());
            norm_and_rotate(m, b.q_norm, buf.q.data(), T, H, 0);
            norm_and_rotate(m, b.k_norm, buf.k.data(), T, c.n_kv_heads, 0);
            // Reference attention: A = softmax(causal(q kᵀ)/√d) explicitly, then A·v.
            parallel_for(H, true, [&](int64_t h) {
                const int64_t kvh = h / group;
                float* a = A.data() + h * T * T;
                cpu::gemm_f32(T, T, hd, buf.q.data() + h * hd, qd, cpu::BOperand{buf.k.data() + kvh * hd, DType::F32, kvd, true}, a, T,
                              false, 1);
                double* cs = col.data() + h * T;
                double* ce = col_excl.data() + h * T;
                std::fill(cs, cs + T, 0.0);
                std::fill(ce, ce + T, 0.0);
                for (int64_t i = 0; i < T; ++i) {
                    float* row = a + i * T;
                    double mx = -1e300;
                    for (int64_t j = 0; j <= i; ++j) mx = std::max(mx, double(row[j]) * scale);
                    double z = 0;
                    for (int64_t j = 0; j <= i; ++j) z += std::exp(double(row[j]) * scale - mx);
                    for (int64_t j = 0; j <= i; ++j) {
                        const double p = std::exp(double(row[j]) * scale - mx) / z;
                        row[j] = float(p);
                        cs[j] += p;
                        if (j < i) ce[j] += p;
                    }
                    std::fill(row + i + 1, row + T, 0.0f);
                }
                cpu::gemm_f32(T, hd, T, a, T, cpu::BOperand{buf.v.data() + kvh * hd, DType::F32, kvd, false}, buf.attn.data() + h * hd, qd,
                              false, 1);
            });
            for (int64_t h = 0; h < H; ++h) {
                const double* cs = col.data() + h * T;
                const double* ce = col_excl.data() + h * T;
                double rows = 0;
                for (int64_t j = 0; j < T; ++j) rows += cs[j];  // = Σ_j (T − j)·r(j)
                rep.max_row_sum_error = std::max(rep.max_row_sum_error, std::abs(rows - double(T)) / double(T));
                const double r0 = cs[0] / double(T);
                r0_sum[size_t(l * H + h)] += r0;
                sinks[size_t(l * H + h)] += r0 > opt.eps ? 1.0 : 0.0;
                for (int64_t j = 0; j + 1 < T; ++j) m_sum[size_t((l * H + h) * T + j)] += ce[j] / double(T - 1 - j);
                // Key/value norms of position 0 against the median over positions (this head's KV head).
                const int64_t kvh = h / group;
                std::vector<double> kn(static_cast<size_t>(T)), vn(static_cast<size_t>(T));
                for (int64_t t = 0; t < T; ++t) {
                    double a2 = 0, b2 = 0;
                    for (int64_t i = 0; i < hd; ++i) {
                        const double kk = buf.k[size_t(t * kvd + kvh * hd + i)], vv = buf.v[size_t(t * kvd + kvh * hd + i)];
                        a2 += kk * kk, b2 += vv * vv;
                    }
                    kn[size_t(t)] = std::sqrt(a2), vn[size_t(t)] = std::sqrt(b2);
                }
                const double k0 = kn[0], v0 = vn[0];
                const double km = median_of(kn), vm = median_of(vn);
                kn_sum[size_t(l * H + h)] += km > 0 ? k0 / km : 0;
                vn_sum[size_t(l * H + h)] += vm > 0 ? v0 / vm : 0;
            }
            b.o.forward(buf.attn.data(), T, buf.h.data());
            for (int64_t i = 0; i < T * d; ++i) x[i] += buf.h[size_t(i)];
            ffn_block(m, l, x, T, buf);

            // Massive activations in the residual stream after block l.
            std::vector<double> absx(static_cast<size_t>(T * d));
            for (int64_t i = 0; i < T * d; ++i) absx[size_t(i)] = std::abs(double(x[i]));
            const double med = median_of(absx);
            med_sum[size_t(l)] += med;
            LayerSinkStats& ls = rep.layers[size_t(l)];
            for (int64_t t = 0; t < T; ++t) {
                const double* r = absx.data() + t * d;
                const int64_t ch = std::max_element(r, r + d) - r;
                const double rho = med > 0 ? r[ch] / med : 0;
                ls.rho_max = std::max(ls.rho_max, rho);
                if (rho > opt.tau_ma) ++ls.flagged;
                tops[size_t(l)].push_back({double(x[t * d + ch]), rho, int64_t(s), t, ch});
            }
            auto& tp = tops[size_t(l)];
            std::sort(tp.begin(), tp.end(), [](const auto& a, const auto& b) { return std::abs(a.value) > std::abs(b.value); });
            if (tp.size() > size_t(opt.top_activations)) tp.resize(size_t(opt.top_activations));
        }
        if (progress) progress(int64_t(s + 1), rep.samples);
    }

    const double S = double(rep.samples);
    double all_sinks = 0;
    for (int64_t l = 0; l < L; ++l) {
        LayerSinkStats& ls = rep.layers[size_t(l)];
        ls.heads.resize(size_t(H));
        ls.median_abs = med_sum[size_t(l)] / S;
        ls.top = tops[size_t(l)];
        for (int64_t h = 0; h < H; ++h) {
            HeadSinkStats& hs = ls.heads[size_t(h)];
            const double* ms = m_sum.data() + (l * H + h) * T;
            hs.m0 = ms[0] / S;
            hs.r0 = r0_sum[size_t(l * H + h)] / S;
            hs.sink_ratio = sinks[size_t(l * H + h)] / S;
            hs.k_norm0 = kn_sum[size_t(l * H + h)] / S;
            hs.v_norm0 = vn_sum[size_t(l * H + h)] / S;
            std::vector<int64_t> order(static_cast<size_t>(T - 1));
            std::iota(order.begin(), order.end(), 0);
            const int top = int(std::min<int64_t>(opt.top, T - 1));
            std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int64_t a, int64_t b) { return ms[a] > ms[b]; });
            for (int i = 0; i < top; ++i) hs.top_pos.push_back(order[size_t(i)]), hs.top_share.push_back(ms[order[size_t(i)]] / S);
            ls.mean_m0 += hs.m0 / double(H);
            ls.sink_ratio += hs.sink_ratio / double(H);
            all_sinks += sinks[size_t(l * H + h)];
        }
    }
    rep.sink_ratio = all_sinks / (S * double(L * H));
    return rep;
}

nlohmann::json SinkReport::to_json() const {
    nlohmann::json ls = nlohmann::json::array();
    for (size_t l = 0; l < layers.size(); ++l) {
        const LayerSinkStats& L = layers[l];
        nlohmann::json hs = nlohmann::json::array();
        for (const HeadSinkStats& h : L.heads)
            hs.push_back({{"m0", h.m0}, {"r0", h.r0}, {"sink_ratio", h.sink_ratio}, {"top_positions", h.top_pos}, {"top_share", h.top_share},
                          {"k_norm0_over_median", h.k_norm0}, {"v_norm0_over_median", h.v_norm0}});
        nlohmann::json top = nlohmann::json::array();
        for (const MassiveActivation& a : L.top)
            top.push_back({{"value", a.value}, {"rho", a.rho}, {"sample", a.sample}, {"token", a.token}, {"channel", a.channel}});
        ls.push_back({{"layer", l}, {"mean_m0", L.mean_m0}, {"sink_ratio", L.sink_ratio}, {"rho_max", L.rho_max},
                      {"median_abs_hidden", L.median_abs}, {"massive_flagged", L.flagged}, {"massive_top", top}, {"heads", hs}});
    }
    return {{"ctx", ctx}, {"samples", samples}, {"sink_ratio", sink_ratio}, {"max_row_sum_error", max_row_sum_error}, {"layers", ls}};
}

}  // namespace planeq
