#include "eval/perplexity.hpp"

#include <chrono>
#include <cmath>
#include <memory>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "kernels/cpu/vec_math.hpp"
#include "model/forward.hpp"
#include "model/runner.hpp"

namespace planeq {

std::vector<std::vector<int32_t>> ppl_windows(std::span<const int32_t> ids, const PplOptions& opt) {
    if (opt.ctx < 2) fail("--ctx must be at least 2");
    if ((opt.window_bos_replace || opt.stream_bos_prepend) && opt.bos_id < 0) fail("the model has no BOS token to place in windows");
    std::vector<int32_t> z;
    z.reserve(ids.size() + 1);
    if (opt.stream_bos_prepend) z.push_back(opt.bos_id);
    z.insert(z.end(), ids.begin(), ids.end());
    int64_t n = int64_t(z.size()) / opt.ctx;
    if (n == 0) fail("text too short: " + std::to_string(z.size()) + " tokens, fewer than one window of " + std::to_string(opt.ctx));
    if (opt.max_windows > 0) n = std::min(n, opt.max_windows);
    std::vector<std::vector<int32_t>> windows{size_t(n)};
    for (int64_t c = 0; c < n; ++c) {
        windows[size_t(c)].assign(z.begin() + c * opt.ctx, z.begin() + (c + 1) * opt.ctx);
        if (opt.window_bos_replace) windows[size_t(c)][0] = opt.bos_id;
    }
    return windows;
}

double token_nll(const float* logits, int64_t vocab, int32_t target) {
    return cpu::log_sum_exp(logits, vocab) - double(logits[target]);
}

void ppl_from_nll(std::span<const double> nll, double& ppl, double& stderr_ppl) {
    double s = 0, s2 = 0;
    for (double v : nll) {
        s += v;
        s2 += v * v;
    }
    const double n = double(nll.size());
    const double mean = s / n;
    ppl = std::exp(mean);
    stderr_ppl = n > 1 ? ppl * std::sqrt(std::max(0.0, (s2 / n - mean * mean) / (n - 1))) : 0.0;
}

PplResult perplexity(Runner& runner, std::span<const int32_t> ids, const PplOptions& opt, const PplProgress& progress) {
    const auto windows = ppl_windows(ids, opt);
    const int64_t vocab = runner.config().vocab;
    const int64_t first = opt.first_scored();
    PplResult r;
    r.windows = int64_t(windows.size());
    r.tokens = r.windows * opt.ctx;
    std::vector<double> nll_row(static_cast<size_t>(opt.ctx));
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t w = 0; w < windows.size(); ++w) {
        const auto& u = windows[w];
        runner.clear();
        const auto logits = runner.forward(u, Logits::All);
        const int64_t last = opt.ctx - 1;
#pragma omp parallel for schedule(static)
        for (int64_t p = first; p < last; ++p) nll_row[size_t(p)] = token_nll(logits.data() + p * vocab, vocab, u[size_t(p + 1)]);
        double sum = 0;
        for (int64_t p = first; p < last; ++p) {
            sum += nll_row[size_t(p)];
            r.token_nll.push_back(nll_row[size_t(p)]);
        }
        r.window_nll_sums.push_back(sum);
        if (progress) progress(int64_t(w + 1), r.windows);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.tokens_per_s = double(r.tokens) / r.seconds;
    r.scored_tokens = int64_t(r.token_nll.size());
    ppl_from_nll(r.token_nll, r.ppl, r.stderr_ppl);
    return r;
}

PplResult perplexity(const Model& m, std::span<const int32_t> ids, const PplOptions& opt, const PplProgress& progress) {
    ppl_windows(ids, opt);  // the text's errors before the cache's
    std::unique_ptr<Runner> r = make_cpu_runner(m, opt.cache, opt.ctx, opt.cache_batch);
    return perplexity(*r, ids, opt, progress);
}

StreamPplResult stream_perplexity(const Model& m, std::span<const int32_t> ids, const StreamPplOptions& opt,
                                  const PplProgress& progress) {
    std::vector<int32_t> z;
    z.reserve(ids.size() + 1);
    if (opt.bos_id >= 0) z.push_back(opt.bos_id);
    z.insert(z.end(), ids.begin(), ids.end());
    if (opt.max_tokens > 0 && int64_t(z.size()) > opt.max_tokens) z.resize(size_t(opt.max_tokens));
    const int64_t n = int64_t(z.size());
    if (n < opt.skip + 2) fail("text too short: " + std::to_string(n) + " tokens, nothing scored after skipping " + std::to_string(opt.skip));
    const int64_t vocab = m.config.vocab;
    const int64_t B = std::max<int64_t>(opt.batch, 1);
    SlotCache cache(m.config, opt.cache, n, B);
    ForwardBuffers buf(m.config, std::min(n, B));  // each forward gets at most B tokens
    StreamPplResult r;
    r.tokens = n;
    r.token_nll.reserve(size_t(n));
    std::vector<double> nll_row(static_cast<size_t>(B));
    const auto t0 = std::chrono::steady_clock::now();
    // Position p predicts z[p + 1]; the last token predicts nothing and is not fed.
    for (int64_t p0 = 0, step = 0; p0 < n - 1; p0 += B, ++step) {
        const int64_t k = std::min(B, n - 1 - p0);
        const auto logits = forward(m, cache, buf, std::span<const int32_t>(z.data() + p0, size_t(k)), Logits::All);
        parallel_for(k, k > 1, [&](int64_t i) { nll_row[size_t(i)] = token_nll(logits.data() + i * vocab, vocab, z[size_t(p0 + i + 1)]); });
        for (int64_t i = 0; i < k; ++i)
            if (p0 + i + 1 > opt.skip) r.token_nll.push_back(nll_row[size_t(i)]);
        if (progress && (step % 64 == 0 || p0 + k >= n - 1)) progress(p0 + k, n - 1);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.tokens_per_s = double(n - 1) / r.seconds;
    r.scored_tokens = int64_t(r.token_nll.size());
    r.cache_bytes = cache.bytes();
    ppl_from_nll(r.token_nll, r.ppl, r.stderr_ppl);
    for (int64_t b0 = 0; b0 < r.scored_tokens; b0 += opt.bin) {
        const int64_t b1 = std::min(r.scored_tokens, b0 + opt.bin);
        double s = 0;
        for (int64_t i = b0; i < b1; ++i) s += r.token_nll[size_t(i)];
        r.bin_ppl.push_back(std::exp(s / double(b1 - b0)));
    }
    return r;
}

}  // namespace planeq
