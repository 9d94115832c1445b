#include "alloc/lieq.hpp"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "alloc/spectral.hpp"
#include "alloc/stats.hpp"
#include "core/error.hpp"
#include "eval/perplexity.hpp"
#include "formats/dense.hpp"
#include "model/forward.hpp"
#include "model/synthetic.hpp"
#include "quant/calibration.hpp"

namespace planeq::alloc {

double compactness(std::span<const double> eig) {
    std::vector<double> l(eig.begin(), eig.end());
    for (double& v : l) v = std::max(0.0, v);
    return std::exp(-entropy_of(l));
}

double topk_energy(std::span<const double> eig_desc, int64_t k) {
    double total = 0, top = 0;
    for (size_t i = 0; i < eig_desc.size(); ++i) {
        const double v = std::max(0.0, eig_desc[i]);
        total += v;
        if (int64_t(i) < k) top += v;
    }
    return total > 0 ? top / total : 0.0;
}

void CompactnessAccumulator::add(const float* z, int64_t n) {
    std::vector<double> zd(size_t(n * dim));
    int64_t kept = 0;
    for (int64_t t = 0; t < n; ++t) {
        const float* row = z + t * dim;
        double mean = 0;
        for (int64_t i = 0; i < dim; ++i) mean += row[i];
        mean /= double(dim);
        double* out = zd.data() + kept * dim;
        double ss = 0;
        for (int64_t i = 0; i < dim; ++i) {
            out[i] = double(row[i]) - mean;
            ss += out[i] * out[i];
        }
        const double norm = std::sqrt(ss);
        if (!(norm >= 1e-12)) {  // constant (or non-finite) token row: no direction to speak of
            ++skipped;
            continue;
        }
        for (int64_t i = 0; i < dim; ++i) out[i] /= norm;
        ++kept;
    }
    if (kept > 0)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(dim), int(kept), 1.0, zd.data(), int(dim), 1.0, a.data(), int(dim));
    rows += kept;
}

std::vector<double> CompactnessAccumulator::eigenvalues() const {
    std::vector<double> s(a);
    for (int64_t i = 0; i < dim; ++i)
        for (int64_t j = 0; j < dim; ++j) s[size_t(i * dim + j)] = a[size_t(std::min(i, j) * dim + std::max(i, j))] / double(dim);
    return symmetric_eig(std::move(s), dim, false).s2;
}

namespace {

// f32 N(0, σ²) weight; every row has its own generator, so rows fill in parallel and the result does not
// depend on the thread count.
PackedWeight normal_f32(int64_t rows, int64_t cols, double sigma, uint64_t seed) {
    auto buf = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols) * 4);
    float* p = reinterpret_cast<float*>(buf->data());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        PortableRng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r) * 0xbf58476d1ce4e5b9ull + 1);
        for (int64_t c = 0; c < cols; ++c) p[r * cols + c] = float(sigma * rng.normal());
    }
    PackedWeight w;
    w.format = &kFormatF32;
    w.rows = rows;
    w.cols = cols;
    w.params.bits = 32;
    w.parts.push_back(WeightPart{PartSpec{"weight", DType::F32, {rows, cols}}, buf->data()});
    w.owned.push_back(buf);
    return w;
}

}  // namespace

std::unique_ptr<Model> random_init_model(const ModelConfig& c, double sigma, uint64_t seed) {
    uint64_t tensor = 0;
    const uint64_t base = seed * 1000003ull + 17;
    auto m = synthetic_model(
        c, [&](const std::string&, int64_t rows, int64_t cols) { return normal_f32(rows, cols, sigma, base + ++tensor); }, seed);
    m->embed = normal_f32(c.vocab, c.hidden, sigma, base + 999983ull);
    m->lm_head.weight = c.tie_embeddings ? m->embed : normal_f32(c.vocab, c.hidden, sigma, base + 999979ull);
    return m;
}

namespace {

// Runs the segments through m and returns the descending eigenvalues of A for every (layer, q/k/v).
std::vector<std::array<std::vector<double>, 3>> projection_spectra(const Model& m, const std::vector<std::vector<int32_t>>& segs,
                                                                   int64_t& skipped, const std::function<void()>& tick) {
    const ModelConfig& c = m.config;
    const int64_t L = c.n_layers, n = int64_t(segs.front().size()), d = c.hidden;
    std::vector<std::array<CompactnessAccumulator, 3>> acc(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) acc[size_t(l)] = {CompactnessAccumulator(c.q_dim()), CompactnessAccumulator(c.kv_dim()),
                                                      CompactnessAccumulator(c.kv_dim())};
    ForwardBuffers buf(c, n);
    KVCache cache(c, n);
    m.rope.reserve(n);
    std::vector<float> x(size_t(n * d)), z(size_t(n * std::max(c.q_dim(), c.kv_dim())));
    for (const auto& seg : segs) {
        m.embed_tokens(seg.data(), n, x.data());
        for (int64_t l = 0; l < L; ++l) {
            const Block& b = m.blocks[size_t(l)];
            // h_l: block l's input after its attention RMSNorm (LIEQ.md §3(b)2; the proxy code's off-by-one fixed).
            rmsnorm(x.data(), b.attn_norm.data(), n, d, c.rms_eps, buf.h.data());
            for (int64_t i = 0; i < n * d; ++i)
                if (!std::isfinite(buf.h[size_t(i)]))
                    fail("LieQ: non-finite activations entering block " + std::to_string(l) + " (random-init model overflowed?)");
            const Linear* ps[3] = {&b.q, &b.k, &b.v};
            for (int p = 0; p < 3; ++p) {
                ps[p]->forward(buf.h.data(), n, z.data());
                acc[size_t(l)][size_t(p)].add(z.data(), n);
            }
            block_forward(m, l, x.data(), n, 0, cache, buf);
        }
        if (tick) tick();
    }
    std::vector<std::array<std::vector<double>, 3>> out(static_cast<size_t>(L));
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < L * 3; ++i) out[size_t(i / 3)][size_t(i % 3)] = acc[size_t(i / 3)][size_t(i % 3)].eigenvalues();
    for (const auto& a : acc)
        for (const auto& p : a) skipped += p.skipped;
    return out;
}

// Mean NLL per window (full-window scoring) with block `skip` left out (−1: none), from stored block inputs.
double window_nll(const Model& m, const std::vector<float>& inputs, const std::vector<int32_t>& seg, int64_t skip, ForwardBuffers& buf,
                  KVCache& cache, std::vector<float>& logits) {
    const ModelConfig& c = m.config;
    const int64_t L = c.n_layers, n = int64_t(seg.size()), d = c.hidden;
    const int64_t start = skip < 0 ? L : skip + 1;  // x_{skip+1} := x_skip, then the rest of the blocks
    std::vector<float> x(inputs.begin() + (skip < 0 ? L : skip) * n * d, inputs.begin() + ((skip < 0 ? L : skip) + 1) * n * d);
    for (int64_t l = start; l < L; ++l) block_forward(m, l, x.data(), n, 0, cache, buf);
    rmsnorm(x.data(), m.final_norm.data(), n, d, c.rms_eps, buf.h.data());
    m.lm_head.forward(buf.h.data(), n, logits.data());
    std::vector<double> nll(static_cast<size_t>(n - 1));
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n - 1; ++p) nll[size_t(p)] = token_nll(logits.data() + p * c.vocab, c.vocab, seg[size_t(p + 1)]);
    double s = 0;
    for (double v : nll) s += v;
    return s;
}

}  // namespace

LieqResult lieq_scores(const Model& m, std::span<const int32_t> calib_ids, int32_t bos, const LieqOptions& opt,
                       const AllocProgress& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = m.config;
    const int64_t L = c.n_layers, d = c.hidden;
    if (int64_t(calib_ids.size()) < opt.seg_len + 1)
        fail("LieQ: the calibration text has " + std::to_string(calib_ids.size()) + " tokens, fewer than one segment of " +
             std::to_string(opt.seg_len));
    const auto segs = calibration_segments(calib_ids, opt.segments, opt.seg_len, opt.seed, bos);
    const double sigma = c.raw.is_object() ? c.raw.value("initializer_range", 0.02) : 0.02;
    const int64_t n_models = 1 + int64_t(opt.init_seeds.size());
    const int64_t total = n_models * opt.segments + (opt.v1 ? opt.ppl_segments : 0);
    int64_t done = 0;
    auto tick = [&](const std::string& note) {
        ++done;
        if (progress) progress(done, total, note);
    };

    LieqResult r;
    r.layers.resize(static_cast<size_t>(L));
    r.tokens = opt.segments * opt.seg_len;
    const auto trained = projection_spectra(m, segs, r.skipped_rows, [&] { tick("trained"); });
    const int64_t kh = std::max<int64_t>(1, c.head_dim / 4);
    std::vector<std::array<double, 3>> rc_rand(static_cast<size_t>(L)), e_rand(static_cast<size_t>(L)), eh_rand(static_cast<size_t>(L));
    for (uint64_t seed : opt.init_seeds) {
        const auto rm = random_init_model(c, sigma, seed);
        int64_t skipped = 0;  // random models' skipped rows are not the trained model's; not reported
        const auto sp = projection_spectra(*rm, segs, skipped, [&] { tick("random seed " + std::to_string(seed)); });
        for (int64_t l = 0; l < L; ++l)
            for (int p = 0; p < 3; ++p) {
                rc_rand[size_t(l)][size_t(p)] += compactness(sp[size_t(l)][size_t(p)]) / double(opt.init_seeds.size());
                e_rand[size_t(l)][size_t(p)] += topk_energy(sp[size_t(l)][size_t(p)], opt.k) / double(opt.init_seeds.size());
                eh_rand[size_t(l)][size_t(p)] += topk_energy(sp[size_t(l)][size_t(p)], kh) / double(opt.init_seeds.size());
            }
    }
    for (int64_t l = 0; l < L; ++l) {
        LieqLayer& o = r.layers[size_t(l)];
        for (int p = 0; p < 3; ++p) {
            const auto& ev = trained[size_t(l)][size_t(p)];
            const double rc = compactness(ev);
            o.rc_trained += rc / 3.0;
            o.rc_random += rc_rand[size_t(l)][size_t(p)] / 3.0;
            o.rc_diff += (rc - rc_rand[size_t(l)][size_t(p)]) / 3.0;
            o.gain += (topk_energy(ev, opt.k) - e_rand[size_t(l)][size_t(p)]) / 3.0;
            o.gain_head += (topk_energy(ev, kh) - eh_rand[size_t(l)][size_t(p)]) / 3.0;
        }
        o.score = o.rc_diff;
    }

    if (opt.v1) {
        const auto psegs = calibration_segments(calib_ids, opt.ppl_segments, opt.seg_len, opt.seed + 1, bos);
        const int64_t n = opt.seg_len;
        ForwardBuffers buf(c, n);
        KVCache cache(c, n);
        m.rope.reserve(n);
        std::vector<float> inputs(size_t((L + 1) * n * d)), logits(size_t(n * c.vocab));
        std::vector<double> nll_skip(size_t(L), 0.0);
        double nll_full = 0;
        for (const auto& seg : psegs) {
            m.embed_tokens(seg.data(), n, inputs.data());
            for (int64_t l = 0; l < L; ++l) {  // x_{l+1} = block_l(x_l), every block input kept
                std::copy_n(inputs.data() + l * n * d, n * d, inputs.data() + (l + 1) * n * d);
                block_forward(m, l, inputs.data() + (l + 1) * n * d, n, 0, cache, buf);
            }
            nll_full += window_nll(m, inputs, seg, -1, buf, cache, logits);
            for (int64_t l = 0; l < L; ++l) nll_skip[size_t(l)] += window_nll(m, inputs, seg, l, buf, cache, logits);
            tick("perplexity drop");
        }
        const double count = double(psegs.size()) * double(n - 1);
        r.ppl_full = std::exp(nll_full / count);
        std::vector<double> dppl(static_cast<size_t>(L)), dln(static_cast<size_t>(L)), rc(static_cast<size_t>(L)), gain(static_cast<size_t>(L));
        for (int64_t l = 0; l < L; ++l) {
            dppl[size_t(l)] = r.layers[size_t(l)].dppl = std::exp(nll_skip[size_t(l)] / count) - r.ppl_full;
            dln[size_t(l)] = (nll_skip[size_t(l)] - nll_full) / count;
            rc[size_t(l)] = r.layers[size_t(l)].rc_diff;
            gain[size_t(l)] = r.layers[size_t(l)].gain;
        }
        const double lo = *std::min_element(dppl.begin(), dppl.end()), hi = *std::max_element(dppl.begin(), dppl.end());
        // A skipped first or last block can multiply PPL by thousands and flatten every other layer to ~0
        // after min-max; ln-space keeps them apart (LIEQ.md §6).
        r.dppl_log = hi > 0 && (lo <= 0 ? hi > 1e3 * std::max(1e-12, std::abs(lo)) : hi / lo > 1e3);
        const auto nd = minmax_normalize(r.dppl_log ? dln : dppl), nr = minmax_normalize(rc), ng = minmax_normalize(gain);
        for (int64_t l = 0; l < L; ++l) r.layers[size_t(l)].score = (nd[size_t(l)] + nr[size_t(l)] + ng[size_t(l)]) / 3.0;
    }
    std::vector<double> s(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) s[size_t(l)] = r.layers[size_t(l)].score;
    r.ranking = rank_descending(s);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace planeq::alloc
