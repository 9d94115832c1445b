// planeq bench: prefill and decode speed of a model directory or of random weights at a real shape,
// next to the machine's memory bandwidth measured in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "bench_cuda.hpp"
#include "cache_args.hpp"
#include "common.hpp"
#include "device_runner.hpp"
#include "core/bandwidth.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "eval/kld.hpp"
#include "formats/format.hpp"
#include "loaded_model.hpp"
#include "model/flops.hpp"
#include "model/forward.hpp"
#include "model/slot_cache.hpp"
#include "model/synthetic.hpp"
#include "quant/calibration.hpp"

namespace planeq::cli {

namespace {

struct BenchArgs {
    CommonOptions common;
    std::string model, shape, format = "bf16";
    FormatParams params{4, 128, false, false};
    int64_t prompt = 512, generate = 128;
    int reps = 5;
    bool no_bandwidth = false;
    std::string device = "cpu";
    int batch = 1;
    bool no_baseline = false;
    bool quantize_head = false;
    bool forward = false;  // --device cuda --shape: the whole forward instead of the linear stack
    CacheArgs cache;
};

struct Stats {
    double median = 0, min = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v.front(), v.back()};
}

void run_bench_on_gpu(BenchArgs& a) {
#ifdef PLANEQ_HAVE_CUDA
    if (a.shape.empty()) fail("--device cuda needs --shape (random weights at a real shape)");
    CudaBenchOptions o;
    o.shape = a.shape, o.format = a.format, o.params = a.params, o.generate = a.generate, o.reps = a.reps;
    o.prompt = a.prompt;
    o.batch = a.batch, o.baseline = !a.no_baseline, o.text = !a.common.json;
    const nlohmann::json j = run_bench_cuda(o);
    if (a.common.json) print_json(j);
#else
    fail("--device cuda: this planeq was built without CUDA (configure with -DPLANEQ_CUDA=ON)");
#endif
}

void run_bench(BenchArgs& a) {
    const bool gpu = device_is_cuda(a.device);
    if (gpu && a.model.empty() && !a.forward) return run_bench_on_gpu(a);  // the linear stack of a shape
    if (a.forward && !(gpu && !a.shape.empty())) fail("--forward goes with --device cuda --shape NAME (a MODEL always runs the whole forward)");
    apply_threads(a.common);
    if (a.model.empty() == a.shape.empty()) fail("give either a MODEL directory or --shape NAME");
    if (gpu) a.no_bandwidth = true;  // the host's bandwidth says nothing about the GPU
    if (a.quantize_head && a.shape.empty()) fail("--quantize-head needs --shape (a model directory has its own lm_head)");
    // Bandwidth first, before the model occupies memory, and again after every timed decode run: this
    // machine's bandwidth drifts (±25% over minutes on a shared VM), so the fraction decode reaches is
    // judged against the median of measurements taken between its own runs.
    std::vector<Bandwidth> bws;
    if (!a.no_bandwidth) bws.push_back(measure_bandwidth());

    std::unique_ptr<Model> owned;
    std::string what;
    if (!a.shape.empty()) {
        const WeightFormat* fmt = find_format(a.format);
        if (!fmt) fail("unknown format '" + a.format + "' (known: " + format_names() + ")");
        if (fmt->name == "bf16" || fmt->name == "f32" || fmt->name == "f16") a.params = FormatParams{16, 0, false, false};
        const ModelConfig c = shape_config(a.shape);
        uint64_t seed = 1;
        // On the GPU one random weight per shape is generated and every layer gets a device clone of it.
        std::map<std::pair<int64_t, int64_t>, PackedWeight> per_shape;
        owned = synthetic_model(c, [&](const std::string&, int64_t r, int64_t k) {
            if (!gpu) return random_weight(*fmt, r, k, a.params, seed++);
            auto it = per_shape.find({r, k});
            if (it == per_shape.end()) it = per_shape.emplace(std::make_pair(r, k), random_weight(*fmt, r, k, a.params, seed++)).first;
            return it->second;
        }, 0);
        if (a.quantize_head) {
            if (c.tie_embeddings) fail("--quantize-head: shape '" + a.shape + "' ties lm_head to the embeddings");
            owned->lm_head.weight = random_weight(*fmt, c.vocab, c.hidden, a.params, seed++);
        }
        what = a.shape + " (random weights)";
    } else {
        owned = load_model(a.model, false).model;
        what = a.model;
    }
    const Model& m = *owned;
    const ModelConfig& c = m.config;
    PortableRng rng(7);
    std::vector<int32_t> tokens(size_t(std::max<int64_t>(a.prompt, 1)));
    for (int32_t& t : tokens) t = int32_t(rng.below(uint64_t(c.vocab)));

    const CacheOptions copt = cache_options(a.cache, c);
    std::unique_ptr<Runner> runner = make_device_runner(m, a.device, copt, a.prompt + a.generate + 1, 1, !a.common.json);
    const SlotCache* slots = runner->slot_cache();  // --cache / --kv-bits on the CPU: the decode test runs through it
    auto step = [&](std::span<const int32_t> t) { return runner->forward_argmax(t); };
    auto reset = [&] { runner->clear(); };
    // Bytes one decode step streams: the GPU layout's (linears + head) on the GPU, the stored tensors on the CPU.
    const double bytes_tok = gpu ? double(device_weight_bytes(*runner)) : double(m.decode_bytes_per_token());
    // Where a token's weights are far beyond any cache, each token is also judged against the read
    // bandwidth sampled just before and just after it (ReadProbe): the drift between the runs and the
    // measurements in `bws` is then out of the ratio. Not for small models, whose weights the probe's
    // reads would evict from the last-level cache they otherwise live in.
    std::unique_ptr<ReadProbe> probe;
    if (!a.no_bandwidth && a.generate > 0 && bytes_tok >= double(size_t(1) << 30)) probe = std::make_unique<ReadProbe>();
    std::vector<double> prefill, decode, paired;
    Progress bar("bench", 2 * (a.reps + 1), "runs");
    for (int rep = 0; rep <= a.reps; ++rep) {  // repetition 0 warms caches and page mappings up
        if (a.prompt > 0) {
            reset();
            const auto t0 = std::chrono::steady_clock::now();
            step(tokens);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (rep > 0) prefill.push_back(double(a.prompt) / s);
        }
        bar.update(2 * rep + 1);
        if (a.generate > 0) {
            reset();
            int32_t tok = tokens[0];
            step(std::span<const int32_t>(&tok, 1));
            const bool probing = probe && rep > 0;  // the warm-up repetition's tokens are not judged
            double s = 0, read_before = probing ? probe->sample_gbs() : 0;
            for (int64_t i = 0; i < a.generate; ++i) {
                tok = int32_t((tok * 7 + 13) % c.vocab);
                const auto t0 = std::chrono::steady_clock::now();
                step(std::span<const int32_t>(&tok, 1));
                const double st = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                s += st;
                if (!probing) continue;
                const double read_after = probe->sample_gbs();
                paired.push_back(bytes_tok / st / 1e9 / (0.5 * (read_before + read_after)));
                read_before = read_after;
            }
            if (rep > 0) decode.push_back(double(a.generate) / s);
            if (rep > 0 && !a.no_bandwidth) bws.push_back(measure_bandwidth(size_t(1) << 30, 3));
        }
        bar.update(2 * rep + 2);
    }
    bar.finish();

    nlohmann::json j{{"model", what},
                     {"formats", m.format_summary()},
                     {"bpw_linear", m.bpw_linear()},
                     {"weight_bytes", m.weight_bytes()},
                     {"decode_bytes_per_token", bytes_tok},
                     {"threads", thread_count()},
                     {"device", a.device},
                     {"repetitions", a.reps}};
    if (gpu) j["gpu_weight_bytes"] = device_weight_bytes(*runner);
    Bandwidth bw;
    Stats sc, sr;  // copy and read bandwidth over the measurements
    if (!a.no_bandwidth) {
        std::vector<double> copy, read;
        for (const Bandwidth& b : bws) {
            copy.push_back(b.copy_gbs);
            read.push_back(b.read_gbs);
        }
        sc = stats_of(copy), sr = stats_of(read);
        bw = Bandwidth{sc.median, sr.median};
        j["bandwidth"] = {{"copy_gbs", sc.median}, {"read_gbs", sr.median}, {"copy_min", sc.min}, {"copy_max", sc.max},
                          {"read_min", sr.min}, {"read_max", sr.max}, {"measurements", bws.size()}};
    }
    // KV cache memory per token: the f32 cache, and the configured one (--cache/--kv-bits).
    const double f32_tok = 2.0 * double(c.n_layers) * double(c.kv_dim()) * 4.0;
    const double kv_tok = slots ? slots->bytes_per_token() : f32_tok;
    j["kv_cache"] = {{"config", copt.to_json()}, {"bytes_per_token", kv_tok}, {"f32_bytes_per_token", f32_tok},
                     {"bytes_held", runner->cache_bytes()}};
    if (slots && copt.mode != CacheMode::Full) j["kv_cache"]["slots"] = slots->slots();
    const bool text = !a.common.json;
    if (text) std::printf("%s: %s, %.4f bpw (linears), %s of weights, %d threads\n", what.c_str(), m.format_summary().c_str(), m.bpw_linear(),
                human_bytes(double(m.weight_bytes())).c_str(), thread_count());
    if (text)
        std::printf("KV cache: %s, %s per token (f32: %s), %s held\n", copt.describe().c_str(), human_bytes(kv_tok).c_str(),
                    human_bytes(f32_tok).c_str(), human_bytes(double(runner->cache_bytes())).c_str());
    if (text && !a.no_bandwidth)
        std::printf("memory bandwidth (STREAM copy / read, 1 GiB, median of %zu measurements between the runs): %.1f / %.1f GB/s (read %.1f … %.1f)\n",
                    bws.size(), bw.copy_gbs, bw.read_gbs, sr.min, sr.max);
    if (!prefill.empty()) {
        const Stats s = stats_of(prefill);
        const double gflops = forward_flops(m, a.prompt, 0, 1) * s.median / double(a.prompt) / 1e9;
        j["prefill"] = {{"tokens", a.prompt}, {"tokens_per_s", s.median}, {"min", s.min}, {"max", s.max}, {"gflops_per_s", gflops}};
        if (text) std::printf("prefill pp%-5lld %9.1f tokens/s (min %.1f, max %.1f), %.1f GFLOP/s\n", (long long)a.prompt, s.median, s.min, s.max, gflops);
    }
    if (!decode.empty()) {
        const Stats s = stats_of(decode);
        const double gbs = s.median * bytes_tok / 1e9;
        j["decode"] = {{"tokens", a.generate}, {"tokens_per_s", s.median}, {"min", s.min}, {"max", s.max}, {"weight_gbs", gbs}};
        if (text) std::printf("decode  tg%-5lld %9.2f tokens/s (min %.2f, max %.2f), %s of weights per token = %.1f GB/s", (long long)a.generate,
                    s.median, s.min, s.max, human_bytes(bytes_tok).c_str(), gbs);
        if (!a.no_bandwidth) {
            j["decode"]["fraction_of_copy_bandwidth"] = gbs / bw.copy_gbs;
            j["decode"]["fraction_of_read_bandwidth"] = gbs / bw.read_gbs;
            if (text) std::printf(", %.0f%% of copy / %.0f%% of read bandwidth", 100 * gbs / bw.copy_gbs, 100 * gbs / bw.read_gbs);
        }
        if (!paired.empty()) {
            const Quantiles q = quantiles(paired);
            j["decode"]["fraction_of_read_bandwidth_paired"] = {{"median", q.median}, {"p25", q.p25}, {"p75", q.p75}, {"tokens", paired.size()}};
            if (text)
                std::printf("\n        each token against the read bandwidth sampled just before and after it: median %.0f%% of read (quartiles %.0f … %.0f%%, %zu tokens)",
                            100 * q.median, 100 * q.p25, 100 * q.p75, paired.size());
        }
        if (text) std::printf("\n");
    }
    if (a.common.json) print_json(j);
}

}  // namespace

void register_bench(CLI::App& app) {
    auto a = std::make_shared<BenchArgs>();
    CLI::App* cmd = app.add_subcommand("bench", "Prefill and decode speed, next to the machine's memory bandwidth");
    cmd->add_option("model", a->model, "Model directory (or use --shape for random weights)");
    cmd->add_option("--shape", a->shape, "Random weights at a real shape: " + shape_names());
    cmd->add_option("--format", a->format, "Weight format of the decoder linears with --shape (" + format_names() + ")")->capture_default_str();
    cmd->add_option("--bits", a->params.bits, "Bits of the format (with --shape)")->capture_default_str();
    cmd->add_option("--group", a->params.group, "Group size of the format (with --shape)")->capture_default_str();
    cmd->add_option("-p,--prompt", a->prompt, "Prompt tokens for the prefill test (0 = skip)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("-n,--generate", a->generate, "Tokens for the decode test (0 = skip)")->capture_default_str()->check(CLI::NonNegativeNumber);
    cmd->add_option("-r,--reps", a->reps, "Timed repetitions (median reported)")->capture_default_str()->check(CLI::Range(1, 100));
    cmd->add_flag("--no-bandwidth", a->no_bandwidth, "Skip the memory bandwidth measurement");
    cmd->add_flag("--quantize-head", a->quantize_head, "With --shape: lm_head in the linears' format too (default bf16), as quantize --quantize-head");
    cmd->add_flag("--sym", a->params.sym, "Symmetric int weights (with --shape --format int)");
    cmd->add_option("--device", a->device, "cpu, or cuda: a MODEL's whole forward on the GPU; with --shape the linear stack's "
                                           "prefill (-p) and decode (-n), or with --forward the whole forward")->capture_default_str();
    cmd->add_flag("--forward", a->forward, "--device cuda --shape: time the whole forward (attention, norms, KV cache) with random weights");
    cmd->add_option("--batch", a->batch, "Tokens decoded together on the GPU (1 … 16)")->capture_default_str()->check(CLI::Range(1, 16));
    cmd->add_flag("--no-baseline", a->no_baseline, "GPU: skip the cuBLAS bf16 baseline stack");
    add_cache_options(*cmd, a->cache);
    add_common(*cmd, a->common);
    cmd->callback([a] {
        if (a->common.json) Progress::set_enabled(false);
        run_bench(*a);
    });
}

}  // namespace planeq::cli
