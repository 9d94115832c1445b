#include "model/runner.hpp"

#include "model/sampler.hpp"

namespace planeq {

int32_t Runner::forward_argmax(std::span<const int32_t> tokens) { return argmax(forward(tokens, Logits::Last)); }

namespace {

class CpuRunner final : public Runner {
public:
    CpuRunner(const Model& m, const CacheOptions& o, int64_t capacity, int64_t max_batch)
        : m_(m), bounded_(o.mode == CacheMode::Full), capacity_(capacity) {
        if (o.reference()) full_ = KVCache(m.config, capacity);
        else slots_ = std::make_unique<SlotCache>(m.config, o, capacity, max_batch);
    }
    const ModelConfig& config() const override { return m_.config; }
    std::span<const float> forward(std::span<const int32_t> tokens, Logits want) override {
        if (!buf_ || buf_->max_tokens < int64_t(tokens.size())) buf_ = std::make_unique<ForwardBuffers>(m_.config, int64_t(tokens.size()));
        return slots_ ? planeq::forward(m_, *slots_, *buf_, tokens, want) : planeq::forward(m_, full_, *buf_, tokens, want);
    }
    void clear() override { slots_ ? slots_->clear() : full_.clear(); }
    int64_t length() const override { return slots_ ? slots_->length : full_.length; }
    bool full() const override { return bounded_ && length() >= capacity_; }
    size_t cache_bytes() const override { return slots_ ? slots_->bytes() : full_.bytes(); }
    const SlotCache* slot_cache() const override { return slots_.get(); }

private:
    const Model& m_;
    bool bounded_;
    int64_t capacity_;
    KVCache full_;
    std::unique_ptr<SlotCache> slots_;
    std::unique_ptr<ForwardBuffers> buf_;
};

}  // namespace

std::unique_ptr<Runner> make_cpu_runner(const Model& m, const CacheOptions& cache, int64_t capacity, int64_t max_batch) {
    return std::make_unique<CpuRunner>(m, cache, capacity, max_batch);
}

}  // namespace planeq
