// planeq bench-quant: the time to quantize a model of a real shape (random weights, random calibration
// activations, no checkpoint): per decoder layer the four Hessians (q/k/v share one, gate/up share one) from
// --tokens activation rows, then GPTQ or BPDQ of its 7 linears, on the CPU or the GPU (--device cuda).
// Random data generation is not timed (it stands in for the calibration forward, which is not measured).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include "common.hpp"
#include "core/error.hpp"
#include "model/synthetic.hpp"
#include "quant/bpdq.hpp"
#include "quant/gptq.hpp"
#include "quant/hessian.hpp"
#ifdef PLANEQ_HAVE_CUDA
#include "quant/cuda/quant_cuda.hpp"
#endif

namespace planeq::cli {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct BenchQuantArgs {
    CommonOptions common;
    std::string shape = "llama3-8b", method = "bpdq", device = "cpu";
    int bits = 2, group = 128, iters = 10;
    int64_t tokens = 262144, chunk = 2048, layers = 0;
    double time_limit = 0;
    uint64_t seed = 1;
};

// One device's Hessian and method calls; each returns the seconds it took (data generation excluded).
struct Backend {
    virtual ~Backend() = default;
    virtual double hessian(int64_t cols, int64_t tokens, int64_t chunk, uint64_t seed) = 0;  // the current H
    virtual double quantize(int64_t rows, int64_t cols, uint64_t seed, double& loss) = 0;    // with the current H
};

GptqOptions gptq_options(const BenchQuantArgs& a) {
    GptqOptions o;  // GPTQ.md defaults: GAR order, damping 0.01, asymmetric
    o.bits = a.bits, o.group = a.group;
    return o;
}
BpdqOptions bpdq_options(const BenchQuantArgs& a) {
    BpdqOptions o;  // BPDQ.md defaults: damping 0.05, α = 1e-4, bf16 coefficients
    o.bits = a.bits, o.group = a.group, o.iters = a.iters;
    return o;
}

struct CpuBackend final : Backend {
    const BenchQuantArgs& a;
    std::vector<double> H;
    explicit CpuBackend(const BenchQuantArgs& args) : a(args) {}
    double hessian(int64_t cols, int64_t tokens, int64_t chunk, uint64_t seed) override {
        HessianAccumulator acc(cols);
        std::vector<float> x;
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd;
        double s = 0;
        for (int64_t done = 0; done < tokens; done += chunk) {
            const int64_t n = std::min(chunk, tokens - done);
            x.resize(size_t(n * cols));
            for (float& v : x) v = nd(rng);
            const auto t0 = Clock::now();
            acc.add(x.data(), n);
            s += since(t0);
        }
        const auto t0 = Clock::now();
        H = acc.finalize();
        return s + since(t0);
    }
    double quantize(int64_t rows, int64_t cols, uint64_t seed, double& loss) override {
        std::vector<float> W(size_t(rows * cols));
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 0.02f);
        for (float& w : W) w = nd(rng);
        const auto t0 = Clock::now();
        loss = a.method == "gptq" ? gptq_quantize(W.data(), rows, cols, H.data(), gptq_options(a)).loss
                                  : bpdq_quantize(W.data(), rows, cols, H.data(), bpdq_options(a)).loss;
        return since(t0);
    }
};

#ifdef PLANEQ_HAVE_CUDA
struct CudaBackend final : Backend {
    const BenchQuantArgs& a;
    cuda::DeviceArray<double> H;
    explicit CudaBackend(const BenchQuantArgs& args) : a(args) { cuda::make_quant_device(); }  // fails without a GPU
    double hessian(int64_t cols, int64_t tokens, int64_t chunk, uint64_t seed) override {
        cuda::GpuHessian acc(cols);
        cuda::DeviceArray<float> x(size_t(std::min(chunk, tokens) * cols));
        double s = 0;
        for (int64_t done = 0, i = 0; done < tokens; done += chunk, ++i) {
            const int64_t n = std::min(chunk, tokens - done);
            cuda::fill_normal(x.data(), size_t(n * cols), seed * 1000003 + uint64_t(i), 1.0f);
            cuda::synchronize();
            const auto t0 = Clock::now();
            acc.add(x.data(), nullptr, n);
            cuda::synchronize();
            s += since(t0);
        }
        const auto t0 = Clock::now();
        H = cuda::DeviceArray<double>();
        H.resize(size_t(cols * cols));
        acc.finalize(double(tokens), H.data());
        cuda::synchronize();
        return s + since(t0);
    }
    double quantize(int64_t rows, int64_t cols, uint64_t seed, double& loss) override {
        cuda::DeviceArray<float> W(size_t(rows * cols));
        cuda::fill_normal(W.data(), W.size(), seed, 0.02f);
        cuda::synchronize();
        const auto t0 = Clock::now();
        loss = a.method == "gptq" ? cuda::gptq_quantize(W.data(), rows, cols, H.data(), gptq_options(a)).loss
                                  : cuda::bpdq_quantize(W.data(), rows, cols, H.data(), bpdq_options(a)).loss;
        return since(t0);
    }
};
#endif

void run_bench_quant(BenchQuantArgs& a) {
    apply_threads(a.common);
    if (a.method != "gptq" && a.method != "bpdq") fail("--method must be gptq or bpdq (got '" + a.method + "')");
    std::unique_ptr<Backend> be;
    if (a.device == "cpu") {
        be = std::make_unique<CpuBackend>(a);
    } else if (a.device == "cuda") {
#ifdef PLANEQ_HAVE_CUDA
        be = std::make_unique<CudaBackend>(a);
#else
        fail("--device cuda: this planeq was built without CUDA (configure with -DPLANEQ_CUDA=ON)");
#endif
    } else {
        fail("--device must be cpu or cuda (got '" + a.device + "')");
    }
    const ModelConfig c = shape_config(a.shape);
    const int64_t d = c.hidden, qd = c.q_dim(), kvd = c.kv_dim(), I = c.intermediate;
    for (int64_t cols : {d, qd, I})
        if (cols % a.group) fail("--group " + std::to_string(a.group) + " does not divide " + std::to_string(cols) + " columns");
    const int64_t nl = a.layers > 0 ? std::min<int64_t>(a.layers, c.n_layers) : c.n_layers;
    struct Sub {
        const char* name;
        int64_t cols;
        std::vector<std::pair<const char*, int64_t>> linears;  // (name, rows)
    };
    const std::vector<Sub> subs = {{"qkv", d, {{"q", qd}, {"k", kvd}, {"v", kvd}}}, {"o", qd, {{"o", d}}},
                                   {"gate_up", d, {{"gate", I}, {"up", I}}}, {"down", I, {{"down", d}}}};
    const bool text = !a.common.json;
    if (text)
        std::printf("bench-quant: %s (%lld layers of 7 linears), %s k=%d g=%d%s, %lld calibration tokens, device %s\n", a.shape.c_str(),
                    (long long)c.n_layers, a.method.c_str(), a.bits, a.group,
                    a.method == "bpdq" ? (", " + std::to_string(a.iters) + " iterations").c_str() : "", (long long)a.tokens, a.device.c_str());
    {  // warm-up (library handles, kernel loading), not timed
        double l = 0;
        be->hessian(2 * a.group, 512, 512, 999);
        be->quantize(64, 2 * a.group, 999, l);
    }
    nlohmann::json layers = nlohmann::json::array();
    double total_h = 0, total_m = 0, loss_sum = 0;
    const auto t_start = Clock::now();
    int64_t done = 0;
    uint64_t seed = a.seed * 7919;
    for (int64_t l = 0; l < nl; ++l) {
        double lh = 0, lm = 0;
        nlohmann::json per = nlohmann::json::object();
        for (const Sub& s : subs) {
            const double th = be->hessian(s.cols, a.tokens, a.chunk, ++seed);
            lh += th;
            per[std::string("H_") + s.name] = th;
            for (const auto& [name, rows] : s.linears) {
                double loss = 0;
                const double tm = be->quantize(rows, s.cols, ++seed, loss);
                lm += tm;
                loss_sum += loss;
                per[name] = tm;
            }
        }
        total_h += lh, total_m += lm;
        ++done;
        layers.push_back({{"layer", l}, {"hessian_s", lh}, {"method_s", lm}, {"detail_s", per}});
        if (text) {
            std::printf("layer %2lld/%lld: Hessians %7.2f s, %s %7.2f s (", (long long)l + 1, (long long)c.n_layers, lh, a.method.c_str(), lm);
            bool first = true;
            for (const char* n : {"q", "k", "v", "o", "gate", "up", "down"}) {
                std::printf("%s%s %.2f", first ? "" : ", ", n, per[n].get<double>());
                first = false;
            }
            std::printf("), elapsed %.1f s\n", since(t_start));
            std::fflush(stdout);
        }
        if (a.time_limit > 0 && since(t_start) > a.time_limit && l + 1 < nl) {
            if (text) std::printf("time limit %.0f s reached after %lld layers\n", a.time_limit, (long long)done);
            break;
        }
    }
    const double per_layer = (total_h + total_m) / double(done);
    const double model_s = per_layer * double(c.n_layers);
    nlohmann::json j{{"shape", a.shape},        {"method", a.method},          {"bits", a.bits},
                     {"group", a.group},        {"iters", a.method == "bpdq" ? a.iters : 0},
                     {"tokens", a.tokens},      {"device", a.device},          {"layers_measured", done},
                     {"n_layers", c.n_layers},  {"hessian_s", total_h},        {"method_s", total_m},
                     {"measured_s", total_h + total_m}, {"model_s", model_s},  {"model_s_extrapolated", done < c.n_layers},
                     {"proxy_loss_sum", loss_sum}, {"layers", layers}};
    if (text) {
        std::printf("\n%lld layers: Hessians %.1f s + %s %.1f s = %.1f s (%.2f s per layer)\n", (long long)done, total_h, a.method.c_str(),
                    total_m, total_h + total_m, per_layer);
        std::printf("whole model (%lld layers): %.1f s%s\n", (long long)c.n_layers, model_s,
                    done < c.n_layers ? " (extrapolated from the mean layer)" : "");
    } else {
        print_json(j);
    }
}

}  // namespace

void register_bench_quant(CLI::App& app) {
    auto a = std::make_shared<BenchQuantArgs>();
    CLI::App* cmd = app.add_subcommand("bench-quant",
                                       "Time GPTQ/BPDQ quantization of a real model shape (random weights and calibration activations)");
    cmd->add_option("--shape", a->shape, "Model shape: " + shape_names())->capture_default_str();
    cmd->add_option("-m,--method", a->method, "gptq or bpdq")->check(CLI::IsMember({"gptq", "bpdq"}))->capture_default_str();
    cmd->add_option("-b,--bits", a->bits, "Bits per code (gptq) or planes k (bpdq)")->capture_default_str()->check(CLI::Range(2, 8));
    cmd->add_option("-g,--group", a->group, "Group size")->capture_default_str()->check(CLI::Range(32, 256));
    cmd->add_option("--iters", a->iters, "BPDQ iterations")->capture_default_str()->check(CLI::Range(1, 100));
    cmd->add_option("--tokens", a->tokens, "Calibration activation rows per Hessian (GPTQ's 128 × 2048 by default)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--chunk", a->chunk, "Rows per Hessian update (one calibration segment)")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--layers", a->layers, "Decoder layers to run (0 = all; the whole-model time is then extrapolated)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--time-limit", a->time_limit, "Stop after the layer that passes this many seconds (0 = none); extrapolate")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("--device", a->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
    cmd->add_option("--seed", a->seed, "Seed of the random weights and activations")->capture_default_str();
    add_common(*cmd, a->common);
    cmd->callback([a] { run_bench_quant(*a); });
}

}  // namespace planeq::cli
