#include "alloc/nsds.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "alloc/stats.hpp"
#include "core/error.hpp"

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace planeq::alloc {

const char* component_name(int c) {
    static const char* names[] = {"qk", "ov", "up", "gate", "down"};
    return c >= 0 && c < kComponents ? names[c] : "?";
}

double NsdsResult::component_score(int64_t layer, Component c) const {
    const NsdsLayer& l = layers[size_t(layer)];
    return 1.0 - std::sqrt((1.0 - l.s_nv[c]) * (1.0 - l.s_se[c]));
}

namespace {

double vec_kurtosis(const Eigen::Ref<const Eigen::VectorXd>& x) {
    return excess_kurtosis(std::span<const double>(x.data(), size_t(x.size())));
}

}  // namespace

double detector_alpha(const Eigen::Ref<const Eigen::VectorXd>& v) { return std::log1p(std::max(0.0, vec_kurtosis(v))); }

double qk_alpha(const Eigen::Ref<const Eigen::VectorXd>& u, const Eigen::Ref<const Eigen::VectorXd>& v) {
    return std::log1p(std::max(0.0, vec_kurtosis(u)) * std::max(0.0, vec_kurtosis(v)));
}

double writer_alpha(const MatrixD& p_u, const Eigen::Ref<const Eigen::VectorXd>& u) { return (p_u.transpose() * u).norm(); }

double structural_score(const std::vector<double>& s, const std::vector<double>& alpha) {
    std::vector<double> w(s.size());
    double total = 0;
    for (size_t i = 0; i < s.size(); ++i) total += w[i] = s[i] * alpha[i];
    if (!(total > 0)) return 0;  // the code divides 0 by e^0 = 1 anyway; a zero spectrum scores 0
    return total / std::exp(entropy_of(w));
}

namespace {

struct Raw {
    double nv = 0, se = 0;
};

// A component's SE from its descending spectrum (s², vectors as columns) and a role weight per vector.
template <class Alpha>
double se_of(const std::vector<double>& s2, Alpha&& alpha_of) {
    const int64_t k = energy_rank_sq(s2);
    std::vector<double> s(static_cast<size_t>(k)), a(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
        s[size_t(i)] = std::sqrt(s2[size_t(i)]);
        a[size_t(i)] = alpha_of(i);
    }
    return structural_score(s, a);
}

// The f32 weights of one block, dequantized once for all its tasks.
struct BlockWeights {
    std::vector<float> q, k, v, o, gate, up, down;
};

std::vector<float> dense(const Linear& l) {
    std::vector<float> w(size_t(l.weight.rows * l.weight.cols));
    if (!w.empty()) l.weight.dequantize(w.data());
    return w;
}

// Head h's circuit factors (NSDS.md §2): QK = A Bᵀ with A = (W_Q^h)ᵀ, B = (W_K^h)ᵀ; OV = A Bᵀ with A = W_O^h,
// B = (W_V^h)ᵀ; all d×d_h.
MatrixD rows_transposed(const std::vector<float>& w, int64_t cols, int64_t r0, int64_t n) {
    MatrixD a(cols, n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < cols; ++c) a(c, i) = double(w[size_t((r0 + i) * cols + c)]);
    return a;
}
MatrixD column_block(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t c0, int64_t n) {
    MatrixD a(rows, n);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) a(r, i) = double(w[size_t(r * cols + c0 + i)]);
    return a;
}

Raw head_circuit(const MatrixD& a, const MatrixD& b, bool qk, const MatrixD& p_u) {
    Raw r;
    r.nv = product_kurtosis(a, b);
    const ThinSvd t = thin_svd_of_product(a, b);
    std::vector<double> s2(t.s.size());
    for (size_t i = 0; i < s2.size(); ++i) s2[i] = t.s[i] * t.s[i];
    r.se = se_of(s2, [&](int64_t i) { return qk ? qk_alpha(t.u.col(i), t.v.col(i)) : writer_alpha(p_u, t.u.col(i)); });
    return r;
}

Raw mlp_matrix(const std::vector<float>& w, int64_t rows, int64_t cols, Component c, const MatrixD& p_u) {
    Raw r;
    r.nv = excess_kurtosis(std::span<const float>(w));
    if (c == kDown) {  // writer: left (output, R^d) singular vectors
        const Spectrum sp = left_singular(w.data(), rows, cols);
        r.se = se_of(sp.s2, [&](int64_t i) { return writer_alpha(p_u, sp.vectors.col(i)); });
    } else {  // detector: right (input, R^d) singular vectors
        const Spectrum sp = right_singular(w.data(), rows, cols);
        r.se = se_of(sp.s2, [&](int64_t i) { return detector_alpha(sp.vectors.col(i)); });
    }
    return r;
}

// BLAS and LAPACK single-threaded while NSDS runs its own parallel loop over matrices: no oversubscription,
// and the result cannot depend on how many threads BLAS would have used.
struct BlasSingleThread {
    int saved = openblas_get_num_threads();
    BlasSingleThread() { openblas_set_num_threads(1); }
    ~BlasSingleThread() { openblas_set_num_threads(saved); }
};

}  // namespace

NsdsResult nsds_scores(const Model& m) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = m.config;
    const int64_t L = c.n_layers, d = c.hidden, hd = c.head_dim, nh = c.n_heads, nkv = c.n_kv_heads, I = c.intermediate;
    if (d < 4 || hd < 1) fail("NSDS: hidden size " + std::to_string(d) + " is too small for kurtosis to mean anything");
    if (nkv <= 0 || nh % nkv != 0) fail("NSDS: " + std::to_string(nh) + " heads do not split into " + std::to_string(nkv) + " KV groups");
    BlasSingleThread single;

    // Unembedding subspace P_U: top-k_U right singular vectors of W_U (the embedding when tied).
    NsdsResult res;
    MatrixD p_u;
    {
        std::vector<float> wu = dense(m.lm_head);
        const Spectrum sp = right_singular(wu.data(), m.lm_head.weight.rows, d);
        res.k_unembed = energy_rank_sq(sp.s2);
        p_u = sp.vectors.leftCols(res.k_unembed);
    }

    const int64_t group = nh / nkv;
    const bool has_gate = !m.blocks.empty() && m.blocks[0].gate.weight.rows > 0;
    // Tasks of one block: 2 per head, then up, gate, down (the heavy ones first for load balance).
    struct Task {
        Component c;
        int64_t head;
    };
    std::vector<Task> tasks = {{kUp, -1}, {kDown, -1}};
    if (has_gate) tasks.insert(tasks.begin() + 1, Task{kGate, -1});
    for (int64_t h = 0; h < nh; ++h) tasks.push_back({kQK, h}), tasks.push_back({kOV, h});

    std::vector<std::array<double, kComponents>> nv(static_cast<size_t>(L)), se(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) {
        const Block& b = m.blocks[size_t(l)];
        BlockWeights w;
        {
            const Linear* ls[] = {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down};
            std::vector<float>* outs[] = {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down};
#pragma omp parallel for schedule(dynamic)
            for (int i = 0; i < 7; ++i) *outs[i] = dense(*ls[i]);
        }
        std::vector<Raw> raw(tasks.size());
#pragma omp parallel for schedule(dynamic)
        for (size_t t = 0; t < tasks.size(); ++t) {
            const Task& tk = tasks[t];
            const int64_t h = tk.head;
            switch (tk.c) {
                case kQK: raw[t] = head_circuit(rows_transposed(w.q, d, h * hd, hd), rows_transposed(w.k, d, (h / group) * hd, hd), true, p_u); break;
                case kOV: raw[t] = head_circuit(column_block(w.o, d, nh * hd, h * hd, hd), rows_transposed(w.v, d, (h / group) * hd, hd), false, p_u); break;
                case kUp: raw[t] = mlp_matrix(w.up, I, d, kUp, p_u); break;
                case kGate: raw[t] = mlp_matrix(w.gate, I, d, kGate, p_u); break;
                case kDown: raw[t] = mlp_matrix(w.down, d, I, kDown, p_u); break;
                default: break;
            }
        }
        // Reduce in task order (fixed): heads are averaged.
        nv[size_t(l)].fill(0);
        se[size_t(l)].fill(0);
        for (size_t t = 0; t < tasks.size(); ++t) {
            const double scale = tasks[t].head >= 0 ? 1.0 / double(nh) : 1.0;
            nv[size_t(l)][tasks[t].c] += raw[t].nv * scale;
            se[size_t(l)][tasks[t].c] += raw[t].se * scale;
        }
    }

    // Normalise each (component, score) across layers; skip types the model lacks or that score 0 everywhere.
    res.layers.resize(static_cast<size_t>(L));
    std::array<bool, kComponents> nv_on{}, se_on{};
    for (int ct = 0; ct < kComponents; ++ct) {
        std::vector<double> xn(static_cast<size_t>(L)), xs(static_cast<size_t>(L));
        for (int64_t l = 0; l < L; ++l) {
            xn[size_t(l)] = nv[size_t(l)][ct];
            xs[size_t(l)] = se[size_t(l)][ct];
        }
        const bool exists = ct != kGate || has_gate;
        nv_on[ct] = exists && std::any_of(xn.begin(), xn.end(), [](double v) { return v != 0; });
        se_on[ct] = exists && std::any_of(xs.begin(), xs.end(), [](double v) { return v != 0; });
        res.present[ct] = exists;
        const auto sn = mad_sigmoid(xn), ss = mad_sigmoid(xs);
        for (int64_t l = 0; l < L; ++l) {
            NsdsLayer& o = res.layers[size_t(l)];
            o.raw_nv[ct] = xn[size_t(l)];
            o.raw_se[ct] = xs[size_t(l)];
            o.s_nv[ct] = sn[size_t(l)];
            o.s_se[ct] = ss[size_t(l)];
        }
    }
    std::vector<double> fused(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) {
        NsdsLayer& o = res.layers[size_t(l)];
        std::vector<double> a, b;
        for (int ct = 0; ct < kComponents; ++ct) {
            if (nv_on[ct]) a.push_back(o.s_nv[ct]);
            if (se_on[ct]) b.push_back(o.s_se[ct]);
        }
        o.nv = soft_or(a);
        o.se = soft_or(b);
        o.nsds = 1.0 - std::exp(0.5 * (std::log(1.0 - o.nv) + std::log(1.0 - o.se)));
        fused[size_t(l)] = o.nsds;
    }
    res.ranking = rank_descending(fused);
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace planeq::alloc
