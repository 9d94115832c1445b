#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>

namespace planeq {

int32_t argmax(std::span<const float> logits) {
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t Sampler::sample(std::span<const float> logits) {
    if (opt_.temperature <= 0) return argmax(logits);
    cand_.resize(logits.size());
    for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {logits[i], int32_t(i)};
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    size_t keep = cand_.size();
    if (opt_.top_k > 0 && size_t(opt_.top_k) < keep) {
        keep = size_t(opt_.top_k);
        std::partial_sort(cand_.begin(), cand_.begin() + long(keep), cand_.end(), by_logit);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    cand_.resize(keep);
    // Probabilities at temperature 1 decide the nucleus and min-p cut, as llama.cpp's default chain.
    std::vector<double> p(keep);
    double sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(double(cand_[i].first - cand_[0].first));
    if (opt_.top_p < 1.0f) {
        double acc = 0;
        size_t n = 0;
        while (n < keep) {
            acc += p[n++] / sum;
            if (acc >= opt_.top_p) break;
        }
        keep = std::max<size_t>(n, 1);
    }
    if (opt_.min_p > 0) {
        size_t n = 1;
        while (n < keep && p[n] / p[0] >= opt_.min_p) ++n;
        keep = n;
    }
    std::vector<double> w(keep);
    for (size_t i = 0; i < keep; ++i) w[i] = std::exp(double(cand_[i].first - cand_[0].first) / opt_.temperature);
    std::discrete_distribution<size_t> dist(w.begin(), w.end());
    return cand_[dist(rng_)].second;
}

}  // namespace planeq
