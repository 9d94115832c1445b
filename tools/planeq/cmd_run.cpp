// planeq run: stream generated text for a prompt.
#include <cstdio>

#include "cache_args.hpp"
#include "core/process_memory.hpp"
#include "common.hpp"
#include "device_runner.hpp"
#include "loaded_model.hpp"
#include "model/generate.hpp"

namespace planeq::cli {

namespace {

struct RunArgs {
    CommonOptions common;
    std::string model, prompt;
    int64_t n = 128, ctx = 0;
    SamplerOptions sampler;
    CacheArgs cache;
    bool ignore_eos = false;
    int64_t memory_every = 0;
    std::string device = "cpu";
};

void run_run(const RunArgs& a) {
    apply_threads(a.common);
    LoadedModel lm = load_model(a.model);
    const auto prompt = lm.tokenizer->encode(a.prompt, /*add_special=*/true);
    GenerateOptions opt;
    opt.max_new_tokens = a.n;
    opt.ctx = a.ctx;
    opt.sampler = a.sampler;
    opt.stop_ids = a.ignore_eos ? std::vector<int32_t>{} : lm.model->config.eos_ids;
    opt.cache = cache_options(a.cache, lm.model->config);
    std::unique_ptr<Runner> runner = make_device_runner(*lm.model, a.device, opt.cache, generate_capacity(prompt, opt), 1, !a.common.json);
    std::vector<std::pair<int64_t, int64_t>> rss;  // (generated tokens, VmRSS KiB)
    if (a.memory_every > 0) rss.emplace_back(0, rss_kib());

    std::vector<int32_t> out;
    Utf8Stream stream;
    if (!a.common.json) {
        std::fputs(a.prompt.c_str(), stdout);
        std::fflush(stdout);
    }
    const GenerateStats st = generate(*runner, prompt, opt, [&](int32_t id) {
        out.push_back(id);
        if (a.memory_every > 0 && int64_t(out.size()) % a.memory_every == 0) {
            rss.emplace_back(int64_t(out.size()), rss_kib());
            if (!a.common.json) std::fprintf(stderr, "\n[memory] %lld tokens: VmRSS %lld KiB\n", (long long)out.size(), (long long)rss.back().second);
        }
        if (!a.common.json && !lm.tokenizer->is_special(id)) {
            std::fputs(stream.push(lm.tokenizer->token_bytes(id)).c_str(), stdout);
            std::fflush(stdout);
        }
        return true;
    });
    nlohmann::json mem = nlohmann::json::array();
    for (auto [t, kib] : rss) mem.push_back({{"tokens", t}, {"vmrss_kib", kib}});
    if (a.common.json) {
        print_json({{"cache", opt.cache.to_json()}, {"cache_bytes", st.cache_bytes}, {"memory", mem}, {"prompt", a.prompt}, {"prompt_tokens", st.prompt_tokens}, {"text", lm.tokenizer->decode(out, true)},
                    {"ids", out}, {"generated_tokens", st.generated_tokens}, {"stopped_at_eos", st.stopped_at_eos},
                    {"prompt_tokens_per_s", st.prompt_tokens_per_s()}, {"generate_tokens_per_s", st.generate_tokens_per_s()},
                    {"threads", thread_count()}, {"device", a.device}});
        return;
    }
    std::fputs(stream.flush().c_str(), stdout);
    std::printf("\n");
    std::fprintf(stderr, "\nprompt: %lld tokens, %.1f tokens/s | generated: %lld tokens, %.1f tokens/s%s\n",
                 (long long)st.prompt_tokens, st.prompt_tokens_per_s(), (long long)st.generated_tokens,
                 st.generate_tokens_per_s(), st.stopped_at_eos ? " (stopped at EOS)" : "");
}

}  // namespace

void register_run(CLI::App& app) {
    auto a = std::make_shared<RunArgs>();
    CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt (streams to stdout)");
    cmd->add_option("model", a->model, "Model directory")->required();
    cmd->add_option("-p,--prompt", a->prompt, "Prompt text")->required();
    cmd->add_option("-n,--n-predict", a->n, "Tokens to generate at most")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--temp", a->sampler.temperature, "Temperature; 0 = greedy")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-k", a->sampler.top_k, "Top-k cut (0 = off)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", a->sampler.top_p, "Nucleus cut (1 = off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--min-p", a->sampler.min_p, "Min-p cut (0 = off)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", a->sampler.seed, "Sampling seed")->capture_default_str();
    cmd->add_option("-c,--ctx", a->ctx, "KV cache size of --cache full (default: prompt + n)")->check(CLI::NonNegativeNumber);
    add_cache_options(*cmd, a->cache);
    add_device_option(*cmd, a->device);
    cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at end-of-sequence tokens");
    cmd->add_option("--memory-every", a->memory_every, "Sample the process's VmRSS every K generated tokens (0 = off)")
        ->check(CLI::NonNegativeNumber);
    add_common(*cmd, a->common);
    cmd->callback([a] { run_run(*a); });
}

}  // namespace planeq::cli
