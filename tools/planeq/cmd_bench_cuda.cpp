// planeq bench --device cuda: prefill (-p P: the stack for P tokens at once, plane GEMM vs cuBLAS bf16) and
// decode (-n): the decoder's linear layers (all 7 per layer, q/k/v and gate/up fused into
// one launch each) plus a bf16 lm_head, for every layer of the shape, replayed as one CUDA graph per token
// (batch-1 decode is launch-bound otherwise). Attention, norms and RoPE are not run: this measures what the
// weight formats decide, the weight streaming. Reported next to a cudaMemcpy device-to-device bandwidth
// measured in the same run, and against the same stack in bf16 through cuBLAS.
//
// Quantized stacks normalize each linear's input by its RMS (fused into the GEMV's output): random
// weights would otherwise grow or shrink the activations out of fp16 range over 128 linears. The dense
// stacks need no such guard (fp32/bf16 range) and run without it.
//
// Random weights: one weight per distinct shape is generated on the CPU in the requested format (the
// synthetic-model generator), uploaded, and cloned into every layer, so layers share contents but not
// memory (each token streams every layer's bytes from HBM; 54 MB a layer at 2 bits, the L2 is 60 MB).
// bf16 weights are generated on the GPU (16 GB at 8B shape).
#ifdef PLANEQ_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <map>
#include <vector>

#include <cuda_runtime.h>

#include "bench_cuda.hpp"
#include "common.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/decode_stack.hpp"
#include "model/synthetic.hpp"

#define CK(expr)                                                                                     \
    do {                                                                                             \
        cudaError_t e_ = (expr);                                                                     \
        if (e_ != cudaSuccess) ::planeq::fail(std::string("CUDA: ") + cudaGetErrorString(e_) + " (" #expr ")"); \
    } while (0)

namespace planeq::cli {

namespace {

using cuda::GpuWeightPtr;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct Events {
    cudaEvent_t a, b;
    Events() {
        CK(cudaEventCreate(&a));
        CK(cudaEventCreate(&b));
    }
    ~Events() { cudaEventDestroy(a), cudaEventDestroy(b); }
    double seconds() {
        CK(cudaEventSynchronize(b));
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, a, b));
        return ms / 1e3;
    }
};

// One stream's work captured as a CUDA graph (after an eager run: module load, cuBLAS handles), replayed `reps` + 1
// times with `per` launches each; the first repetition warms up. Returns seconds per launch of each timed repetition.
struct CapturedGraph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    size_t nodes = 0;
    template <class F>
    CapturedGraph(cudaStream_t s, F&& enqueue) {
        enqueue();
        CK(cudaStreamSynchronize(s));
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
        enqueue();
        CK(cudaStreamEndCapture(s, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
        CK(cudaGraphGetNodes(graph, nullptr, &nodes));
    }
    ~CapturedGraph() {
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    }
    CapturedGraph(const CapturedGraph&) = delete;
    CapturedGraph& operator=(const CapturedGraph&) = delete;
    std::vector<double> time(cudaStream_t s, int reps, int64_t per) const {
        Events ev;
        std::vector<double> t;
        for (int r = 0; r <= reps; ++r) {
            CK(cudaEventRecord(ev.a, s));
            for (int64_t i = 0; i < per; ++i) CK(cudaGraphLaunch(exec, s));
            CK(cudaEventRecord(ev.b, s));
            const double sec = ev.seconds();
            if (r > 0) t.push_back(sec / double(per));
        }
        return t;
    }
};

// cudaMemcpy device-to-device of 1 GiB, (bytes read + bytes written) / s, median of 10.
double d2d_copy_gbs(cudaStream_t s) {
    const size_t bytes = size_t(1) << 30;
    void *a = nullptr, *b = nullptr;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    Events ev;
    std::vector<double> t;
    for (int i = 0; i < 12; ++i) {
        CK(cudaEventRecord(ev.a, s));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
        CK(cudaEventRecord(ev.b, s));
        const double sec = ev.seconds();
        if (i >= 2) t.push_back(sec);
    }
    cudaFree(a), cudaFree(b);
    return 2.0 * double(bytes) / median(t) / 1e9;
}

struct Layer {
    GpuWeightPtr q, k, v, o, gate, up, down;
};

struct Stack {
    std::vector<Layer> layers;
    GpuWeightPtr head;
    bool dense = false;
    int group = 0;
    size_t bytes = 0;         // weight bytes one token streams (device layout)
    double stored_bytes = 0;  // the same in the format's stored (checkpoint) layout
};

struct Buffers {
    int64_t H, Q, KV, I, V;
    float *h, *q, *k, *v, *o, *g, *u, *a, *logits;
    uint16_t* xb;
    cuda::ActBufferPtr act, act2;  // two: a GEMV prepares the next one's input while its own is still read
    Buffers(int64_t H_, int64_t Q_, int64_t KV_, int64_t I_, int64_t V_, int B) : H(H_), Q(Q_), KV(KV_), I(I_), V(V_) {
        for (auto [p, n] : {std::pair<float**, int64_t>{&h, H}, {&q, Q}, {&k, KV}, {&v, KV}, {&o, H}, {&g, I}, {&u, I}, {&a, I}, {&logits, V}}) {
            CK(cudaMalloc(p, size_t(n * B) * 4));
            CK(cudaMemset(*p, 0, size_t(n * B) * 4));
        }
        CK(cudaMalloc(&xb, size_t(std::max(H, I) * B) * 2));
        act = cuda::make_act_buffer(std::max(H, I));
        act2 = cuda::make_act_buffer(std::max(H, I));
    }
    ~Buffers() {
        for (float* p : {h, q, k, v, o, g, u, a, logits}) cudaFree(p);
        cudaFree(xb);
    }
};

Stack build_stack(const ModelConfig& c, const std::string& format, const FormatParams& params, bool text) {
    Stack st;
    const int64_t H = c.hidden, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate;
    st.dense = format == "bf16";
    st.group = params.group;
    const std::pair<int64_t, int64_t> shapes[7] = {{Q, H}, {KV, H}, {KV, H}, {H, Q}, {I, H}, {I, H}, {H, I}};
    std::map<std::pair<int64_t, int64_t>, GpuWeightPtr> templ;
    std::map<std::pair<int64_t, int64_t>, double> stored;
    if (!st.dense) {
        const WeightFormat* fmt = find_format(format);
        if (!fmt) fail("unknown format '" + format + "' (known: " + format_names() + ")");
        uint64_t seed = 1;
        for (auto rc : shapes)
            if (!templ.count(rc)) {
                if (text) std::printf("generating and uploading a %lldx%lld %s weight...\n", (long long)rc.first, (long long)rc.second, format.c_str()), std::fflush(stdout);
                const PackedWeight w = random_weight(*fmt, rc.first, rc.second, params, seed++);
                stored[rc] = double(w.stored_bytes());
                templ[rc] = cuda::upload(w);
            }
    }
    uint64_t seed = 1000;
    auto make = [&](std::pair<int64_t, int64_t> rc) {
        GpuWeightPtr w = st.dense ? cuda::random_bf16(rc.first, rc.second, 1.0f / std::sqrt(float(rc.second)), seed++)
                                  : cuda::clone(*templ[rc]);
        st.bytes += cuda::device_bytes(*w);
        st.stored_bytes += st.dense ? double(rc.first * rc.second * 2) : stored[rc];
        return w;
    };
    for (int64_t l = 0; l < c.n_layers; ++l) {
        Layer L;
        L.q = make(shapes[0]), L.k = make(shapes[1]), L.v = make(shapes[2]), L.o = make(shapes[3]);
        L.gate = make(shapes[4]), L.up = make(shapes[5]), L.down = make(shapes[6]);
        st.layers.push_back(std::move(L));
    }
    st.head = cuda::random_bf16(c.vocab, H, 1.0f / std::sqrt(float(H)), 7);
    st.bytes += cuda::device_bytes(*st.head);
    st.stored_bytes += double(c.vocab * H * 2);
    return st;
}

// One decode step for B tokens: every layer's linears, then the head. `cublas`: dense weights through cuBLAS;
// `ps`: the linears as one persistent launch (the same chain of inputs and outputs as below, decode_stack.hpp).
void forward(const Stack& st, Buffers& b, int B, bool cublas, cudaStream_t s, const cuda::PersistentStack* ps = nullptr) {
    if (ps) {
        ps->run(s);
        cuda::gemv(*st.head, nullptr, b.h, B, b.logits, s);
        return;
    }
    // Plane weights: each GEMV also prepares the next GEMV's input (gemv_multi_prep: inside its own launch where
    // DecodeOptions::fuse_prep applies, else as a separate prep), alternating between two activation buffers;
    // each prep is told its weight, so it writes the activation layout of that weight's kernel path.
    cuda::ActBuffer *A = b.act.get(), *A2 = b.act2.get();
    if (!st.dense) cuda::prepare_act(*A, b.h, nullptr, b.H, B, st.group, s, true, st.layers[0].q.get());
    for (size_t l = 0; l < st.layers.size(); ++l) {
        const Layer& L = st.layers[l];
        const cuda::GpuWeight* qkv[3] = {L.q.get(), L.k.get(), L.v.get()};
        float* qkv_y[3] = {b.q, b.k, b.v};
        const cuda::GpuWeight* gu[2] = {L.gate.get(), L.up.get()};
        float* gu_y[2] = {b.g, b.u};
        if (!st.dense) {
            const cuda::GpuWeight* o[1] = {L.o.get()};
            const cuda::GpuWeight* down[1] = {L.down.get()};
            float* o_y[1] = {b.o};
            float* down_y[1] = {b.h};
            cuda::gemv_multi_prep(qkv, qkv_y, 3, A, b.h, B, s, {A2, L.o.get(), 0, -1, true});
            cuda::gemv_multi_prep(o, o_y, 1, A2, b.q, B, s, {A, L.gate.get(), 0, -1, true});
            cuda::gemv_multi_prep(gu, gu_y, 2, A, b.o, B, s, {A2, L.down.get(), 0, 1, true});  // silu(gate)·up
            if (l + 1 < st.layers.size()) cuda::gemv_multi_prep(down, down_y, 1, A2, b.g, B, s, {A, st.layers[l + 1].q.get(), 0, -1, true});
            else cuda::gemv(*L.down, A2, b.g, B, b.h, s);  // the head reads h itself
        } else if (!cublas) {
            cuda::gemv_multi(qkv, qkv_y, 3, nullptr, b.h, B, s);
            cuda::gemv(*L.o, nullptr, b.q, B, b.o, s);
            cuda::gemv_multi(gu, gu_y, 2, nullptr, b.o, B, s);
            cuda::silu_mul(b.g, b.u, b.a, b.I * B, s);
            cuda::gemv(*L.down, nullptr, b.a, B, b.h, s);
        } else {
            cuda::gemv_cublas_bf16(*L.q, b.h, b.xb, B, b.q, s);
            cuda::gemv_cublas_bf16(*L.k, b.h, b.xb, B, b.k, s);
            cuda::gemv_cublas_bf16(*L.v, b.h, b.xb, B, b.v, s);
            cuda::gemv_cublas_bf16(*L.o, b.q, b.xb, B, b.o, s);
            cuda::gemv_cublas_bf16(*L.gate, b.o, b.xb, B, b.g, s);
            cuda::gemv_cublas_bf16(*L.up, b.o, b.xb, B, b.u, s);
            cuda::silu_mul(b.g, b.u, b.a, b.I * B, s);
            cuda::gemv_cublas_bf16(*L.down, b.a, b.xb, B, b.h, s);
        }
    }
    if (cublas) cuda::gemv_cublas_bf16(*st.head, b.h, b.xb, B, b.logits, s);
    else cuda::gemv(*st.head, nullptr, b.h, B, b.logits, s);
}

// A nonzero, deterministic start state in b.h.
void reset_state(Buffers& b, int B) {
    std::vector<float> h0(size_t(b.H * B));
    for (size_t i = 0; i < h0.size(); ++i) h0[i] = float(std::sin(0.37 * double(i) + 0.1));
    CK(cudaMemcpy(b.h, h0.data(), h0.size() * 4, cudaMemcpyHostToDevice));
}

// The linears as decode_stack.hpp's steps, the same inputs and outputs as forward()'s per-launch chain.
std::vector<cuda::StackStep> persistent_steps(const Stack& st, const Buffers& b) {
    std::vector<cuda::StackStep> v;
    auto step = [&](std::initializer_list<const cuda::GpuWeight*> w, std::initializer_list<float*> y, const float* x, const float* up) {
        cuda::StackStep s;
        for (const cuda::GpuWeight* p : w) s.w[s.n++] = p;
        int k = 0;
        for (float* p : y) s.y[k++] = p;
        s.x = x, s.up = up, s.rms = true;  // as gemv_multi_prep's RMS-scaled inputs in forward()
        v.push_back(s);
    };
    for (const Layer& L : st.layers) {
        step({L.q.get(), L.k.get(), L.v.get()}, {b.q, b.k, b.v}, b.h, nullptr);
        step({L.o.get()}, {b.o}, b.q, nullptr);
        step({L.gate.get(), L.up.get()}, {b.g, b.u}, b.o, nullptr);
        step({L.down.get()}, {b.h}, b.g, b.u);
    }
    return v;
}

// Logits of one token from the start state, per-launch chain vs `ps`: ‖a − b‖ / ‖a‖.
double persistent_logit_diff(const Stack& st, Buffers& b, const cuda::PersistentStack& ps, cudaStream_t s) {
    std::vector<float> l[2];
    for (int i = 0; i < 2; ++i) {
        reset_state(b, 1);
        forward(st, b, 1, false, s, i ? &ps : nullptr);
        CK(cudaStreamSynchronize(s));
        l[i].resize(size_t(b.V));
        CK(cudaMemcpy(l[i].data(), b.logits, l[i].size() * 4, cudaMemcpyDeviceToHost));
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < l[0].size(); ++i) num += double(l[0][i] - l[1][i]) * (l[0][i] - l[1][i]), den += double(l[0][i]) * l[0][i];
    return std::sqrt(num / den);
}

// PLANEQ_PS_TRACE=1: where a persistent token's time goes, per step kind (averages over the layers, µs): the
// warps' wait at the grid barrier, the input's quantization, the rows, and a step's span (first block past the
// barrier to the last block's rows done).
void print_persistent_trace(const cuda::PersistentStack& ps, int nsteps, cudaStream_t s) {
    const std::vector<uint64_t> t = ps.run_traced(s);
    const int nb = ps.blocks();
    auto at = [&](int st, int b, int f) { return double(t[(size_t(st) * nb + b) * cuda::PersistentStack::kTraceFields + f]); };
    const char* kind[4] = {"q/k/v", "o", "gate/up", "down"};
    double sum[4][4] = {}, cnt[4] = {};
    for (int st = 0; st < nsteps; ++st) {
        double wait = 0, quant = 0, rows = 0, first = 1e300, last = 0;
        for (int b = 0; b < nb; ++b) {
            wait += at(st, b, 1) - at(st, b, 0), quant += at(st, b, 2) - at(st, b, 1), rows += at(st, b, 3) - at(st, b, 2);
            first = std::min(first, at(st, b, 1)), last = std::max(last, at(st, b, 3));
        }
        const int k = st % 4;
        const double v[4] = {wait / nb, quant / nb, rows / nb, last - first};
        for (int i = 0; i < 4; ++i) sum[k][i] += v[i] / 1e3;
        cnt[k] += 1;
    }
    double t0 = 1e300, t1 = 0;
    for (int b = 0; b < nb; ++b) t0 = std::min(t0, at(0, b, 0)), t1 = std::max(t1, at(nsteps - 1, b, 3));
    std::printf("  trace (µs a step, mean over layers): kind      barrier  quantize  rows   span\n");
    for (int k = 0; k < 4; ++k)
        std::printf("  %36s %8.2f %8.2f %7.2f %7.2f\n", kind[k], sum[k][0] / cnt[k], sum[k][1] / cnt[k], sum[k][2] / cnt[k],
                    sum[k][3] / cnt[k]);
    std::printf("  the kernel: %.1f µs from the first step's start to the last rows\n", (t1 - t0) / 1e3);
}

// Tokens/s of the stack: one token's forward captured as a graph, replayed `n` times per repetition.
nlohmann::json time_stack(const Stack& st, Buffers& b, int B, bool cublas, int64_t n, int reps, double copy_gbs, cudaStream_t s,
                          const cuda::PersistentStack* ps = nullptr) {
    reset_state(b, B);
    const CapturedGraph g(s, [&] { forward(st, b, B, cublas, s, ps); });
    std::vector<double> tps;
    for (double sec : g.time(s, reps, n)) tps.push_back(double(B) / sec);
    const size_t nodes = g.nodes;
    std::vector<float> logits(16);
    CK(cudaMemcpy(logits.data(), b.logits, logits.size() * 4, cudaMemcpyDeviceToHost));
    for (float x : logits)
        if (!std::isfinite(x)) fail("bench: non-finite logits (the stack's activations overflowed)");
    const double t = median(tps);
    const double gbs = t / B * double(st.bytes) / 1e9;
    return {{"tokens_per_s", t}, {"min", *std::min_element(tps.begin(), tps.end())}, {"max", *std::max_element(tps.begin(), tps.end())},
            {"bytes_per_step", st.bytes}, {"weight_gbs", gbs}, {"fraction_of_copy_bandwidth", gbs / copy_gbs},
            {"graph_nodes", nodes}, {"kernel", cublas ? "cublas" : ps ? "planeq persistent" : "planeq"}};
}

// The stack's ceiling in this run: the same launches (per layer q/k/v, o, gate/up, down, then the head) as
// load-only kernels of the same bytes (cuda::load_only: PDL, loads before the wait, nothing after it), one graph,
// over a fresh buffer of the stack's size so that the L2 serves none of it. Tokens/s at batch 1.
nlohmann::json time_load_chain(const Stack& st, int64_t n, int reps, double copy_gbs, cudaStream_t s) {
    std::vector<size_t> launch;
    for (const Layer& L : st.layers) {
        launch.push_back(cuda::device_bytes(*L.q) + cuda::device_bytes(*L.k) + cuda::device_bytes(*L.v));
        launch.push_back(cuda::device_bytes(*L.o));
        launch.push_back(cuda::device_bytes(*L.gate) + cuda::device_bytes(*L.up));
        launch.push_back(cuda::device_bytes(*L.down));
    }
    launch.push_back(cuda::device_bytes(*st.head));
    size_t total = 0;
    for (size_t& b : launch) total += (b = b / 16 * 16);
    uint8_t* buf = nullptr;
    float* sink = nullptr;
    CK(cudaMalloc(&buf, total));
    CK(cudaMalloc(&sink, sizeof(float)));
    CK(cudaMemset(buf, 0x5a, total));
    double t = 0;
    {
        const CapturedGraph g(s, [&] {
            size_t off = 0;
            for (size_t b : launch) cuda::load_only(buf + off, b, sink, s), off += b;
        });
        t = median(g.time(s, reps, n));
    }
    CK(cudaFree(buf));
    CK(cudaFree(sink));
    const double gbs = double(total) / t / 1e9;
    return {{"tokens_per_s", 1.0 / t}, {"bytes_per_step", total}, {"weight_gbs", gbs}, {"fraction_of_copy_bandwidth", gbs / copy_gbs},
            {"launches", launch.size()}};
}

// One GEMV shape alone: launches over enough copies of the weight that the L2 (60 MB) cannot serve them.
nlohmann::json time_shape(const GpuWeightPtr& w0, const Stack& st, Buffers& b, int B, bool cublas, double copy_gbs, cudaStream_t s) {
    const size_t bytes = cuda::device_bytes(*w0);
    const int copies = int(std::clamp<size_t>((size_t(1) << 30) / bytes, 2, 64));
    std::vector<GpuWeightPtr> ws;
    for (int i = 0; i < copies; ++i) ws.push_back(cuda::clone(*w0));
    const int64_t C = cuda::cols(*w0);
    std::vector<float> x(size_t(C * B));  // nonzero inputs: zeros can run faster than real data
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::cos(0.71 * double(i)));
    CK(cudaMemcpy(b.a, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    const bool dense = st.dense || &w0 == &st.head;  // the head is bf16 in every stack
    if (!dense) cuda::prepare_act(*b.act, b.a, nullptr, C, B, st.group, s, false, w0.get());
    float* y = cuda::rows(*w0) > b.I ? b.logits : b.g;  // the head's rows need the logits buffer
    auto launch = [&] {
        for (auto& w : ws) {
            if (cublas) cuda::gemv_cublas_bf16(*w, b.a, b.xb, B, y, s);
            else cuda::gemv(*w, dense ? nullptr : b.act.get(), b.a, B, y, s);
        }
    };
    const CapturedGraph g(s, launch);
    const double us = median(g.time(s, 5, 1)) / copies * 1e6, gbs = double(bytes) / (us * 1e-6) / 1e9;
    return {{"rows", cuda::rows(*w0)}, {"cols", C}, {"bytes", bytes}, {"us", us}, {"gbs", gbs}, {"fraction_of_copy_bandwidth", gbs / copy_gbs},
            {"kernel", cublas ? "cublas" : "planeq"}};
}

// µs per layer of the MLP alone as a decode step runs it (gate/up with down's input prep, then down), over all the
// stack's layers (distinct weights), one graph; `down_split` the column split of down's launch (0: automatic).
double time_mlp(const Stack& st, Buffers& b, int down_split, cudaStream_t s) {
    cuda::ActBuffer *A = b.act.get(), *A2 = b.act2.get();
    cuda::prepare_act(*A, b.o, nullptr, b.H, 1, st.group, s, true, st.layers[0].gate.get());
    auto chain = [&] {
        const cuda::DecodeOptions keep = cuda::decode_options();
        for (const Layer& L : st.layers) {
            const cuda::GpuWeight* gu[2] = {L.gate.get(), L.up.get()};
            float* gu_y[2] = {b.g, b.u};
            cuda::gemv_multi_prep(gu, gu_y, 2, A, b.o, 1, s, {A2, L.down.get(), 0, 1, true});
            cuda::DecodeOptions d = keep;
            d.bw_split = down_split;
            cuda::set_decode_options(d);
            cuda::gemv(*L.down, A2, b.g, 1, b.a, s);  // into a scratch buffer: A keeps describing b.o
            cuda::set_decode_options(keep);
        }
    };
    const CapturedGraph g(s, chain);
    return median(g.time(s, 7, 10)) / double(st.layers.size()) * 1e6;
}

void print_stack(const char* label, const nlohmann::json& j) {
    std::printf("%-28s %9.1f tokens/s (min %.1f, max %.1f), %.3f GB/step, %7.1f GB/s = %5.1f%% of D2D copy, %zu graph nodes\n", label,
                j["tokens_per_s"].get<double>(), j["min"].get<double>(), j["max"].get<double>(), j["bytes_per_step"].get<double>() / 1e9,
                j["weight_gbs"].get<double>(), 100 * j["fraction_of_copy_bandwidth"].get<double>(), j["graph_nodes"].get<size_t>());
}

void print_shape(const char* label, const nlohmann::json& j) {
    std::printf("  %-10s %6lldx%-6lld %9.2f MB %8.2f us %7.1f GB/s = %5.1f%% of D2D copy\n", label, j["rows"].get<long long>(),
                j["cols"].get<long long>(), j["bytes"].get<double>() / 1e6, j["us"].get<double>(), j["gbs"].get<double>(),
                100 * j["fraction_of_copy_bandwidth"].get<double>());
}

nlohmann::json bench_stack(const ModelConfig& c, const std::string& format, const FormatParams& p, const CudaBenchOptions& o,
                           double copy_gbs, cudaStream_t s, bool cublas_too) {
    Stack st = build_stack(c, format, p, o.text);
    Buffers b(c.hidden, c.q_dim(), c.kv_dim(), c.intermediate, c.vocab, o.batch);
    nlohmann::json j{{"format", format}, {"weights", cuda::describe(*st.layers[0].q)}, {"stored_bytes_per_step", st.stored_bytes}};
    if (!st.dense) j["params"] = p.to_json();
    const cuda::DecodeOptions opt = cuda::decode_options();
    j["decode_path"] = st.dense                                          ? "bf16"
                       : cuda::bw_decode_path(*st.layers[0].q, o.batch)   ? "bw"
                       : cuda::int8_decode_path(*st.layers[0].q, o.batch) ? "int8"
                                                                          : "fp16";
    j["pdl"] = opt.pdl, j["l2_prefetch"] = opt.l2_prefetch, j["i8_stages"] = opt.i8_stages, j["fuse_prep"] = opt.fuse_prep;
    j["bw_pair"] = opt.bw_pair, j["bw_rows"] = opt.bw_rows, j["bw_split"] = opt.bw_split, j["bw_act8"] = opt.bw_act8;
    if (o.text) {
        std::printf("decode path %s, PDL %s, L2 tile prefetch %s, int8 weight stages %d (-1: default), prep fused into the GEMV %s\n",
                    j["decode_path"].get<std::string>().c_str(), opt.pdl ? "on" : "off", opt.l2_prefetch ? "on" : "off", opt.i8_stages,
                    opt.fuse_prep ? "on" : "off");
        if (j["decode_path"] == "bw")
            std::printf("bw GEMV: gate/up paired with down %s, row blocks a CTA %d, column split %d (0: automatic), activations %s\n",
                        opt.bw_pair ? "on" : "off", opt.bw_rows, opt.bw_split, opt.bw_act8 ? "int8 (act8)" : "int8 hi/lo");
    }
    j["decode"] = time_stack(st, b, o.batch, false, o.generate, o.reps, copy_gbs, s);
    if (o.text) print_stack(("planeq " + format).c_str(), j["decode"]);
    if (o.batch == 1) {  // the ceiling of these launches: load-only kernels of the same sizes
        j["decode_load_only"] = time_load_chain(st, o.generate, o.reps, copy_gbs, s);
        const nlohmann::json& c = j["decode_load_only"];
        if (o.text)
            std::printf("load-only chain, the same %d launches and bytes: %.1f tokens/s, %.1f GB/s = %5.1f%% of D2D copy (the stack: %.1f%% of it)\n",
                        c["launches"].get<int>(), c["tokens_per_s"].get<double>(), c["weight_gbs"].get<double>(),
                        100 * c["fraction_of_copy_bandwidth"].get<double>(),
                        100 * j["decode"]["tokens_per_s"].get<double>() / c["tokens_per_s"].get<double>());
    }
    if (!st.dense && o.batch == 1) {  // the same linears as one persistent launch (decode_stack.hpp)
        const std::vector<cuda::StackStep> steps = persistent_steps(st, b);
        const std::string why = cuda::PersistentStack::unsupported(steps);
        if (why.empty()) {
            const cuda::PersistentStack ps(steps);
            nlohmann::json r = time_stack(st, b, 1, false, o.generate, o.reps, copy_gbs, s, &ps);
            r["ring_stages"] = ps.stages();
            r["logits_rel_diff_vs_launches"] = persistent_logit_diff(st, b, ps, s);
            if (o.text) {
                print_stack("planeq persistent", r);
                std::printf("  (one launch for the linears + the head's; logits %.2e from the per-launch chain's, relative)\n",
                            r["logits_rel_diff_vs_launches"].get<double>());
            }
            if (const char* v = std::getenv("PLANEQ_PS_TRACE"); v && std::string(v) == "1") print_persistent_trace(ps, int(steps.size()), s);
            j["decode_persistent"] = r;
        } else {
            j["decode_persistent"] = {{"unsupported", why}};
            if (o.text) std::printf("persistent stack: not for these weights (%s)\n", why.c_str());
        }
    }
    if (cublas_too) {
        j["decode_cublas"] = time_stack(st, b, o.batch, true, o.generate, o.reps, copy_gbs, s);
        if (o.text) print_stack("cuBLAS bf16", j["decode_cublas"]);
    }
    // PLANEQ_BENCH_VARIANTS=1: the same stack under other settings of the decode switches (one binary, one
    // weight upload: the A/B of docs/cuda.md's "what moved the numbers"); for the int8 path also the single
    // GEMVs at 4 and 8 warps per tile.
    if (const char* v = std::getenv("PLANEQ_BENCH_VARIANTS"); v && std::string(v) == "1") {
        const cuda::DecodeOptions keep = cuda::decode_options();
        std::vector<cuda::DecodeOptions> variants = {{false, false, false, 0, -1, false, false}, {true, false, false, 0, -1, false, false}};
        for (int fuse : {0, 1})  // the int8 path: prep fusion × weight pipeline depth (warps automatic)
            for (int stages : {0, 4}) variants.push_back({true, true, false, 0, stages, fuse != 0, false});
        for (int warps : {4, 8}) variants.push_back({true, true, false, warps, keep.i8_stages, keep.fuse_prep, false});
        for (const cuda::DecodeOptions& d : variants) {
            if (st.dense && d.int8) continue;
            cuda::set_decode_options(d);
            nlohmann::json r = time_stack(st, b, o.batch, false, o.generate, o.reps, copy_gbs, s);
            r["pdl"] = d.pdl, r["int8"] = d.int8, r["l2_prefetch"] = d.l2_prefetch, r["i8_warps"] = d.i8_warps;
            r["i8_stages"] = d.i8_stages, r["fuse_prep"] = d.fuse_prep;
            const std::string label = std::string("  pdl ") + (d.pdl ? "1" : "0") + " int8 " + (d.int8 ? "1" : "0") + " l2pf " +
                                      (d.l2_prefetch ? "1" : "0") + " w" + std::to_string(d.i8_warps) + " st" +
                                      std::to_string(d.i8_stages) + " fuse " + (d.fuse_prep ? "1" : "0");
            if (o.text) print_stack(label.c_str(), r);
            j["variants"].push_back(r);
        }
        if (!st.dense && cuda::int8_decode_path(*st.layers[0].q, o.batch))
            for (int stages : {0, 4})
            for (int warps : {4, 8}) {
                cuda::set_decode_options(cuda::DecodeOptions{true, true, keep.l2_prefetch, warps, stages, keep.fuse_prep, false});
                if (o.text) std::printf("single GEMV, int8 path, %d warps per tile, %d stages:\n", warps, stages);
                const Layer& L0 = st.layers[0];
                for (auto [name, w] : std::vector<std::pair<const char*, const GpuWeightPtr*>>{{"q/o", &L0.q}, {"k/v", &L0.k}, {"gate/up", &L0.gate}, {"down", &L0.down}}) {
                    nlohmann::json r = time_shape(*w, st, b, o.batch, false, copy_gbs, s);
                    r["i8_warps"] = warps, r["i8_stages"] = stages;
                    if (o.text) print_shape(name, r);
                    j["variant_shapes"].push_back(r);
                }
            }
        cuda::set_decode_options(keep);
    }
    // PLANEQ_BENCH_BW=1: the batch-1 bandwidth-first path (DecodeOptions::bw) against the int8 path in the same run:
    // the stack with bw off (int8 defaults) and on (automatic, or 32-row blocks per CTA / column split forced), then
    // the single GEMVs with bw off, on (automatic) and on every (rows, split) pair. Single GEMVs: the bw kernel
    // quantizes its input inside (prepare_act launches nothing); the int8 timing excludes its prep kernel.
    if (const char* v = std::getenv("PLANEQ_BENCH_BW"); v && std::string(v) == "1" && !st.dense && o.batch == 1) {
        const cuda::DecodeOptions keep = cuda::decode_options();
        struct V { bool bw; int rows, split; bool l2, pair, a8; const char* label; };
        const V stack_variants[] = {{false, 0, 0, false, true, false, "bw 0 (int8 path)"},
                                    {true, 0, 0, false, true, false, "bw 1 auto (pair, split auto), hi/lo"},
                                    {true, 0, 0, false, true, true, "bw 1 auto, act8"},
                                    {true, 0, 0, false, false, false, "bw 1 pair off"},
                                    {true, 0, 0, false, false, true, "bw 1 pair off, act8"},
                                    {true, 0, 1, false, true, false, "bw 1 split 1"},
                                    {true, 0, 2, false, true, false, "bw 1 split 2"},
                                    {true, 1, 0, false, true, false, "bw 1 rows 1"},
                                    {true, 2, 0, false, true, false, "bw 1 rows 2"},
                                    {true, 0, 0, true, true, false, "bw 1 auto, L2 prefetch"}};
        for (const V& sv : stack_variants) {
            cuda::DecodeOptions d = keep;
            d.bw = sv.bw, d.bw_rows = sv.rows, d.bw_split = sv.split, d.bw_l2 = sv.l2, d.bw_pair = sv.pair, d.bw_act8 = sv.a8;
            cuda::set_decode_options(d);
            if (sv.bw && !cuda::bw_decode_path(*st.layers[0].q, 1)) break;
            nlohmann::json r = time_stack(st, b, o.batch, false, o.generate, o.reps, copy_gbs, s);
            r["bw"] = d.bw, r["bw_rows"] = d.bw_rows, r["bw_split"] = d.bw_split, r["bw_l2"] = d.bw_l2, r["bw_pair"] = d.bw_pair;
            r["bw_act8"] = d.bw_act8;
            if (o.text) print_stack((std::string("  ") + sv.label).c_str(), r);
            j["bw_variants"].push_back(r);
        }
        // The MLP (gate/up → down) alone, µs a layer: pairing (gate/up quantizing down's input) × down's split.
        for (int a8 : {0, 1})
            for (int pair : {0, 1})
                for (int split : {1, 2}) {
                    cuda::DecodeOptions d = keep;
                    d.bw = true, d.bw_pair = pair != 0, d.bw_act8 = a8 != 0;
                    cuda::set_decode_options(d);
                    const double us = time_mlp(st, b, split, s);
                    if (o.text) std::printf("  MLP a layer, act8 %d, pair %d, down split %d: %.2f us\n", a8, pair, split, us);
                    j["bw_mlp"].push_back({{"act8", a8}, {"pair", pair}, {"down_split", split}, {"us_per_layer", us}});
                }
        cuda::set_decode_options(keep);
        const Layer& L0 = st.layers[0];
        const std::vector<std::pair<const char*, const GpuWeightPtr*>> shapes = {{"q/o", &L0.q}, {"k/v", &L0.k}, {"gate/up", &L0.gate}, {"down", &L0.down}};
        // int8 path (rows −1), bw automatic (0), bw automatic with int8 activations, then (rows, split)
        struct G { int rows, split; bool a8; };
        std::vector<G> grid = {{-1, 0, false}, {0, 0, false}, {0, 0, true}};
        for (int rows : {1, 2, 4})
            for (int split : {1, 2, 4}) grid.push_back({rows, split, false});
        for (auto [rows, split, a8] : grid) {
            cuda::DecodeOptions d = keep;
            d.bw = rows >= 0, d.bw_rows = std::max(rows, 0), d.bw_split = split, d.bw_l2 = false, d.bw_act8 = a8;
            cuda::set_decode_options(d);
            if (o.text) {
                if (rows < 0) std::printf("single GEMV, batch 1, int8 path (prep not timed):\n");
                else if (rows == 0) std::printf("single GEMV, batch 1, bw path (prep inside), automatic%s:\n", a8 ? ", int8 activations" : "");
                else std::printf("single GEMV, batch 1, bw path, rows %d split %d:\n", rows, split);
            }
            for (auto [name, w] : shapes) {
                nlohmann::json r = time_shape(*w, st, b, o.batch, false, copy_gbs, s);
                r["bw"] = rows >= 0, r["bw_rows"] = d.bw_rows, r["bw_split"] = d.bw_split, r["bw_act8"] = d.bw_act8;
                if (o.text) print_shape(name, r);
                j["bw_shapes"].push_back(r);
            }
        }
        cuda::set_decode_options(keep);
    }
    // Single-GEMV timings at each distinct shape.
    const Layer& L = st.layers[0];
    std::vector<std::pair<const char*, const GpuWeightPtr*>> shapes = {{"q/o", &L.q}, {"k/v", &L.k}, {"gate/up", &L.gate}, {"down", &L.down}};
    shapes.push_back({"lm_head", &st.head});  // bf16 in every stack: a third or more of a low-bit token's bytes
    for (bool cub : {false, true}) {
        if (cub && !cublas_too) break;
        if (o.text) std::printf("single GEMV, batch %d (%s):\n", o.batch, cub ? "cuBLAS" : "planeq");
        for (auto [name, w] : shapes) {
            nlohmann::json r = time_shape(*w, st, b, o.batch, cub, copy_gbs, s);
            if (o.text) print_shape(name, r);
            j[cub ? "shapes_cublas" : "shapes"].push_back(r);
        }
    }
    return j;
}

// ---- prefill: the same linear stack for P tokens at once (the plane GEMM on wgmma; cuBLAS for bf16) ----

struct PrefillBuffers {
    int64_t H, Q, KV, I;
    int P;
    float *h, *q, *k, *v, *o, *g, *u, *a;
    uint16_t* xb;
    cuda::PrefillBufferPtr pb;
    PrefillBuffers(int64_t H_, int64_t Q_, int64_t KV_, int64_t I_, int P_) : H(H_), Q(Q_), KV(KV_), I(I_), P(P_) {
        for (auto [p, n] : {std::pair<float**, int64_t>{&h, H}, {&q, Q}, {&k, KV}, {&v, KV}, {&o, H}, {&g, I}, {&u, I}, {&a, I}}) {
            CK(cudaMalloc(p, size_t(n * P) * 4));
            CK(cudaMemset(*p, 0, size_t(n * P) * 4));
        }
        CK(cudaMalloc(&xb, size_t(std::max(H, I) * P) * 2));
        pb = cuda::make_prefill_buffer(P, std::max(H, I));
    }
    ~PrefillBuffers() {
        for (float* p : {h, q, k, v, o, g, u, a}) cudaFree(p);
        cudaFree(xb);
    }
};

// One prefill forward of the linear stack (no head: prefill needs logits of the last token only).
void forward_prefill(const Stack& st, PrefillBuffers& b, bool cublas, cudaStream_t s) {
    const int P = b.P;
    for (const Layer& L : st.layers) {
        const cuda::GpuWeight* qkv[3] = {L.q.get(), L.k.get(), L.v.get()};
        float* qkv_y[3] = {b.q, b.k, b.v};
        const cuda::GpuWeight* gu[2] = {L.gate.get(), L.up.get()};
        float* gu_y[2] = {b.g, b.u};
        if (!cublas) {
            cuda::prepare_prefill(*b.pb, b.h, nullptr, b.H, P, s, true);
            cuda::gemm_multi(qkv, qkv_y, 3, *b.pb, s);
            cuda::prepare_prefill(*b.pb, b.q, nullptr, b.Q, P, s, true);
            cuda::gemm(*L.o, *b.pb, b.o, s);
            cuda::prepare_prefill(*b.pb, b.o, nullptr, b.H, P, s, true);
            cuda::gemm_multi(gu, gu_y, 2, *b.pb, s);
            cuda::prepare_prefill(*b.pb, b.g, b.u, b.I, P, s, true);  // silu(gate)·up fused
            cuda::gemm(*L.down, *b.pb, b.h, s);
        } else {
            cuda::gemv_cublas_bf16(*L.q, b.h, b.xb, P, b.q, s);
            cuda::gemv_cublas_bf16(*L.k, b.h, b.xb, P, b.k, s);
            cuda::gemv_cublas_bf16(*L.v, b.h, b.xb, P, b.v, s);
            cuda::gemv_cublas_bf16(*L.o, b.q, b.xb, P, b.o, s);
            cuda::gemv_cublas_bf16(*L.gate, b.o, b.xb, P, b.g, s);
            cuda::gemv_cublas_bf16(*L.up, b.o, b.xb, P, b.u, s);
            cuda::silu_mul(b.g, b.u, b.a, b.I * P, s);
            cuda::gemv_cublas_bf16(*L.down, b.a, b.xb, P, b.h, s);
        }
    }
}

double stack_flops(const Stack& st, int P) {  // 2 · P · Σ rows · cols over the layers' linears
    double f = 0;
    for (const Layer& L : st.layers)
        for (const GpuWeightPtr* w : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down})
            f += 2.0 * P * double(cuda::rows(**w)) * double(cuda::cols(**w));
    return f;
}

// Prefill tokens/s: one forward captured as a graph, replayed `reps` times (each timed), median.
nlohmann::json time_prefill(const Stack& st, PrefillBuffers& b, bool cublas, int reps, cudaStream_t s) {
    std::vector<float> h0(size_t(b.H * b.P));
    for (size_t i = 0; i < h0.size(); ++i) h0[i] = float(std::sin(0.37 * double(i) + 0.1));
    CK(cudaMemcpy(b.h, h0.data(), h0.size() * 4, cudaMemcpyHostToDevice));
    const CapturedGraph g(s, [&] { forward_prefill(st, b, cublas, s); });
    const std::vector<double> t = g.time(s, reps, 1);
    std::vector<float> out(64);
    CK(cudaMemcpy(out.data(), b.h, out.size() * 4, cudaMemcpyDeviceToHost));
    for (float x : out)
        if (!std::isfinite(x)) fail("bench: non-finite prefill output (the stack's activations overflowed)");
    const double sec = median(t), fl = stack_flops(st, b.P);
    return {{"tokens", b.P}, {"tokens_per_s", b.P / sec}, {"min", b.P / *std::max_element(t.begin(), t.end())},
            {"max", b.P / *std::min_element(t.begin(), t.end())}, {"ms", sec * 1e3}, {"tflops", fl / sec / 1e12},
            {"kernel", cublas ? "cublas" : "planeq"}};
}

// One GEMM shape alone (activation conversion included, as in the stack), µs and TFLOP/s, median of 10.
nlohmann::json time_gemm_shape(const GpuWeightPtr& w, PrefillBuffers& b, bool cublas, cudaStream_t s) {
    const int64_t R = cuda::rows(*w), C = cuda::cols(*w);
    std::vector<float> x(size_t(C * b.P));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::cos(0.71 * double(i)));
    CK(cudaMemcpy(b.a, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    auto launch = [&] {
        if (cublas) cuda::gemv_cublas_bf16(*w, b.a, b.xb, b.P, b.g, s);
        else cuda::prepare_prefill(*b.pb, b.a, nullptr, C, b.P, s), cuda::gemm(*w, *b.pb, b.g, s);
    };
    launch();
    CK(cudaStreamSynchronize(s));
    Events ev;
    std::vector<double> t;
    for (int r = 0; r < 11; ++r) {
        CK(cudaEventRecord(ev.a, s));
        for (int i = 0; i < 5; ++i) launch();
        CK(cudaEventRecord(ev.b, s));
        const double sec = ev.seconds() / 5;
        if (r > 0) t.push_back(sec);
    }
    const double us = median(t) * 1e6;
    return {{"rows", R}, {"cols", C}, {"tokens", b.P}, {"us", us}, {"tflops", 2.0 * b.P * double(R) * double(C) / (us * 1e-6) / 1e12},
            {"kernel", cublas ? "cublas" : "planeq"}};
}

void print_prefill(const char* label, const nlohmann::json& j) {
    std::printf("%-28s prefill pp%-5d %9.1f tokens/s (min %.1f, max %.1f), %8.2f ms/forward, %6.1f TFLOP/s\n", label, j["tokens"].get<int>(),
                j["tokens_per_s"].get<double>(), j["min"].get<double>(), j["max"].get<double>(), j["ms"].get<double>(), j["tflops"].get<double>());
}

nlohmann::json bench_prefill(const ModelConfig& c, const std::string& format, const FormatParams& p, const CudaBenchOptions& o,
                             cudaStream_t s) {
    Stack st = build_stack(c, format, p, o.text);
    PrefillBuffers b(c.hidden, c.q_dim(), c.kv_dim(), c.intermediate, int(o.prompt));
    nlohmann::json j{{"format", format}, {"weights", cuda::describe(*st.layers[0].q)}};
    if (!st.dense) j["params"] = p.to_json();
    j["prefill"] = time_prefill(st, b, st.dense, o.reps, s);
    if (o.text) print_prefill((st.dense ? "cuBLAS bf16" : "planeq " + format).c_str(), j["prefill"]);
    const Layer& L = st.layers[0];
    if (o.text) std::printf("single GEMM, %lld tokens (%s, activation conversion included):\n", (long long)o.prompt, st.dense ? "cuBLAS" : "planeq");
    for (auto [name, w] : std::vector<std::pair<const char*, const GpuWeightPtr*>>{{"q/o", &L.q}, {"k/v", &L.k}, {"gate/up", &L.gate}, {"down", &L.down}}) {
        nlohmann::json r = time_gemm_shape(*w, b, st.dense, s);
        if (o.text)
            std::printf("  %-10s %6lldx%-6lld %9.1f us %7.1f TFLOP/s\n", name, r["rows"].get<long long>(), r["cols"].get<long long>(),
                        r["us"].get<double>(), r["tflops"].get<double>());
        j["shapes"].push_back(r);
    }
    return j;
}

}  // namespace

nlohmann::json run_bench_cuda(const CudaBenchOptions& o) {
    std::string why;
    if (!cuda::device_available(&why)) fail("--device cuda: " + why);
    if (o.batch < 1 || o.batch > 16) fail("--batch must be 1 … 16 on the GPU");
    if (o.prompt < 0 || o.prompt > 65536) fail("--prompt must be 0 … 65536 on the GPU");
    if (o.prompt == 0 && o.generate == 0) fail("nothing to run: give -p (prefill tokens) and/or -n (decode steps)");
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const double copy_gbs = d2d_copy_gbs(s);
    const ModelConfig c = shape_config(o.shape);
    if (o.text)
        std::printf("%s, %d SMs, %.0f MB L2; cudaMemcpy D2D copy: %.1f GB/s (read + write)\n%s shape, batch %d, %d layers + bf16 lm_head\n",
                    prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6, copy_gbs, o.shape.c_str(), o.batch, int(c.n_layers));
    nlohmann::json j{{"device", prop.name}, {"copy_gbs", copy_gbs}, {"shape", o.shape}, {"batch", o.batch}};
    const bool dense = o.format == "bf16";
    FormatParams p = o.params;
    if (o.format == "tritplane") p.bits = 2;
    if (o.generate > 0) {
        j["result"] = bench_stack(c, o.format, p, o, copy_gbs, s, dense && o.baseline);
        if (!dense && o.baseline) {
            if (o.text) std::printf("baseline: the same stack in bf16\n");
            j["baseline"] = bench_stack(c, "bf16", FormatParams{16, 0, false, false}, o, copy_gbs, s, true);
            const double ours = j["result"]["decode"]["tokens_per_s"], theirs = j["baseline"]["decode_cublas"]["tokens_per_s"];
            j["speedup_vs_cublas_bf16"] = ours / theirs;
            if (o.text) std::printf("%s decode vs cuBLAS bf16: %.2fx tokens/s\n", o.format.c_str(), ours / theirs);
        }
    }
    if (o.prompt > 0) {
        if (o.text) std::printf("prefill: %lld tokens through the %d layers' linears (no head)\n", (long long)o.prompt, int(c.n_layers));
        j["prefill"] = bench_prefill(c, o.format, p, o, s);
        if (!dense && o.baseline) {
            j["prefill_baseline"] = bench_prefill(c, "bf16", FormatParams{16, 0, false, false}, o, s);
            const double ours = j["prefill"]["prefill"]["tokens_per_s"], theirs = j["prefill_baseline"]["prefill"]["tokens_per_s"];
            j["prefill_speedup_vs_cublas_bf16"] = ours / theirs;
            if (o.text) std::printf("%s prefill pp%lld vs cuBLAS bf16: %.3fx tokens/s\n", o.format.c_str(), (long long)o.prompt, ours / theirs);
        }
    }
    cudaStreamDestroy(s);
    return j;
}

}  // namespace planeq::cli

#endif  // PLANEQ_HAVE_CUDA
