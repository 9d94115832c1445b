#include "alloc/measured.hpp"

#include <chrono>
#include <map>

#include "core/error.hpp"
#include "eval/kld.hpp"
#include "model/forward.hpp"
#include "quant/calibration.hpp"
#include "quant/pipeline.hpp"

namespace planeq::alloc {

namespace {

int64_t block_of(const std::string& name) {  // "model.layers.7.mlp.up_proj" → 7
    const std::string p = "model.layers.";
    if (name.rfind(p, 0) != 0) return -1;
    return std::stoll(name.substr(p.size()));
}

}  // namespace

MeasuredResult measured_scores(Model& m, const std::vector<std::vector<std::string>>& units, std::span<const int32_t> calib_ids,
                               int32_t bos, const MeasuredOptions& opt, const AllocProgress& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    const ModelConfig& c = m.config;
    const int64_t L = c.n_layers, n = opt.calib_len, d = c.hidden, V = c.vocab;
    const QuantMethod* method = find_method(opt.setting.method);
    if (!method) fail("unknown method '" + opt.setting.method + "' (known: " + method_names() + ")");
    if (int64_t(calib_ids.size()) < n + 1)
        fail("measured: the calibration text has " + std::to_string(calib_ids.size()) + " tokens, fewer than one segment of " +
             std::to_string(n));
    const bool data = method->needs_hessian || opt.setting.order == ColumnOrder::Dynamic;
    const auto hess_segs = data ? calibration_segments(calib_ids, opt.calib_segments, n, opt.seed, bos) : std::vector<std::vector<int32_t>>{};
    const auto eval = calibration_segments(calib_ids, opt.eval_segments, n, opt.seed + 1, bos);

    std::map<std::string, Linear*> by_name;
    for (Linear* l : m.linears()) by_name[l->name] = l;

    // Base model, once: every block input of every window (so a unit in block l reruns only blocks l …) and
    // the logits the KLD compares against.
    ForwardBuffers buf(c, n);
    KVCache cache(c, n);
    m.rope.reserve(n);
    const size_t W = eval.size();
    std::vector<std::vector<float>> inputs(W), base_logits(W);
    for (size_t w = 0; w < W; ++w) {
        inputs[w].resize(size_t((L + 1) * n * d));
        m.embed_tokens(eval[w].data(), n, inputs[w].data());
        for (int64_t l = 0; l < L; ++l) {
            std::copy_n(inputs[w].data() + l * n * d, n * d, inputs[w].data() + (l + 1) * n * d);
            block_forward(m, l, inputs[w].data() + (l + 1) * n * d, n, 0, cache, buf);
        }
        base_logits[w].resize(size_t(n * V));
        rmsnorm(inputs[w].data() + L * n * d, m.final_norm.data(), n, d, c.rms_eps, buf.h.data());
        m.lm_head.forward(buf.h.data(), n, base_logits[w].data());
    }

    MeasuredResult r;
    r.eval_tokens = int64_t(W) * (n - 1);
    std::vector<float> x(size_t(n * d)), logits(size_t(n * V));
    std::vector<double> kl(static_cast<size_t>(n - 1));
    for (size_t u = 0; u < units.size(); ++u) {
        QuantizeOptions qo;
        qo.defaults = opt.setting;
        int64_t first = L;
        std::vector<std::pair<Linear*, PackedWeight>> saved;
        for (const std::string& name : units[u]) {
            auto it = by_name.find(name);
            if (it == by_name.end()) fail("measured: '" + name + "' is not a decoder linear of this model");
            qo.only.insert(name);
            saved.emplace_back(it->second, it->second->weight);
            first = std::min(first, std::max<int64_t>(0, block_of(name)));
        }
        quantize_model(m, hess_segs, qo);
        double sum = 0;
        for (size_t w = 0; w < W; ++w) {
            std::copy_n(inputs[w].data() + first * n * d, n * d, x.data());
            for (int64_t l = first; l < L; ++l) block_forward(m, l, x.data(), n, 0, cache, buf);
            rmsnorm(x.data(), m.final_norm.data(), n, d, c.rms_eps, buf.h.data());
            m.lm_head.forward(buf.h.data(), n, logits.data());
#pragma omp parallel for schedule(static)
            for (int64_t p = 0; p < n - 1; ++p)
                kl[size_t(p)] = kld_token_exact(base_logits[w].data() + p * V, logits.data() + p * V, V, eval[w][size_t(p + 1)]).kld;
            for (double v : kl) sum += v;
        }
        r.kld.push_back(sum / double(r.eval_tokens));
        for (auto& [lin, w] : saved) lin->weight = std::move(w);  // back to the original weights
        if (progress) progress(int64_t(u + 1), int64_t(units.size()), units[u].size() == 1 ? units[u][0] : "block " + std::to_string(first));
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace planeq::alloc
