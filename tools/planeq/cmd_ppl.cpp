// planeq ppl: perplexity with the protocols of EVAL.md (full-window and llama.cpp's second half).
#include <algorithm>
#include <cstdio>

#include "cache_args.hpp"
#include "common.hpp"
#include "device_runner.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "core/text_file.hpp"
#include "eval/perplexity.hpp"
#include "loaded_model.hpp"
#include "model/flops.hpp"

namespace planeq::cli {

namespace {

struct PplArgs {
    CommonOptions common;
    std::string model, file, protocol = "full";
    int64_t ctx = 512, max_windows = 0;
    bool stream_bos = false;
    CacheArgs cache;
    bool stream = false;
    int64_t batch = 1, skip = 0, max_tokens = 0;
    std::string device = "cpu";
};

// --stream: the whole text through one cache, token by token (or in equivalent blocks of --batch).
void run_stream_ppl(const PplArgs& a, const LoadedModel& lm, const std::vector<int32_t>& ids) {
    const Model& m = *lm.model;
    StreamPplOptions opt;
    opt.cache = cache_options(a.cache, m.config);
    opt.batch = a.batch;
    opt.skip = a.skip;
    opt.max_tokens = a.max_tokens;
    opt.bos_id = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
    int64_t streamed = int64_t(ids.size()) + (opt.bos_id >= 0 ? 1 : 0);
    if (opt.max_tokens > 0) streamed = std::min(streamed, opt.max_tokens);
    Progress bar("ppl --stream", std::max<int64_t>(streamed - 1, 1), "tokens");
    StreamPplResult r = stream_perplexity(m, ids, opt, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish();
    if (a.common.json) {
        print_json({{"model", a.model}, {"file", a.file}, {"protocol", "stream"}, {"cache", opt.cache.to_json()}, {"batch", opt.batch},
                    {"stream_bos", opt.bos_id >= 0 ? "prepend" : "none"}, {"skip", opt.skip}, {"ppl", r.ppl}, {"stderr", r.stderr_ppl},
                    {"tokens", r.tokens}, {"file_tokens", ids.size()}, {"scored_tokens", r.scored_tokens}, {"seconds", r.seconds},
                    {"tokens_per_s", r.tokens_per_s}, {"cache_bytes", r.cache_bytes}, {"bin_tokens", 16384}, {"bin_ppl", r.bin_ppl},
                    {"threads", thread_count()}});
        return;
    }
    std::printf("model      %s (%s, %s)\n", a.model.c_str(), m.config.architecture.c_str(), m.format_summary().c_str());
    std::printf("text       %s: %zu tokens, %lld streamed%s\n", a.file.c_str(), ids.size(), (long long)r.tokens,
                opt.bos_id >= 0 ? " (one BOS first)" : "");
    std::printf("cache      %s, %s held, %lld tokens per forward\n", opt.cache.describe().c_str(), human_bytes(double(r.cache_bytes)).c_str(),
                (long long)opt.batch);
    std::printf("scored     %lld tokens (stream index > %lld)\n", (long long)r.scored_tokens, (long long)opt.skip);
    std::printf("PPL        %.4f ± %.4f\n", r.ppl, r.stderr_ppl);
    std::printf("per 16k    ");
    for (double p : r.bin_ppl) std::printf("%.2f ", p);
    std::printf("\nspeed      %.0f tokens/s, %.1f s (%d threads)\n", r.tokens_per_s, r.seconds, thread_count());
}

void run_ppl(const PplArgs& a) {
    apply_threads(a.common);
    LoadedModel lm = load_model(a.model);
    const Model& m = *lm.model;
    const std::string text = read_text_file(a.file);
    const auto ids = lm.tokenizer->encode(text, /*add_special=*/false);
    if (a.stream) {
        if (device_is_cuda(a.device)) fail("ppl --stream runs on the CPU (its window/streaming caches are not on the GPU): drop --device cuda");
        return run_stream_ppl(a, lm, ids);
    }

    PplOptions opt;
    opt.ctx = a.ctx;
    opt.protocol = a.protocol == "second-half" ? PplProtocol::SecondHalf : PplProtocol::Full;
    opt.bos_id = lm.tokenizer->adds_bos() ? lm.tokenizer->bos_id() : -1;
    opt.window_bos_replace = opt.bos_id >= 0;
    opt.stream_bos_prepend = a.stream_bos && opt.bos_id >= 0;
    opt.max_windows = a.max_windows;
    opt.cache = cache_options(a.cache, m.config);
    opt.cache_batch = a.batch;

    const int64_t total = int64_t(ppl_windows(ids, opt).size());
    std::unique_ptr<Runner> runner = make_device_runner(m, a.device, opt.cache, opt.ctx, opt.cache_batch, !a.common.json);
    Progress bar("ppl", total, "windows");
    PplResult r = perplexity(*runner, ids, opt, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish();

    const double flops = double(r.windows) * forward_flops(m, opt.ctx, 0, opt.ctx);
    const double gflops = flops / r.seconds / 1e9;
    if (a.common.json) {
        print_json({{"model", a.model}, {"file", a.file}, {"ctx", opt.ctx}, {"protocol", a.protocol},
                    {"window_bos", opt.window_bos_replace ? "replace" : "keep"},
                    {"stream_bos", opt.stream_bos_prepend ? "prepend" : "none"}, {"cache", opt.cache.to_json()}, {"ppl", r.ppl}, {"stderr", r.stderr_ppl},
                    {"tokens", r.tokens}, {"file_tokens", ids.size()}, {"windows", r.windows}, {"scored_tokens", r.scored_tokens},
                    {"seconds", r.seconds}, {"tokens_per_s", r.tokens_per_s}, {"gflops_per_s", gflops},
                    {"threads", thread_count()}, {"device", a.device}, {"window_nll_sums", r.window_nll_sums}});
        return;
    }
    std::printf("model      %s (%s, %s)\n", a.model.c_str(), m.config.architecture.c_str(), m.format_summary().c_str());
    std::printf("text       %s: %zu tokens\n", a.file.c_str(), ids.size());
    std::printf("protocol   %s, ctx %lld, %lld windows, %lld scored tokens%s\n", a.protocol.c_str(), (long long)opt.ctx,
                (long long)r.windows, (long long)r.scored_tokens, opt.window_bos_replace ? ", BOS at every window start" : "");
    if (!opt.cache.reference()) std::printf("cache      %s\n", opt.cache.describe().c_str());
    std::printf("PPL        %.4f ± %.4f\n", r.ppl, r.stderr_ppl);
    if (device_is_cuda(a.device)) std::printf("speed      %.0f tokens/s, %.1f GFLOP/s, %.1f s (GPU)\n", r.tokens_per_s, gflops, r.seconds);
    else std::printf("speed      %.0f tokens/s, %.1f GFLOP/s, %.1f s (%d threads)\n", r.tokens_per_s, gflops, r.seconds, thread_count());
}

}  // namespace

void register_ppl(CLI::App& app) {
    auto a = std::make_shared<PplArgs>();
    CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a model on a text file (EVAL.md protocols)");
    cmd->add_option("model", a->model, "Model directory (Hugging Face or planeq output)")->required();
    cmd->add_option("-f,--file", a->file, "Text file (read whole, no normalization)")->required();
    cmd->add_option("-c,--ctx", a->ctx, "Window length in tokens")->capture_default_str()->check(CLI::Range(2, 1 << 20));
    cmd->add_option("--protocol", a->protocol, "full: every position scored (papers); second-half: llama-perplexity's scoring")
        ->check(CLI::IsMember({"full", "second-half"}))
        ->capture_default_str();
    cmd->add_option("--max-windows", a->max_windows, "Evaluate only the first K windows (0 = all)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--stream-bos", a->stream_bos, "Prepend one BOS to the whole token stream (llama-perplexity does)");
    add_cache_options(*cmd, a->cache);
    add_device_option(*cmd, a->device);
    cmd->add_flag("--stream", a->stream, "Run the whole text through one cache (no windows): streaming perplexity");
    cmd->add_option("--batch", a->batch, "Window/streaming caches: tokens per forward (1 = token by token; B > 1 runs blocks of B "
                                         "queries, each with its own attention set: same result up to rounding)")
        ->capture_default_str()->check(CLI::Range(1, 4096));
    cmd->add_option("--skip", a->skip, "--stream: do not score predictions of the first K tokens")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--max-tokens", a->max_tokens, "--stream: stream only the first K tokens (0 = all)")->check(CLI::NonNegativeNumber);
    add_common(*cmd, a->common);
    cmd->callback([a] { run_ppl(*a); });
}

}  // namespace planeq::cli
