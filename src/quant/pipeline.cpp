#include "quant/pipeline.hpp"

#include <chrono>
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "model/forward.hpp"
#include "quant/device.hpp"
#include "quant/hessian.hpp"

namespace planeq {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// tr(D H Dᵀ) for D [R × C] and symmetric H [C × C] (f32 GEMM, f64 sum).
double h_norm(const std::vector<float>& D, int64_t R, int64_t C, const std::vector<float>& Hf) {
    std::vector<float> P(static_cast<size_t>(R * C));
    cpu::gemm_f32(R, C, C, D.data(), C, cpu::BOperand{Hf.data(), DType::F32, C, true}, P.data(), C);
    double s = 0;
    for (size_t i = 0; i < P.size(); ++i) s += double(P[i]) * D[i];
    return s;
}

struct Quantizer {
    Model& m;
    const QuantizeOptions& opt;
    QuantizeReport& report;

    void run(Linear& lin, const std::vector<double>* H) {
        if (!opt.only.empty() && !opt.only.count(lin.name)) return;
        const auto t0 = Clock::now();
        const LayerSetting& s = setting_for(opt, lin.name);
        const QuantMethod* method = find_method(s.method);
        const int64_t R = lin.weight.rows, C = lin.weight.cols;
        std::vector<float> W(static_cast<size_t>(R * C));
        lin.weight.dequantize(W.data());
        for (float w : W)
            if (!std::isfinite(w)) fail("layer '" + lin.name + "' has NaN or infinite weights");
        const bool on_device = opt.device && method->run_on;
        LinearQuantResult q = on_device ? method->run_on(W.data(), R, C, H ? H->data() : nullptr, s, *opt.device)
                                        : method->run(W.data(), R, C, H ? H->data() : nullptr, s);
        if (opt.device && !on_device) q.log.push_back(s.method + ": no " + opt.device->name() + " path, ran on the CPU");

        LayerReport rep;
        rep.name = lin.name;
        rep.method = s.method;
        rep.format = std::string(q.weight.format->name);
        rep.rows = R;
        rep.cols = C;
        rep.setting = s;
        rep.setting.bits = q.weight.params.bits;  // what was stored (ptqtp: 2 trit-planes, whatever --bits said)
        rep.bpw = q.weight.bits_per_weight();
        rep.proxy_loss = q.proxy_loss;
        rep.damp_used = q.damp_used;
        rep.log = std::move(q.log);
        double dw = 0, w2 = 0;
        std::vector<float> D(W.size());
        for (size_t i = 0; i < W.size(); ++i) {
            D[i] = W[i] - q.dequant[i];
            dw += double(D[i]) * D[i];
            w2 += double(W[i]) * W[i];
        }
        rep.rel_weight_error = w2 > 0 ? std::sqrt(dw / w2) : 0.0;
        if (H && double(R) * double(C) * double(C) < 2e10) {  // skip at 8B scale: this costs 4·R·C² flops
            std::vector<float> Hf(H->begin(), H->end());
            const double den = h_norm(W, R, C, Hf);
            if (den > 0) rep.rel_output_error = h_norm(D, R, C, Hf) / den;
        }
        lin.weight = std::move(q.weight);
        rep.seconds = since(t0);
        report.method_seconds += rep.seconds;
        report.layers.push_back(std::move(rep));
    }
};

// Row weights of one calibration segment's rows x[n × cols] for the Hessian (nullptr: all 1, GPTQ's H
// bit for bit). Also adds the sink rows' and all rows' squared norms to in_sinks and total.
const float* calib_row_weights(const QuantizeOptions& opt, const float* x, int64_t n, int64_t cols, std::vector<float>& w,
                               double& in_sinks, double& total) {
    if (opt.calib_sinks == CalibSinks::Keep) return nullptr;
    std::vector<double> norm2(static_cast<size_t>(n)), absx(static_cast<size_t>(n * cols));
    std::vector<double> rowmax(size_t(n), 0.0);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < cols; ++c) {
            const double v = x[t * cols + c];
            norm2[size_t(t)] += v * v;
            absx[size_t(t * cols + c)] = std::abs(v);
            rowmax[size_t(t)] = std::max(rowmax[size_t(t)], std::abs(v));
        }
    std::nth_element(absx.begin(), absx.begin() + long(absx.size() / 2), absx.end());
    const double med_abs = absx[absx.size() / 2];
    std::vector<double> norms(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) norms[size_t(t)] = std::sqrt(norm2[size_t(t)]);
    std::vector<double> sorted = norms;
    std::nth_element(sorted.begin(), sorted.begin() + long(n / 2), sorted.end());
    const double med_norm = sorted[size_t(n / 2)];
    w.assign(size_t(n), 1.0f);
    for (int64_t t = 0; t < n; ++t) {
        const bool sink = t < opt.calib_sink_tokens || (med_abs > 0 && rowmax[size_t(t)] / med_abs > 100.0);
        if (sink) in_sinks += norm2[size_t(t)];
        total += norm2[size_t(t)];
        if (opt.calib_sinks == CalibSinks::Exclude && sink) w[size_t(t)] = 0.0f;
        if (opt.calib_sinks == CalibSinks::Downweight && norms[size_t(t)] > 0)
            w[size_t(t)] = float(std::min(1.0, std::pow(10.0 * med_norm / norms[size_t(t)], 2)));
    }
    return w.data();
}

bool needs_data(const QuantMethod* m, const LayerSetting& s) { return m->needs_hessian || s.order == ColumnOrder::Dynamic; }

}  // namespace

nlohmann::json LayerReport::to_json() const {
    nlohmann::json j{{"name", name},          {"method", method},       {"format", format},
                     {"shape", {rows, cols}}, {"setting", setting.to_json()}, {"bpw", bpw},
                     {"proxy_loss", proxy_loss}, {"rel_weight_error", rel_weight_error}, {"seconds", seconds}};
    if (rel_output_error >= 0) j["rel_output_error"] = rel_output_error;
    if (damp_used > 0) j["damp_used"] = damp_used;
    if (!log.empty()) j["log"] = log;
    return j;
}

nlohmann::json QuantizeReport::to_json() const {
    nlohmann::json ls = nlohmann::json::array();
    for (const auto& l : layers) ls.push_back(l.to_json());
    return {{"seconds", seconds},
            {"device", device},
            {"forward_seconds", forward_seconds},
            {"hessian_seconds", hessian_seconds},
            {"method_seconds", method_seconds},
            {"calibration", {{"segments", calib_segments}, {"tokens_per_segment", calib_len}, {"sinks", calib_sinks},
                             {"sink_trace_share", sink_trace_share}}},
            {"layers", ls}};
}

CalibSinks parse_calib_sinks(const std::string& s) {
    if (s == "keep") return CalibSinks::Keep;
    if (s == "exclude") return CalibSinks::Exclude;
    if (s == "downweight") return CalibSinks::Downweight;
    fail("--calib-sinks must be keep, exclude or downweight (got '" + s + "')");
}

const char* calib_sinks_name(CalibSinks c) {
    return c == CalibSinks::Keep ? "keep" : c == CalibSinks::Exclude ? "exclude" : "downweight";
}

const LayerSetting& setting_for(const QuantizeOptions& opt, const std::string& layer) {
    auto it = opt.plan.find(layer);
    return it == opt.plan.end() ? opt.defaults : it->second;
}

QuantizeReport quantize_model(Model& m, const std::vector<std::vector<int32_t>>& segments, const QuantizeOptions& opt,
                              const QuantizeProgress& progress) {
    const auto t_start = Clock::now();
    const ModelConfig& c = m.config;
    // Validate every layer's setting before any work, so a bad plan fails in a second, not an hour.
    bool data = false;
    std::vector<Linear*> targets = m.linears();
    if (opt.quantize_head) targets.push_back(&m.lm_head);
    std::erase_if(targets, [&](const Linear* l) { return !opt.only.empty() && !opt.only.count(l->name); });
    for (Linear* l : targets) {
        const LayerSetting& s = setting_for(opt, l->name);
        const QuantMethod* method = find_method(s.method);
        if (!method) fail("layer '" + l->name + "': unknown method '" + s.method + "' (known: " + method_names() + ")");
        if (std::string why = method->check(s, l->weight.rows, l->weight.cols); !why.empty())
            fail("layer '" + l->name + "' (" + std::to_string(l->weight.rows) + "x" + std::to_string(l->weight.cols) + "): " + why);
        data = data || needs_data(method, s);
    }
    if (data && segments.empty()) fail("this quantization needs calibration data (--calib FILE)");
    for (const auto& s : segments)
        if (s.size() != segments.front().size()) fail("internal: calibration segments differ in length");

    QuantizeReport report;
    if (opt.device) report.device = opt.device->name();
    report.calib_segments = data ? int64_t(segments.size()) : 0;
    report.calib_len = data && !segments.empty() ? int64_t(segments.front().size()) : 0;
    Quantizer q{m, opt, report};
    int64_t nblocks = c.n_layers;
    // With a layer subset, blocks after the last one holding a target need no visit (no Hessians either:
    // a sub-group without targets skips its accumulation below).
    auto wanted = [&](const Linear& l) { return opt.only.empty() || opt.only.count(l.name) > 0; };
    if (!opt.only.empty() && !(opt.quantize_head && wanted(m.lm_head))) {
        nblocks = 0;
        for (int64_t l = 0; l < c.n_layers; ++l) {
            const Block& b = m.blocks[size_t(l)];
            for (const Linear* lin : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
                if (wanted(*lin)) nblocks = l + 1;
        }
    }

    if (!data) {  // data-free: layer by layer, no forward passes
        for (int64_t l = 0; l < nblocks; ++l) {
            Block& b = m.blocks[size_t(l)];
            for (Linear* lin : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down}) q.run(*lin, nullptr);
            if (progress) progress(l + 1, nblocks, "");
        }
        if (opt.quantize_head) q.run(m.lm_head, nullptr);
        report.seconds = since(t_start);
        return report;
    }

    const int64_t S = int64_t(segments.size()), L = int64_t(segments.front().size());
    const int64_t d = c.hidden, qd = c.q_dim(), I = c.intermediate;
    // Block inputs of every segment; after a block they become its outputs (the next block's inputs).
    std::vector<float> X(static_cast<size_t>(S * L * d));
    for (int64_t s = 0; s < S; ++s) m.embed_tokens(segments[size_t(s)].data(), L, X.data() + s * L * d);
    std::vector<float> attn(static_cast<size_t>(S * L * qd));
    // The SwiGLU activations feed both down's Hessian and the block output; keep them when they fit
    // in 4 GiB, else recompute gate/up for the output.
    const bool keep_act = double(S) * double(L) * double(I) * 4.0 <= 4.0 * (1ull << 30);
    std::vector<float> act(keep_act ? static_cast<size_t>(S * L * I) : 0);
    ForwardBuffers buf(c, L);
    KVCache cache(c, L);
    m.rope.reserve(L);

    auto forward_time = [&](auto&& fn) {
        const auto t0 = Clock::now();
        fn();
        report.forward_seconds += since(t0);
    };
    bool accumulate = true;  // false while a sub-group has no layer to quantize
    std::vector<float> row_w;
    double sink_norm2 = 0, all_norm2 = 0;  // trace share of the sink rows (SINKS.md §5 diagnostic)
    report.calib_sinks = calib_sinks_name(opt.calib_sinks);
    auto hessian = [&](HessianAccumulator& h, const float* x, int64_t n) {
        if (!accumulate) return;
        const auto t0 = Clock::now();
        h.add(x, n, calib_row_weights(opt, x, n, h.cols(), row_w, sink_norm2, all_norm2));
        report.hessian_seconds += since(t0);
    };
    auto swiglu_of = [&](const Block& b, const float* x, float* out) {  // out = silu(gate(rms(x))) ⊙ up(rms(x))
        rmsnorm(x, b.ffn_norm.data(), L, d, c.rms_eps, buf.h.data());
        b.gate.forward(buf.h.data(), L, out);
        b.up.forward(buf.h.data(), L, buf.up.data());
        swiglu(out, buf.up.data(), L * I);
    };

    for (int64_t l = 0; l < nblocks; ++l) {
        Block& b = m.blocks[size_t(l)];
        // [q, k, v]: their shared input is the attention norm of the block input.
        accumulate = wanted(b.q) || wanted(b.k) || wanted(b.v);
        sink_norm2 = all_norm2 = 0;
        HessianAccumulator h_qkv(d, opt.device);
        for (int64_t s = 0; s < S; ++s) {
            forward_time([&] { rmsnorm(X.data() + s * L * d, b.attn_norm.data(), L, d, c.rms_eps, buf.h.data()); });
            hessian(h_qkv, buf.h.data(), L);
        }
        if (opt.calib_sinks != CalibSinks::Keep) report.sink_trace_share.push_back(all_norm2 > 0 ? sink_norm2 / all_norm2 : 0.0);
        sink_norm2 = all_norm2 = 0;
        {
            const auto H = h_qkv.finalize();
            for (Linear* lin : {&b.q, &b.k, &b.v}) q.run(*lin, &H);
        }
        // [o]: attention output computed with the quantized q, k, v.
        accumulate = wanted(b.o);
        HessianAccumulator h_o(qd, opt.device);
        for (int64_t s = 0; s < S; ++s) {
            float* a = attn.data() + s * L * qd;
            forward_time([&] {
                rmsnorm(X.data() + s * L * d, b.attn_norm.data(), L, d, c.rms_eps, buf.h.data());
                b.q.forward(buf.h.data(), L, buf.q.data());
                b.k.forward(buf.h.data(), L, buf.k.data());
                b.v.forward(buf.h.data(), L, buf.v.data());
                norm_and_rotate(m, b.q_norm, buf.q.data(), L, c.n_heads, 0);
                norm_and_rotate(m, b.k_norm, buf.k.data(), L, c.n_kv_heads, 0);
                std::copy_n(buf.k.data(), L * c.kv_dim(), cache.k_at(l, 0));
                std::copy_n(buf.v.data(), L * c.kv_dim(), cache.v_at(l, 0));
                attention(c, cache, l, buf.q.data(), L, 0, a);
            });
            hessian(h_o, a, L);
        }
        {
            const auto H = h_o.finalize();
            q.run(b.o, &H);
        }
        // [gate, up]: residual with the quantized o, then the FFN norm.
        accumulate = wanted(b.gate) || wanted(b.up);
        HessianAccumulator h_gu(d, opt.device);
        for (int64_t s = 0; s < S; ++s) {
            float* x = X.data() + s * L * d;
            forward_time([&] {
                b.o.forward(attn.data() + s * L * qd, L, buf.h.data());
                for (int64_t i = 0; i < L * d; ++i) x[i] += buf.h[size_t(i)];
                rmsnorm(x, b.ffn_norm.data(), L, d, c.rms_eps, buf.h.data());
            });
            hessian(h_gu, buf.h.data(), L);
        }
        {
            const auto H = h_gu.finalize();
            for (Linear* lin : {&b.gate, &b.up}) q.run(*lin, &H);
        }
        // [down]: the SwiGLU activations from the quantized gate and up.
        accumulate = wanted(b.down);
        HessianAccumulator h_down(I, opt.device);
        for (int64_t s = 0; s < S; ++s) {
            float* a = keep_act ? act.data() + s * L * I : buf.gate.data();
            forward_time([&] { swiglu_of(b, X.data() + s * L * d, a); });
            hessian(h_down, a, L);
        }
        {
            const auto H = h_down.finalize();
            q.run(b.down, &H);
        }
        // Block output with every layer quantized: the next block's input.
        for (int64_t s = 0; s < S; ++s) {
            float* x = X.data() + s * L * d;
            forward_time([&] {
                float* a = keep_act ? act.data() + s * L * I : buf.gate.data();
                if (!keep_act) swiglu_of(b, x, a);
                b.down.forward(a, L, buf.h.data());
                for (int64_t i = 0; i < L * d; ++i) x[i] += buf.h[size_t(i)];
            });
        }
        if (progress) progress(l + 1, nblocks, b.q.name.substr(0, b.q.name.find(".self_attn")));
    }
    accumulate = true;
    if (opt.quantize_head && wanted(m.lm_head)) {
        HessianAccumulator h_head(d, opt.device);
        for (int64_t s = 0; s < S; ++s) {
            rmsnorm(X.data() + s * L * d, m.final_norm.data(), L, d, c.rms_eps, buf.h.data());
            hessian(h_head, buf.h.data(), L);
        }
        const auto H = h_head.finalize();
        q.run(m.lm_head, &H);
    }
    report.seconds = since(t_start);
    return report;
}

}  // namespace planeq
