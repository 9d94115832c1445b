#include "device_runner.hpp"

#include <chrono>
#include <cstdio>

#include "common.hpp"
#include "core/error.hpp"
#ifdef PLANEQ_HAVE_CUDA
#include "model/cuda/gpu_runner.hpp"
#endif

namespace planeq::cli {

void add_device_option(CLI::App& cmd, std::string& device) {
    cmd.add_option("--device", device, "cpu, or cuda: the whole forward pass on the GPU (weights stay packed; --cache full only)")
        ->capture_default_str();
}

bool device_is_cuda(const std::string& device) {
    if (device == "cpu") return false;
    if (device != "cuda") fail("--device must be cpu or cuda (got '" + device + "')");
#ifndef PLANEQ_HAVE_CUDA
    fail("--device cuda: this planeq was built without CUDA (configure with -DPLANEQ_CUDA=ON)");
#endif
    return true;
}

#ifdef PLANEQ_HAVE_CUDA
namespace {

// A GPU runner together with the upload it runs on.
class OwningGpuRunner final : public Runner {
public:
    OwningGpuRunner(std::unique_ptr<cuda::GpuModel> g, int64_t capacity) : g_(std::move(g)), r_(cuda::make_gpu_runner(*g_, capacity)) {}
    const ModelConfig& config() const override { return r_->config(); }
    std::span<const float> forward(std::span<const int32_t> t, Logits want) override { return r_->forward(t, want); }
    int32_t forward_argmax(std::span<const int32_t> t) override { return r_->forward_argmax(t); }
    void clear() override { r_->clear(); }
    int64_t length() const override { return r_->length(); }
    bool full() const override { return r_->full(); }
    size_t cache_bytes() const override { return r_->cache_bytes(); }
    size_t weight_bytes() const { return g_->weight_bytes; }

private:
    std::unique_ptr<cuda::GpuModel> g_;
    std::unique_ptr<Runner> r_;
};

}  // namespace
#endif

std::unique_ptr<Runner> make_device_runner(const Model& m, const std::string& device, const CacheOptions& cache, int64_t capacity,
                                           int64_t max_batch, bool verbose) {
    if (!device_is_cuda(device)) return make_cpu_runner(m, cache, capacity, max_batch);
#ifdef PLANEQ_HAVE_CUDA
    cuda::check_gpu_cache(cache);
    const auto t0 = std::chrono::steady_clock::now();
    auto g = cuda::GpuModel::upload(m);
    if (verbose)
        std::fprintf(stderr, "uploaded to the GPU: %s of weights (%s resident) in %.1f s\n", human_bytes(double(g->weight_bytes)).c_str(),
                     human_bytes(double(g->resident_bytes)).c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return std::make_unique<OwningGpuRunner>(std::move(g), capacity);
#else
    return nullptr;
#endif
}

size_t device_weight_bytes(const Runner& r) {
#ifdef PLANEQ_HAVE_CUDA
    if (const auto* g = dynamic_cast<const OwningGpuRunner*>(&r)) return g->weight_bytes();
#endif
    return 0;
}

}  // namespace planeq::cli
