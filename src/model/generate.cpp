#include "model/generate.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "model/forward.hpp"
#include "model/runner.hpp"

namespace planeq {

GenerateStats generate(Runner& r, std::span<const int32_t> prompt, const GenerateOptions& opt,
                       const std::function<bool(int32_t)>& on_token) {
    if (prompt.empty()) fail("the prompt is empty (a model needs at least one token to condition on)");
    Sampler sampler(opt.sampler);
    const bool greedy = opt.sampler.temperature <= 0;  // the runner picks the argmax (on the GPU: no logits copy)
    auto step = [&](std::span<const int32_t> t) { return greedy ? r.forward_argmax(t) : sampler.sample(r.forward(t, Logits::Last)); };
    GenerateStats st;
    st.prompt_tokens = int64_t(prompt.size());
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    int32_t next = step(prompt);
    st.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();

    t0 = clock::now();
    while (st.generated_tokens < opt.max_new_tokens && !r.full()) {
        if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), next) != opt.stop_ids.end()) {
            st.stopped_at_eos = true;
            break;
        }
        ++st.generated_tokens;
        if (!on_token(next)) break;
        if (st.generated_tokens == opt.max_new_tokens || r.full()) break;
        next = step(std::span<const int32_t>(&next, 1));
    }
    st.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    st.cache_bytes = r.cache_bytes();
    return st;
}

int64_t generate_capacity(std::span<const int32_t> prompt, const GenerateOptions& opt) {
    const int64_t capacity = opt.ctx > 0 ? opt.ctx : int64_t(prompt.size()) + opt.max_new_tokens;
    if (opt.cache.mode == CacheMode::Full && int64_t(prompt.size()) >= capacity)  // window/streaming caches never fill up
        fail("the prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " + std::to_string(capacity));
    return capacity;
}

GenerateStats generate(const Model& m, std::span<const int32_t> prompt, const GenerateOptions& opt,
                       const std::function<bool(int32_t)>& on_token) {
    if (prompt.empty()) fail("the prompt is empty (a model needs at least one token to condition on)");
    std::unique_ptr<Runner> r = make_cpu_runner(m, opt.cache, generate_capacity(prompt, opt), 1);
    return generate(*r, prompt, opt, on_token);
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
