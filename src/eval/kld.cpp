#include "eval/kld.hpp"

#include "kernels/cpu/vec_math.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "model/forward.hpp"
#include "model/runner.hpp"

namespace planeq {

namespace {

int64_t argmax_first(const float* x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

// llama.cpp's nearest_int: round to nearest (ties to even) by the 1.5·2²³ trick, valid for |x| < 2²².
int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    int i;
    std::memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

}  // namespace

KldToken kld_token_exact(const float* z, const float* w, int64_t vocab, int32_t target) {
    const int64_t top_p = argmax_first(z, vocab), top_q = argmax_first(w, vocab);
    // The same fp64 log-sum-exp as token_nll, so NLLs (and PPL) equal the ppl command's bit for bit.
    const double lse_p = cpu::log_sum_exp(z, vocab), lse_q = cpu::log_sum_exp(w, vocab);
    double kld = 0, hp = 0, hq = 0;
    for (int64_t v = 0; v < vocab; ++v) {
        const double lp = double(z[v]) - lse_p, lq = double(w[v]) - lse_q;
        const double p = std::exp(lp), q = std::exp(lq);
        kld += p * (lp - lq);
        hp -= p * lp;
        hq -= q * lq;
    }
    KldToken t;
    t.kld = kld;
    t.entropy_base = hp;
    t.entropy_q = hq;
    t.nll_base = lse_p - double(z[target]);
    t.nll_q = lse_q - double(w[target]);
    t.p_diff = std::exp(-t.nll_q) - std::exp(-t.nll_base);
    t.same_top = top_p == top_q;
    return t;
}

void llama_encode_log_probs(const float* logits, int64_t vocab, LlamaLogProbs& out) {
    // Float arithmetic exactly as llama.cpp's log_softmax(n_vocab, logits, uint16_t* log_prob, tok).
    float max_logit = logits[0], min_logit = logits[0];
    for (int64_t i = 1; i < vocab; ++i) {
        max_logit = std::max(max_logit, logits[i]);
        min_logit = std::min(min_logit, logits[i]);
    }
    min_logit = std::max(min_logit, max_logit - 16);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = float(std::log(sum_exp));
    out.min_log_prob = min_logit - max_logit - log_sum_exp;
    out.scale = (max_logit - min_logit) / 65535.f;
    out.codes.assign(size_t(vocab), 0);
    if (out.scale != 0.f) {
        const float inv_scale = 1 / out.scale;
        for (int64_t i = 0; i < vocab; ++i)
            out.codes[size_t(i)] = logits[i] > min_logit ? uint16_t(nearest_int(inv_scale * (logits[i] - min_logit))) : 0;
    }
}

KldToken kld_token_llama(const LlamaLogProbs& base, const float* logits, int64_t vocab, int32_t tok) {
    // llama.cpp's log_softmax(n_vocab, logits, base_log_prob, tok, kld), float for float.
    float max_logit = logits[0];
    int64_t imax = 0;
    for (int64_t i = 1; i < vocab; ++i) {
        if (logits[i] > max_logit) {
            max_logit = logits[i];
            imax = i;
        }
    }
    double sum_exp = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = float(std::log(sum_exp));
    const float scale = base.scale, min_log_prob = base.min_log_prob;
    const uint16_t* code = base.codes.data();

    const float nll = max_logit + log_sum_exp - logits[tok];
    const float nll_base = -(scale * float(code[tok]) + min_log_prob);

    max_logit += log_sum_exp;
    double sum = 0;
    int64_t imax_base = -1;
    float p_log_base_max = 0;
    for (int64_t i = 0; i < vocab; ++i) {
        const float p_log_base = scale * float(code[i]) + min_log_prob;
        if (i == 0 || p_log_base > p_log_base_max) {
            p_log_base_max = p_log_base;
            imax_base = i;
        }
        if (p_log_base > -16.f) {
            const float p_base = expf(p_log_base);
            const float term = p_base * (p_log_base - logits[i] + max_logit);
            sum += term;
        }
    }
    const float p_base = expf(-nll_base);
    const float p = expf(-nll);
    const float p_diff = p - p_base;

    KldToken t;
    t.kld = sum;
    t.nll_q = nll;
    t.nll_base = nll_base;
    t.p_diff = p_diff;
    t.same_top = imax == imax_base;
    t.entropy_base = t.entropy_q = std::numeric_limits<double>::quiet_NaN();  // not part of llama.cpp's arithmetic
    return t;
}

MeanErr mean_and_stderr(double sum, double sum2, int64_t n) {
    if (n < 1) return {};
    const double f = sum / double(n);
    double df = sum2 / double(n) - f * f;
    df = df > 0 && n > 10 ? std::sqrt(df / double(n - 1)) : 0.0;
    return {f, df};
}

double covariance_of_means(double sum_a, double sum_b, double sum_ab, int64_t n) {
    if (n < 10) return 0.0;
    const double cov = sum_ab / double(n) - (sum_a / double(n)) * (sum_b / double(n));
    return cov / double(n - 1);
}

double percentile_sorted(std::span<const double> v, double fraction) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    if (fraction <= 0) return v.front();
    if (fraction >= 1) return v.back();
    double p = fraction * double(v.size() - 1);
    const size_t ip = size_t(p);
    p -= double(ip);
    return (1 - p) * v[ip] + p * v[std::min(ip + 1, v.size() - 1)];
}

double median_sorted(std::span<const double> v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    const size_t n = v.size();
    return n % 2 == 0 ? 0.5 * (v[n / 2] + v[n / 2 - 1]) : v[n / 2];
}

Quantiles quantiles(std::vector<double> v) {
    Quantiles q;
    if (v.empty()) return q;
    std::sort(v.begin(), v.end());
    q.max = v.back();
    q.p99_9 = percentile_sorted(v, 0.999);
    q.p99 = percentile_sorted(v, 0.99);
    q.p95 = percentile_sorted(v, 0.95);
    q.p90 = percentile_sorted(v, 0.90);
    q.p75 = percentile_sorted(v, 0.75);
    q.median = median_sorted(v);
    q.p25 = percentile_sorted(v, 0.25);
    q.p10 = percentile_sorted(v, 0.10);
    q.p5 = percentile_sorted(v, 0.05);
    q.p1 = percentile_sorted(v, 0.01);
    q.p0_1 = percentile_sorted(v, 0.001);
    q.min = v.front();
    return q;
}

KldStats kld_summarize(std::vector<KldToken> per_token, KldMode mode) {
    KldStats s;
    s.mode = mode;
    const int64_t n = int64_t(per_token.size());
    s.scored_tokens = n;
    double nll = 0, nll2 = 0, nllb = 0, nllb2 = 0, nll_nllb = 0, kld = 0, kld2 = 0, pd = 0, pd2 = 0, pd4 = 0;
    double hb = 0, hb2 = 0, hq = 0, hq2 = 0;
    int64_t same = 0;
    std::vector<double> kld_values, p_diff_values;
    kld_values.reserve(size_t(n));
    p_diff_values.reserve(size_t(n));
    for (const KldToken& t : per_token) {
        nll += t.nll_q;
        nll2 += t.nll_q * t.nll_q;
        nllb += t.nll_base;
        nllb2 += t.nll_base * t.nll_base;
        nll_nllb += t.nll_q * t.nll_base;
        kld += t.kld;
        kld2 += t.kld * t.kld;
        pd += t.p_diff;
        const double d2 = t.p_diff * t.p_diff;
        pd2 += d2;
        pd4 += d2 * d2;
        s.p_diff_max_abs = std::max(s.p_diff_max_abs, std::fabs(t.p_diff));
        same += t.same_top ? 1 : 0;
        hb += t.entropy_base;
        hb2 += t.entropy_base * t.entropy_base;
        hq += t.entropy_q;
        hq2 += t.entropy_q * t.entropy_q;
        kld_values.push_back(t.kld);
        p_diff_values.push_back(t.p_diff);
    }

    const MeanErr log_ppl = mean_and_stderr(nll, nll2, n);
    const MeanErr log_ppl_base = mean_and_stderr(nllb, nllb2, n);
    s.ppl_q = {std::exp(log_ppl.value), std::exp(log_ppl.value) * log_ppl.err};
    s.ppl_base = {std::exp(log_ppl_base.value), std::exp(log_ppl_base.value) * log_ppl_base.err};
    const double cov = covariance_of_means(nll, nllb, nll_nllb, n);
    // Identical NLLs make the radicands 0 up to rounding: clamp (llama.cpp would print nan there).
    s.ln_ppl_ratio = {log_ppl.value - log_ppl_base.value,
                      std::sqrt(std::max(0.0, log_ppl.err * log_ppl.err + log_ppl_base.err * log_ppl_base.err - 2.0 * cov))};
    s.ppl_ratio = {std::exp(s.ln_ppl_ratio.value), std::exp(s.ln_ppl_ratio.value) * s.ln_ppl_ratio.err};
    s.ppl_diff = {s.ppl_q.value - s.ppl_base.value,
                  std::sqrt(std::max(0.0, s.ppl_q.err * s.ppl_q.err + s.ppl_base.err * s.ppl_base.err -
                                              2.0 * s.ppl_q.value * s.ppl_base.value * cov))};
    // Pearson correlation of the NLLs: llama.cpp's cov/(σ_Q σ_B) with the (n − 1) factors cancelled.
    if (n > 0) {
        const double dn = double(n);
        const double va = nll2 / dn - (nll / dn) * (nll / dn), vb = nllb2 / dn - (nllb / dn) * (nllb / dn);
        const double c = nll_nllb / dn - (nll / dn) * (nllb / dn);
        s.nll_correlation = va > 0 && vb > 0 ? c / std::sqrt(va * vb) : std::numeric_limits<double>::quiet_NaN();
    }

    s.kld = mean_and_stderr(kld, kld2, n);
    s.kld_q = quantiles(std::move(kld_values));
    s.p_diff = mean_and_stderr(pd, pd2, n);
    s.p_diff_q = quantiles(std::move(p_diff_values));
    const MeanErr mse = mean_and_stderr(pd2, pd4, n);
    const double rms = std::sqrt(mse.value);
    s.p_diff_rms = {rms, rms > 0 ? 0.5 / rms * mse.err : 0.0};
    const double f = n > 0 ? double(same) / double(n) : 0.0;
    s.same_top = {f, n > 1 ? std::sqrt(f * (1 - f) / double(n - 1)) : 0.0};
    s.entropy_base = mean_and_stderr(hb, hb2, n);  // NaN propagates from llama-mode tokens
    s.entropy_q = mean_and_stderr(hq, hq2, n);
    s.per_token = std::move(per_token);
    return s;
}

KldStats kl_divergence(const Model& base, const Model& quant, std::span<const int32_t> ids, const PplOptions& opt, KldMode mode,
                       const PplProgress& progress) {
    if (quant.config.vocab != base.config.vocab)
        fail("base and quantized models have different vocabulary sizes (" + std::to_string(base.config.vocab) + " vs " +
             std::to_string(quant.config.vocab) + ")");
    std::unique_ptr<Runner> rb = make_cpu_runner(base, CacheOptions{}, opt.ctx), rq = make_cpu_runner(quant, CacheOptions{}, opt.ctx);
    return kl_divergence(*rb, *rq, ids, opt, mode, progress);
}

KldStats kl_divergence(Runner& base, Runner& quant, std::span<const int32_t> ids, const PplOptions& opt, KldMode mode,
                       const PplProgress& progress) {
    const int64_t vocab = base.config().vocab;
    if (quant.config().vocab != vocab)
        fail("base and quantized models have different vocabulary sizes (" + std::to_string(vocab) + " vs " +
             std::to_string(quant.config().vocab) + ")");
    const auto windows = ppl_windows(ids, opt);
    const int64_t first = opt.first_scored(), last = opt.ctx - 1;
    const int64_t per_window = std::max<int64_t>(0, last - first);

    std::vector<KldToken> all;
    all.reserve(windows.size() * size_t(per_window));
    std::vector<KldToken> row(static_cast<size_t>(per_window));
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t w = 0; w < windows.size(); ++w) {
        const auto& u = windows[w];
        base.clear();
        const auto lb = base.forward(u, Logits::All);  // stays valid: the base runner is not called again below
        quant.clear();
        const auto lq = quant.forward(u, Logits::All);
        if (mode == KldMode::Exact) {
#pragma omp parallel for schedule(static)
            for (int64_t p = first; p < last; ++p)
                row[size_t(p - first)] = kld_token_exact(lb.data() + p * vocab, lq.data() + p * vocab, vocab, u[size_t(p + 1)]);
        } else {
#pragma omp parallel
            {
                LlamaLogProbs coded;
#pragma omp for schedule(static)
                for (int64_t p = first; p < last; ++p) {
                    llama_encode_log_probs(lb.data() + p * vocab, vocab, coded);
                    row[size_t(p - first)] = kld_token_llama(coded, lq.data() + p * vocab, vocab, u[size_t(p + 1)]);
                }
            }
        }
        all.insert(all.end(), row.begin(), row.end());
        if (progress) progress(int64_t(w + 1), int64_t(windows.size()));
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    KldStats s = kld_summarize(std::move(all), mode);
    s.windows = int64_t(windows.size());
    s.tokens = s.windows * opt.ctx;
    s.seconds = seconds;
    return s;
}

}  // namespace planeq
