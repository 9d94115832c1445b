#include "model/generate.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "model/forward.hpp"

namespace planeq {

namespace {

// The decode loop over either cache: step(tokens) runs a forward and returns the last logits; full()
// says whether the cache can take another token.
template <class Step, class Full>
GenerateStats decode_loop(std::span<const int32_t> prompt, const GenerateOptions& opt, const std::function<bool(int32_t)>& on_token,
                          Step&& step, Full&& full) {
    Sampler sampler(opt.sampler);
    GenerateStats st;
    st.prompt_tokens = int64_t(prompt.size());
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    auto logits = step(prompt);
    st.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();

    t0 = clock::now();
    while (st.generated_tokens < opt.max_new_tokens && !full()) {
        const int32_t next = sampler.sample(logits);
        if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), next) != opt.stop_ids.end()) {
            st.stopped_at_eos = true;
            break;
        }
        ++st.generated_tokens;
        if (!on_token(next)) break;
        if (st.generated_tokens == opt.max_new_tokens || full()) break;
        logits = step(std::span<const int32_t>(&next, 1));
    }
    st.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return st;
}

}  // namespace

GenerateStats generate(const Model& m, std::span<const int32_t> prompt, const GenerateOptions& opt,
                       const std::function<bool(int32_t)>& on_token) {
    if (prompt.empty()) fail("the prompt is empty (a model needs at least one token to condition on)");
    const bool bounded = opt.cache.mode == CacheMode::Full;  // window/streaming caches never fill up
    const int64_t capacity = opt.ctx > 0 ? opt.ctx : int64_t(prompt.size()) + opt.max_new_tokens;
    if (bounded && int64_t(prompt.size()) >= capacity)
        fail("the prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " + std::to_string(capacity));
    ForwardBuffers buf(m.config, int64_t(prompt.size()));
    if (opt.cache.reference()) {
        KVCache cache(m.config, capacity);
        GenerateStats st = decode_loop(
            prompt, opt, on_token, [&](std::span<const int32_t> t) { return forward(m, cache, buf, t, Logits::Last); },
            [&] { return cache.length >= capacity; });
        st.cache_bytes = cache.bytes();
        return st;
    }
    SlotCache cache(m.config, opt.cache, capacity, 1);
    GenerateStats st = decode_loop(
        prompt, opt, on_token, [&](std::span<const int32_t> t) { return forward(m, cache, buf, t, Logits::Last); },
        [&] { return bounded && cache.length >= capacity; });
    st.cache_bytes = cache.bytes();
    return st;
}

std::string Utf8Stream::push(const std::string& bytes) {
    pending_ += bytes;
    // Find the end of the last complete UTF-8 sequence.
    size_t i = 0, complete = 0;
    while (i < pending_.size()) {
        const unsigned char c = static_cast<unsigned char>(pending_[i]);
        const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        if (i + len > pending_.size()) break;
        i += len;
        complete = i;
    }
    std::string out = pending_.substr(0, complete);
    pending_.erase(0, complete);
    return out;
}

std::string Utf8Stream::flush() {
    std::string out;
    out.swap(pending_);
    return out;
}

}  // namespace planeq
