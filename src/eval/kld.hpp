// KL divergence of a quantized model's next-token distribution from its base model's (EVAL.md §5,
// llama-perplexity --kl-divergence semantics). Both models run in lockstep over the windows of a
// perplexity protocol (ppl_windows: same chunks, same BOS handling, same scored positions); no logit
// file is written.
//
// Two modes:
// - Exact: p = softmax(base logits), q = softmax(quant logits) in fp64, KLD_t = Σ_v p_v (ln p_v − ln q_v)
//   over the whole vocabulary. A model against itself gives exactly 0.
// - Llama: llama.cpp's arithmetic, step for step: the base row is stored as uint16 codes plus
//   (scale, min_log_prob) (llama_encode_log_probs), decoded as ln p_v = scale·code_v + min_log_prob, and only
//   terms with ln p_v > −16 are summed; the quantized side and the per-token NLLs use llama.cpp's float
//   log-softmax. Everything on the base side (NLL, top-1, p(y)) comes from the decoded codes, as in
//   llama.cpp. Use it to compare with published llama.cpp tables.
//
// Statistics follow llama-perplexity's printout (mean_and_stderr / covariance_of_means keep its guards:
// no standard error below 11 values, no covariance below 10).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "eval/perplexity.hpp"
#include "model/model.hpp"

namespace planeq {

enum class KldMode { Exact, Llama };

// One scored position.
struct KldToken {
    double kld = 0;       // KLD_t
    double p_diff = 0;    // q(y) − p(y) for the actual next token y
    double nll_q = 0;     // −ln q(y)
    double nll_base = 0;  // −ln p(y)
    bool same_top = false;  // argmax p = argmax q (first index wins ties)
    // Predictive entropies −Σ p ln p and −Σ q ln q (exact mode only; NaN in llama mode). Beside the NLL they say
    // how confident each model is: where mean NLL ≫ mean entropy the base model is over-confident on the text,
    // and a perturbation that flattens its distribution can lower perplexity while moving away from it (KLD up).
    double entropy_base = 0, entropy_q = 0;
};

// Exact mode (fp64 softmax over f32 logits).
KldToken kld_token_exact(const float* base_logits, const float* quant_logits, int64_t vocab, int32_t target);

// llama.cpp's storage of one base row: codes[v] = round((z_v − min_logit)/scale) if z_v > min_logit else 0,
// min_logit = max(min z, max z − 16), scale = (max z − min_logit)/65535, min_log_prob = min_logit − log-sum-exp
// (all in float, as llama.cpp computes them). Returns the row's NLL of `target` (llama.cpp returns it too).
struct LlamaLogProbs {
    float scale = 0, min_log_prob = 0;
    std::vector<uint16_t> codes;
    float log_prob(int64_t v) const { return scale * float(codes[size_t(v)]) + min_log_prob; }
};
void llama_encode_log_probs(const float* logits, int64_t vocab, LlamaLogProbs& out);

// Llama mode for one position: the quantized row against the coded base row.
KldToken kld_token_llama(const LlamaLogProbs& base, const float* quant_logits, int64_t vocab, int32_t target);

// ---- statistics (factored out so they can be checked by hand) ----

struct MeanErr {
    double value = 0, err = 0;
};

// llama.cpp's mean_and_uncertainty: mean and √((E[x²] − E[x]²)/(n − 1)); the error is 0 when the variance
// estimate is not positive or n ≤ 10.
MeanErr mean_and_stderr(double sum, double sum2, int64_t n);
// llama.cpp's covariance of two means: (E[ab] − E[a]E[b])/(n − 1); 0 when n < 10.
double covariance_of_means(double sum_a, double sum_b, double sum_ab, int64_t n);

// Linear interpolation in ascending `sorted` at position f·(n − 1); f ≤ 0 → first, f ≥ 1 → last.
double percentile_sorted(std::span<const double> sorted, double fraction);
// Middle value; the mean of the middle two when n is even (llama.cpp's median).
double median_sorted(std::span<const double> sorted);

// The order statistics llama.cpp prints (the KLD table omits 75 % and 25 %; both are kept here).
struct Quantiles {
    double max = 0, p99_9 = 0, p99 = 0, p95 = 0, p90 = 0, p75 = 0, median = 0, p25 = 0, p10 = 0, p5 = 0, p1 = 0, p0_1 = 0,
           min = 0;
};
Quantiles quantiles(std::vector<double> values);  // sorts a copy

struct KldStats {
    KldMode mode = KldMode::Exact;
    int64_t tokens = 0, windows = 0, scored_tokens = 0;
    double seconds = 0;

    // Perplexity statistics.
    MeanErr ppl_q, ppl_base;   // exp(mean NLL) ± PPL·stderr(NLL)
    MeanErr ln_ppl_ratio;      // mean NLL_Q − mean NLL_base ± √(σ_Q² + σ_B² − 2 cov)
    MeanErr ppl_ratio;         // exp(ln ratio) ± ratio·err(ln ratio)
    MeanErr ppl_diff;          // PPL(Q) − PPL(base) ± √(e_Q² + e_B² − 2·PPL(Q)·PPL(base)·cov)
    double nll_correlation = 0;  // Pearson correlation of the per-token NLLs (llama.cpp's Cor(ln PPL(Q), ln PPL(base)))

    // KL divergence.
    MeanErr kld;
    Quantiles kld_q;

    // Token probability.
    MeanErr p_diff;            // mean Δp ± stderr
    Quantiles p_diff_q;
    MeanErr p_diff_rms;        // √mean(Δp²) ± ½/rms · stderr(Δp²)
    double p_diff_max_abs = 0;
    MeanErr same_top;          // fraction ± √(f(1 − f)/(n − 1))

    // Mean predictive entropy of each model in nats (exact mode; NaN in llama mode).
    MeanErr entropy_base, entropy_q;

    // Every scored position, window by window.
    std::vector<KldToken> per_token;
};

// All statistics from per-position values (no model involved).
KldStats kld_summarize(std::vector<KldToken> per_token, KldMode mode = KldMode::Exact);

// Runs `base` and `quant` over the windows of `opt` (fresh KV cache per window, one forward each) and
// summarizes. The models must have the same vocabulary size (planeq::Error otherwise).
KldStats kl_divergence(const Model& base, const Model& quant, std::span<const int32_t> ids, const PplOptions& opt, KldMode mode,
                       const PplProgress& progress = {});
// The same over two runners (model/runner.hpp; e.g. both on the GPU), each with room for opt.ctx tokens.
class Runner;
KldStats kl_divergence(Runner& base, Runner& quant, std::span<const int32_t> ids, const PplOptions& opt, KldMode mode,
                       const PplProgress& progress = {});

}  // namespace planeq
