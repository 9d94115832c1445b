// Sink-aware calibration (SINKS.md §5, §7.7): weights of 1 reproduce GPTQ's Hessian bit for bit, an
// empty sink set under "exclude" reproduces the baseline quantization exactly, and a non-empty one changes it.
#include <gtest/gtest.h>

#include "formats/format.hpp"
#include "model/synthetic.hpp"
#include "quant/calibration.hpp"
#include "quant/hessian.hpp"
#include "quant/pipeline.hpp"

namespace planeq {
namespace {

TEST(CalibSinks, UnitRowWeightsGiveGptqsHessianExactly) {
    PortableRng rng(2);
    std::vector<float> x(64 * 48), ones(64, 1.0f);
    for (auto& v : x) v = float(rng.normal());
    HessianAccumulator a(48), b(48);
    a.add(x.data(), 64);
    b.add(x.data(), 64, ones.data());
    EXPECT_EQ(a.finalize(), b.finalize());
}

std::unique_ptr<Model> model() {
    ModelConfig c;
    c.arch = Arch::Llama, c.architecture = "LlamaForCausalLM";
    c.hidden = 64, c.intermediate = 128, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.head_dim = 32, c.vocab = 128;
    c.max_position = 512, c.rope.theta = 10000, c.rms_eps = 1e-5;
    const WeightFormat* bf16 = find_format("bf16");
    uint64_t s = 1;
    return synthetic_model(c, [&](const std::string&, int64_t r, int64_t k) { return random_weight(*bf16, r, k, FormatParams{16, 0, false, false}, s++); }, 1);
}

std::vector<float> quantized_weights(CalibSinks mode, int64_t n_c, QuantizeReport* rep = nullptr) {
    auto m = model();
    std::vector<int32_t> ids(4000);
    PortableRng rng(3);
    for (auto& t : ids) t = int32_t(rng.below(128));
    const auto segs = calibration_segments(ids, 8, 64, 0, -1);
    QuantizeOptions opt;
    opt.defaults.method = "gptq", opt.defaults.bits = 3, opt.defaults.group = 32;
    opt.calib_sinks = mode, opt.calib_sink_tokens = n_c;
    QuantizeReport r = quantize_model(*m, segs, opt);
    if (rep) *rep = r;
    std::vector<float> all;
    for (const Linear* l : m->linears()) {
        std::vector<float> w(static_cast<size_t>(l->weight.rows * l->weight.cols));
        l->weight.dequantize(w.data());
        all.insert(all.end(), w.begin(), w.end());
    }
    return all;
}

TEST(CalibSinks, ExcludeWithNoSinksIsTheBaselineAndWithSinksDiffers) {
    const auto base = quantized_weights(CalibSinks::Keep, 1);
    EXPECT_EQ(quantized_weights(CalibSinks::Exclude, 0), base);
    QuantizeReport rep;
    EXPECT_NE(quantized_weights(CalibSinks::Exclude, 4, &rep), base);
    ASSERT_EQ(rep.sink_trace_share.size(), 2u);
    EXPECT_GT(rep.sink_trace_share[0], 0.0);  // 4 of 64 rows: about 1/16 of the trace
    EXPECT_LT(rep.sink_trace_share[0], 0.5);
    EXPECT_NE(quantized_weights(CalibSinks::Downweight, 1), std::vector<float>{});
}

}  // namespace
}  // namespace planeq
