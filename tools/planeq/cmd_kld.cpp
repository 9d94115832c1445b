// planeq kld: KL divergence of a quantized model from its base model (EVAL.md §5, llama-perplexity's
// --kl-divergence statistics), both models run in lockstep over the windows of a perplexity protocol.
#include <cstdio>

#include "common.hpp"
#include "device_runner.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "eval/kld.hpp"
#include "loaded_model.hpp"

namespace planeq::cli {

namespace {

struct KldArgs {
    CommonOptions common;
    std::string base, quant, file, protocol = "second-half", mode = "exact";
    int64_t ctx = 512, max_windows = 0;
    bool stream_bos = false;
    std::string device = "cpu";
};

// Both models must score the same token ids over the same vocabulary.
void check_same_vocab_size(const KldArgs& a, const LoadedModel& b, const LoadedModel& q) {
    const int64_t vb = b.model->config.vocab, vq = q.model->config.vocab;
    if (vb != vq)
        fail("the models have different vocabulary sizes: " + a.base + " has " + std::to_string(vb) + ", " + a.quant + " has " +
             std::to_string(vq) + " (config.json vocab_size)");
}

void check_same_tokenizer(const KldArgs& a, const LoadedModel& b, const LoadedModel& q) {
    const size_t tb = b.tokenizer->vocab_size(), tq = q.tokenizer->vocab_size();
    if (tb != tq || b.tokenizer->adds_bos() != q.tokenizer->adds_bos() || b.tokenizer->bos_id() != q.tokenizer->bos_id())
        fail("the models have different tokenizers: " + a.base + "/tokenizer.json has " + std::to_string(tb) + " tokens" +
             (b.tokenizer->adds_bos() ? " (BOS " + std::to_string(b.tokenizer->bos_id()) + ")" : " (no BOS)") + ", " + a.quant +
             "/tokenizer.json has " + std::to_string(tq) + " tokens" +
             (q.tokenizer->adds_bos() ? " (BOS " + std::to_string(q.tokenizer->bos_id()) + ")" : " (no BOS)"));
}

nlohmann::json me_json(const MeanErr& m) { return {{"value", m.value}, {"stderr", m.err}}; }

nlohmann::json quantiles_json(const Quantiles& q) {
    return {{"max", q.max},       {"p99_9", q.p99_9}, {"p99", q.p99}, {"p95", q.p95}, {"p90", q.p90},
            {"p75", q.p75},       {"median", q.median}, {"p25", q.p25}, {"p10", q.p10}, {"p5", q.p5},
            {"p1", q.p1},         {"p0_1", q.p0_1},   {"min", q.min}};
}

void run_kld(const KldArgs& a) {
    apply_threads(a.common);
    // Models first (without the tokenizer check of load_model), so a vocabulary mismatch names both.
    LoadedModel lb = load_model(a.base, /*need_tokenizer=*/false);
    LoadedModel lq = load_model(a.quant, /*need_tokenizer=*/false);
    check_same_vocab_size(a, lb, lq);
    for (auto* lm : {&lb, &lq}) {
        const std::string& dir = lm == &lb ? a.base : a.quant;
        lm->tokenizer = load_tokenizer(dir);
        if (int64_t(lm->tokenizer->vocab_size()) > lm->model->config.vocab)
            fail_file(std::filesystem::path(dir) / "tokenizer.json",
                      "tokenizer has " + std::to_string(lm->tokenizer->vocab_size()) + " tokens but config.json vocab_size is " +
                          std::to_string(lm->model->config.vocab));
    }
    check_same_tokenizer(a, lb, lq);

    const Tokenizer& tok = *lb.tokenizer;
    const std::string text = read_text_file(a.file);
    const auto ids = tok.encode(text, /*add_special=*/false);

    PplOptions opt;
    opt.ctx = a.ctx;
    opt.protocol = a.protocol == "full" ? PplProtocol::Full : PplProtocol::SecondHalf;
    opt.bos_id = tok.adds_bos() ? tok.bos_id() : -1;
    opt.window_bos_replace = opt.bos_id >= 0;
    opt.stream_bos_prepend = a.stream_bos && opt.bos_id >= 0;
    opt.max_windows = a.max_windows;
    const KldMode mode = a.mode == "llama" ? KldMode::Llama : KldMode::Exact;

    const int64_t total = int64_t(ppl_windows(ids, opt).size());
    std::unique_ptr<Runner> rb = make_device_runner(*lb.model, a.device, CacheOptions{}, opt.ctx, 1, !a.common.json);
    std::unique_ptr<Runner> rq = make_device_runner(*lq.model, a.device, CacheOptions{}, opt.ctx, 1, !a.common.json);
    Progress bar("kld", total, "windows");
    const KldStats s = kl_divergence(*rb, *rq, ids, opt, mode, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish();

    if (a.common.json) {
        print_json({{"base", a.base},
                    {"quant", a.quant},
                    {"file", a.file},
                    {"ctx", opt.ctx},
                    {"protocol", a.protocol},
                    {"mode", a.mode},
                    {"window_bos", opt.window_bos_replace ? "replace" : "keep"},
                    {"stream_bos", opt.stream_bos_prepend ? "prepend" : "none"},
                    {"tokens", s.tokens},
                    {"file_tokens", ids.size()},
                    {"windows", s.windows},
                    {"scored_tokens", s.scored_tokens},
                    {"seconds", s.seconds},
                    {"threads", thread_count()},
                    {"device", a.device},
                    {"ppl_q", me_json(s.ppl_q)},
                    {"ppl_base", me_json(s.ppl_base)},
                    {"nll_correlation", s.nll_correlation},
                    {"ln_ppl_ratio", me_json(s.ln_ppl_ratio)},
                    {"ppl_ratio", me_json(s.ppl_ratio)},
                    {"ppl_diff", me_json(s.ppl_diff)},
                    {"kld", {{"mean", s.kld.value}, {"stderr", s.kld.err}, {"quantiles", quantiles_json(s.kld_q)}}},
                    {"p_diff",
                     {{"mean", s.p_diff.value},
                      {"stderr", s.p_diff.err},
                      {"quantiles", quantiles_json(s.p_diff_q)},
                      {"rms", s.p_diff_rms.value},
                      {"rms_stderr", s.p_diff_rms.err},
                      {"max_abs", s.p_diff_max_abs}}},
                    {"same_top", me_json(s.same_top)},
                    {"entropy_base", mode == KldMode::Exact ? me_json(s.entropy_base) : nlohmann::json()},
                    {"entropy_q", mode == KldMode::Exact ? me_json(s.entropy_q) : nlohmann::json()}});
        return;
    }
    std::printf("base       %s (%s, %s)\n", a.base.c_str(), lb.model->config.architecture.c_str(), lb.model->format_summary().c_str());
    std::printf("quant      %s (%s, %s)\n", a.quant.c_str(), lq.model->config.architecture.c_str(), lq.model->format_summary().c_str());
    std::printf("text       %s: %zu tokens\n", a.file.c_str(), ids.size());
    std::printf("protocol   %s, ctx %lld, %lld windows, %lld scored tokens%s%s; %s KLD\n", a.protocol.c_str(), (long long)opt.ctx,
                (long long)s.windows, (long long)s.scored_tokens, opt.window_bos_replace ? ", BOS at every window start" : "",
                opt.stream_bos_prepend ? ", BOS before the stream" : "",
                mode == KldMode::Exact ? "exact (fp64, full vocabulary)" : "llama.cpp-compatible (uint16 base log-probs)");
    if (s.scored_tokens < 100) std::printf("note       fewer than 100 scored tokens: llama.cpp would not print these statistics\n");

    std::printf("\n====== Perplexity statistics ======\n");
    std::printf("Mean PPL(Q)                    : %10.6f ± %10.6f\n", s.ppl_q.value, s.ppl_q.err);
    std::printf("Mean PPL(base)                 : %10.6f ± %10.6f\n", s.ppl_base.value, s.ppl_base.err);
    std::printf("Cor(ln(PPL(Q)), ln(PPL(base))) : %6.2f%%\n", 100.0 * s.nll_correlation);
    std::printf("Mean ln(PPL(Q)/PPL(base))      : %10.6f ± %10.6f\n", s.ln_ppl_ratio.value, s.ln_ppl_ratio.err);
    std::printf("PPL ratio PPL(Q)/PPL(base)     : %10.6f ± %10.6f\n", s.ppl_ratio.value, s.ppl_ratio.err);
    std::printf("PPL difference PPL(Q)-PPL(base): %10.6f ± %10.6f\n", s.ppl_diff.value, s.ppl_diff.err);

    std::printf("\n====== KL divergence statistics ======\n");
    std::printf("Mean KLD   : %10.6f ± %10.6f\n", s.kld.value, s.kld.err);
    const Quantiles& k = s.kld_q;
    const std::pair<const char*, double> kl_rows[] = {{"Maximum KLD", k.max}, {"99.9%   KLD", k.p99_9}, {"99.0%   KLD", k.p99},
                                                      {"95.0%   KLD", k.p95}, {"90.0%   KLD", k.p90},   {"Median  KLD", k.median},
                                                      {"10.0%   KLD", k.p10}, {" 5.0%   KLD", k.p5},    {" 1.0%   KLD", k.p1},
                                                      {" 0.1%   KLD", k.p0_1}, {"Minimum KLD", k.min}};
    for (const auto& [label, v] : kl_rows) std::printf("%s: %10.6f\n", label, v);

    std::printf("\n====== Token probability statistics ======\n");
    std::printf("Mean    Δp: %6.3f ± %5.3f %%\n", 100.0 * s.p_diff.value, 100.0 * s.p_diff.err);
    const Quantiles& d = s.p_diff_q;
    const std::pair<const char*, double> dp_rows[] = {
        {"Maximum Δp", d.max}, {"99.9%   Δp", d.p99_9}, {"99.0%   Δp", d.p99}, {"95.0%   Δp", d.p95}, {"90.0%   Δp", d.p90},
        {"75.0%   Δp", d.p75}, {"Median  Δp", d.median}, {"25.0%   Δp", d.p25}, {"10.0%   Δp", d.p10}, {" 5.0%   Δp", d.p5},
        {" 1.0%   Δp", d.p1},  {" 0.1%   Δp", d.p0_1},  {"Minimum Δp", d.min}};
    for (const auto& [label, v] : dp_rows) std::printf("%s: %6.3f%%\n", label, 100.0 * v);
    std::printf("RMS Δp    : %6.3f ± %5.3f %%\n", 100.0 * s.p_diff_rms.value, 100.0 * s.p_diff_rms.err);
    std::printf("Same top p: %6.3f ± %5.3f %%\n", 100.0 * s.same_top.value, 100.0 * s.same_top.err);
    if (mode == KldMode::Exact) {
        // Not in llama.cpp's printout: confidence beside the NLL (mean NLL ≫ entropy: the base is over-confident
        // on this text, and flattening noise can lower PPL while KLD rises).
        std::printf("\n====== Entropy (nats) ======\n");
        std::printf("Mean NLL(base) : %10.6f   entropy(base): %10.6f ± %8.6f\n", std::log(s.ppl_base.value),
                    s.entropy_base.value, s.entropy_base.err);
        std::printf("Mean NLL(Q)    : %10.6f   entropy(Q)   : %10.6f ± %8.6f\n", std::log(s.ppl_q.value), s.entropy_q.value,
                    s.entropy_q.err);
    }
    std::printf("\nspeed      %.0f tokens/s (both models), %.1f s (%d threads)\n", double(s.tokens) / s.seconds, s.seconds,
                thread_count());
}

}  // namespace

void register_kld(CLI::App& app) {
    auto a = std::make_shared<KldArgs>();
    CLI::App* cmd = app.add_subcommand("kld", "KL divergence of a quantized model from its base model (EVAL.md §5, llama.cpp statistics)");
    cmd->add_option("base", a->base, "Base (unquantized) model directory")->required();
    cmd->add_option("quant", a->quant, "Quantized model directory (same tokenizer and vocabulary)")->required();
    cmd->add_option("-f,--file", a->file, "Text file (read whole, no normalization)")->required();
    cmd->add_option("-c,--ctx", a->ctx, "Window length in tokens")->capture_default_str()->check(CLI::Range(2, 1 << 20));
    cmd->add_option("--protocol", a->protocol, "second-half: llama-perplexity's scored positions; full: every position")
        ->check(CLI::IsMember({"full", "second-half"}))
        ->capture_default_str();
    cmd->add_option("--mode", a->mode, "exact: fp64 over the full vocabulary; llama: llama.cpp's uint16-coded base log-probs")
        ->check(CLI::IsMember({"exact", "llama"}))
        ->capture_default_str();
    cmd->add_option("--max-windows", a->max_windows, "Evaluate only the first K windows (0 = all)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--stream-bos", a->stream_bos, "Prepend one BOS to the whole token stream (llama-perplexity does)");
    add_device_option(*cmd, a->device);
    add_common(*cmd, a->common);
    cmd->callback([a] { run_kld(*a); });
}

}  // namespace planeq::cli
