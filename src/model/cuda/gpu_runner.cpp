// The GPU forward pass, written like the CPU's (model/forward.cpp):
//   x = embed(tokens)
//   for each block:  h = rms(x) · attn_norm;  q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ   (one launch)
//                    q, k = rope(norm_q(q)), rope(norm_k(k));  cache ← k, v
//                    x += o(attention(q, cache))
//                    h = rms(x) · ffn_norm;  g, u = h Wgᵀ, h Wuᵀ              (one launch)
//                    x += down(silu(g) ⊙ u)                                   (silu·u fused into the input prep)
//   logits = lm_head(rms(x) · final_norm)
// Each residual add is fused into the next RMSNorm. All activations are f32 in device memory.
#include "model/cuda/gpu_runner.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "kernels/cuda/infer_ops.hpp"

namespace planeq::cuda {

#define CK(expr)                                                                                          \
    do {                                                                                                  \
        cudaError_t e_ = (expr);                                                                          \
        if (e_ != cudaSuccess) fail(std::string("CUDA: ") + cudaGetErrorString(e_) + " (" #expr ")");    \
    } while (0)

void check_gpu_cache(const CacheOptions& o) {
    if (!o.reference())
        fail("--device cuda supports --cache full with an f32 KV cache only (" + o.describe() +
             " runs on the CPU: drop --device cuda)");
}

namespace {

constexpr int kGemvMaxBatch = 16;  // up to this many tokens take the GEMV path

class GpuRunner final : public Runner {
public:
    GpuRunner(const GpuModel& g, int64_t capacity, int64_t max_chunk);
    ~GpuRunner() override;
    const ModelConfig& config() const override { return c_; }
    std::span<const float> forward(std::span<const int32_t> tokens, Logits want) override;
    int32_t forward_argmax(std::span<const int32_t> tokens) override;
    void clear() override { length_ = 0; }
    int64_t length() const override { return length_; }
    bool full() const override { return length_ >= capacity_; }
    size_t cache_bytes() const override { return size_t(2 * c_.n_layers * capacity_ * c_.kv_dim()) * 4; }

private:
    struct Out {
        const GpuLinear* l;
        float* y;
    };
    void check_tokens(std::span<const int32_t> tokens) const;
    void linears(std::initializer_list<Out> outs, const float* x, const float* up, int n);
    void mlp(const GpuBlock& b, const float* h, int n);
    // One token: the residual add x_in + delta and RMSNorm (norm_w) inside the GEMVs of `outs` (q/k/v) or of the
    // MLP, v = x_in + delta stored to x_out. False, with nothing enqueued, where the bw path does not take them.
    bool norm_linears(std::initializer_list<Out> outs, float* x_in, const float* delta, const DevicePtr& norm_w, float* x_out);
    bool norm_mlp(const GpuBlock& b, float* x_in, const float* delta, float* x_out);
    bool mlp_pairs(const GpuBlock& b) const;             // gate/up/down fit mlp_from_act
    void mlp_from_act(const GpuBlock& b, const float* x, int n);
    void layers(int n, Pos pos);                       // x ← the blocks over n tokens (embedded in x)
    void head(int rows, const float* x_rows, float* out);  // out[rows × vocab] from the final norm of x_rows
    void prefill(std::span<const int32_t> tokens, Logits want);
    void decode_step();                                // one token from tok_ at pos_: graph replay
    void enqueue_decode();
    std::span<const float> copy_logits(const float* dev, int64_t rows, int64_t offset_rows);

    const GpuModel& g_;
    const ModelConfig& c_;
    int64_t capacity_, chunk_;
    int64_t length_ = 0;
    cudaStream_t s_ = nullptr;
    // device state
    DevicePtr kc_, vc_, cos_, sin_;
    DevicePtr x2_;  // one token's residual stream, alternating with x_ where the norms are fused (layers)
    DevicePtr x_, h_, q_, k_, v_, attn_, delta_, gate_, up_, silu_, tokens_, pos_, tok_, scratch_, split_;
    DevicePtr gx_, gu_;     // act-order weights' gathered inputs [T × widest]
    DevicePtr logits1_;     // [vocab]: decode and Logits::Last (a fixed address: the decode graph writes it)
    DevicePtr logits_all_;  // [rows × vocab] for Logits::All, grown on demand
    ActBufferPtr act_, act2_;  // act2_: down's input, prepared inside the gate/up launch (mlp_decode)
    PrefillBufferPtr pre_;
    int64_t logits_all_rows_ = 0;
    // host
    float* host_logits_ = nullptr;  // pinned
    int64_t host_rows_ = 0;
    cudaGraph_t graph_ = nullptr;
    cudaGraphExec_t exec_ = nullptr;
    int64_t decode_steps_ = 0;
    int pos_on_device_ = -1;  // the value *pos_ holds (−1: unknown)
    bool use_graph_ = true;
};

GpuRunner::GpuRunner(const GpuModel& g, int64_t capacity, int64_t max_chunk)
    : g_(g), c_(g.config()), capacity_(capacity), chunk_(max_chunk > 0 ? max_chunk : std::min<int64_t>(capacity, 2048)) {
    if (capacity <= 0) fail("internal: a GPU runner needs a KV capacity");
    if (c_.head_dim % 2 != 0) fail("head dimension " + std::to_string(c_.head_dim) + " is odd: RoPE pairs need an even one");
    CK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
    const size_t kv = size_t(c_.n_layers * capacity * c_.kv_dim()) * 4;
    kc_ = device_alloc(kv), vc_ = device_alloc(kv);
    // RoPE tables for every position the cache can hold (the CPU's tables, bit for bit).
    const Rope& rope = g.host->rope;
    rope.reserve(capacity);
    const size_t tab = size_t(capacity * (c_.head_dim / 2)) * 4;
    cos_ = device_copy(rope.cos_table(), tab), sin_ = device_copy(rope.sin_table(), tab);
    const int64_t T = chunk_, H = c_.hidden, I = c_.intermediate;
    const int64_t widest = std::max({H, I, c_.q_dim()});
    x_ = device_alloc(size_t(T * H) * 4), h_ = device_alloc(size_t(T * H) * 4), delta_ = device_alloc(size_t(T * H) * 4);
    x2_ = device_alloc(size_t(H) * 4);
    q_ = device_alloc(size_t(T * c_.q_dim()) * 4), attn_ = device_alloc(size_t(T * c_.q_dim()) * 4);
    k_ = device_alloc(size_t(T * c_.kv_dim()) * 4), v_ = device_alloc(size_t(T * c_.kv_dim()) * 4);
    gate_ = device_alloc(size_t(T * I) * 4), up_ = device_alloc(size_t(T * I) * 4), silu_ = device_alloc(size_t(T * I) * 4);
    gx_ = device_alloc(size_t(T * widest) * 4), gu_ = device_alloc(size_t(T * widest) * 4);
    tokens_ = device_alloc(size_t(T) * 4), pos_ = device_alloc(4), tok_ = device_alloc(4);
    scratch_ = device_alloc(size_t(decode_scratch_floats(int(c_.n_heads), int(c_.head_dim))) * 4);
    split_ = device_alloc(size_t(2 * T * widest) * 2);
    act_ = make_act_buffer(widest);
    act2_ = make_act_buffer(widest);
    if (T > kGemvMaxBatch) pre_ = make_prefill_buffer(T, widest);
    logits1_ = device_alloc(size_t(c_.vocab) * 4);
    if (const char* e = std::getenv("PLANEQ_CUDA_GRAPH")) use_graph_ = std::string(e) != "0";
}

GpuRunner::~GpuRunner() {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    if (host_logits_) cudaFreeHost(host_logits_);
    if (s_) cudaStreamDestroy(s_);
}

void GpuRunner::check_tokens(std::span<const int32_t> tokens) const {
    for (int32_t id : tokens)
        if (id < 0 || id >= c_.vocab) fail("token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(c_.vocab) + ")");
    if (length_ + int64_t(tokens.size()) > capacity_)
        fail("context full: " + std::to_string(length_ + int64_t(tokens.size())) + " positions needed, the KV cache holds " +
             std::to_string(capacity_));
}

// y = x · Wᵀ (+ bias) for weights sharing the input x [n × cols]; with `up`, the input is silu(x) ⊙ up.
// Weights of one key share a launch (and one activation prep); ≤ 16 tokens take the GEMVs, more the GEMMs.
void GpuRunner::linears(std::initializer_list<Out> outs, const float* x, const float* up, int n) {
    const Out* o = outs.begin();
    const int total = int(outs.size());
    const int64_t cols = o[0].l->cols;
    const float* dense_x = x;  // the dense paths need silu(x)·up materialized
    if (up && o[0].l->dense()) {
        silu_mul(x, up, as_f(silu_), cols * n, s_);
        dense_x = as_f(silu_);
    }
    for (int i = 0; i < total;) {
        int k = 1;  // a run of weights with the same key
        while (i + k < total && k < 3 && o[i + k].l->key == o[i].l->key) ++k;
        const GpuWeight* ws[3];
        float* ys[3];
        for (int j = 0; j < k; ++j) ws[j] = o[i + j].l->w.get(), ys[j] = o[i + j].y;
        const GpuLinear& l0 = *o[i].l;
        if (l0.dense()) {
            if (up && dense_x == x) {  // a mixed run: an earlier quantized weight did not materialize it
                silu_mul(x, up, as_f(silu_), cols * n, s_);
                dense_x = as_f(silu_);
            }
            if (n <= kGemvMaxBatch) gemv_multi(ws, ys, k, nullptr, dense_x, n, s_);
            else
                for (int j = 0; j < k; ++j)
                    gemm_bf16_split(o[i + j].l->bf16, o[i + j].l->rows, cols, dense_x, n, static_cast<uint16_t*>(split_.get()), ys[j], s_);
        } else {
            const float *xin = x, *upin = up;
            if (l0.perm) {  // act-order: the weight's columns are in group order, so gather the input likewise
                gather_columns(x, static_cast<const int32_t*>(l0.perm.get()), n, int(cols), as_f(gx_), s_), xin = as_f(gx_);
                if (up) gather_columns(up, static_cast<const int32_t*>(l0.perm.get()), n, int(cols), as_f(gu_), s_), upin = as_f(gu_);
            }
            if (n <= kGemvMaxBatch) {
                prepare_act(*act_, xin, upin, cols, n, l0.group, s_, false, l0.w.get());  // the int8 path where it applies
                gemv_multi(ws, ys, k, act_.get(), xin, n, s_);
            } else {
                prepare_prefill(*pre_, xin, upin, cols, n, s_);
                gemm_multi(ws, ys, k, *pre_, s_);
            }
        }
        for (int j = 0; j < k; ++j)
            if (o[i + j].l->bias) add_bias(ys[j], as_f(o[i + j].l->bias), n, int(o[i + j].l->rows), s_);
        i += k;
    }
}

// gate/up, then down of silu(gate) ⊙ up. For a few tokens with quantized gate/up (one launch, no bias) and a
// quantized down of plain column order, down's input prep runs inside the gate/up launch (gemv_multi_prep; the
// prep kernel goes where the fusion applies, docs/cuda.md); otherwise two `linears`.
void GpuRunner::mlp(const GpuBlock& b, const float* h, int n) {
    const GpuLinear &g = b.gate, &u = b.up, &d = b.down;
    if (n <= 4 && mlp_pairs(b)) {
        prepare_act(*act_, h, nullptr, g.cols, n, g.group, s_, false, g.w.get());
        mlp_from_act(b, h, n);
        return;
    }
    linears({{&g, as_f(gate_)}, {&u, as_f(up_)}}, h, nullptr, n);
    linears({{&d, as_f(delta_)}}, as_f(gate_), as_f(up_), n);
}

bool GpuRunner::mlp_pairs(const GpuBlock& b) const {
    const GpuLinear &g = b.gate, &u = b.up, &d = b.down;
    return !g.dense() && g.key == u.key && !g.bias && !u.bias && !g.perm && !u.perm && !d.dense() && !d.perm;
}

// gate/up from act_ (prepared from x), then down of silu(gate) ⊙ up into delta_.
void GpuRunner::mlp_from_act(const GpuBlock& b, const float* x, int n) {
    const GpuLinear &g = b.gate, &u = b.up, &d = b.down;
    const GpuWeight* ws[2] = {g.w.get(), u.w.get()};
    float* ys[2] = {as_f(gate_), as_f(up_)};
    gemv_multi_prep(ws, ys, 2, act_.get(), x, n, s_, NextAct{act2_.get(), d.w.get(), 0, 1, false});
    gemv(*d.w, act2_.get(), as_f(gate_), n, as_f(delta_), s_);
    if (d.bias) add_bias(as_f(delta_), as_f(d.bias), n, int(d.rows), s_);
}

bool GpuRunner::norm_linears(std::initializer_list<Out> outs, float* x_in, const float* delta, const DevicePtr& norm_w, float* x_out) {
    const Out* o = outs.begin();
    const int k = int(outs.size());
    const GpuLinear& l0 = *o[0].l;
    if (k > 3 || l0.dense()) return false;
    for (int j = 0; j < k; ++j)  // one launch: every weight of the same key, none act-ordered
        if (o[j].l->key != l0.key || o[j].l->perm) return false;
    if (!prepare_act_norm(*act_, x_in, delta, as_f(norm_w), float(c_.rms_eps), x_out, l0.cols, l0.group, *l0.w)) return false;
    const GpuWeight* ws[3];
    float* ys[3];
    for (int j = 0; j < k; ++j) ws[j] = o[j].l->w.get(), ys[j] = o[j].y;
    gemv_multi(ws, ys, k, act_.get(), x_in, 1, s_);
    for (int j = 0; j < k; ++j)
        if (o[j].l->bias) add_bias(ys[j], as_f(o[j].l->bias), 1, int(o[j].l->rows), s_);
    return true;
}

bool GpuRunner::norm_mlp(const GpuBlock& b, float* x_in, const float* delta, float* x_out) {
    const GpuLinear& g = b.gate;
    if (!mlp_pairs(b) || !prepare_act_norm(*act_, x_in, delta, as_f(b.ffn_norm), float(c_.rms_eps), x_out, g.cols, g.group, *g.w))
        return false;
    mlp_from_act(b, x_in, 1);
    return true;
}

void GpuRunner::layers(int n, Pos pos) {
    const int H = int(c_.hidden), hd = int(c_.head_dim);
    const float eps = float(c_.rms_eps);
    const int64_t layer_kv = capacity_ * c_.kv_dim();
    float *x = as_f(x_), *h = as_f(h_), *delta = as_f(delta_);
    // One token's residual stream alternates between x_ and x2_ where a GEMV fuses the add and the norm (the
    // GEMV's other blocks still read the old x while the first tile stores the new one).
    float *cur = x, *alt = as_f(x2_);
    for (size_t l = 0; l < g_.blocks.size(); ++l) {
        const GpuBlock& b = g_.blocks[l];
        const float* prev = l == 0 ? nullptr : delta;  // x += previous FFN
        if (n == 1 && norm_linears({{&b.q, as_f(q_)}, {&b.k, as_f(k_)}, {&b.v, as_f(v_)}}, cur, prev, b.attn_norm, alt)) {
            std::swap(cur, alt);
        } else {
            add_rmsnorm(cur, prev, as_f(b.attn_norm), n, H, eps, h, s_);
            linears({{&b.q, as_f(q_)}, {&b.k, as_f(k_)}, {&b.v, as_f(v_)}}, h, nullptr, n);
        }
        QkvArgs qa{as_f(q_), as_f(k_), as_f(v_), as_f(b.q_norm), as_f(b.k_norm), as_f(cos_), as_f(sin_),
                   as_f(kc_) + l * layer_kv, as_f(vc_) + l * layer_kv, n, int(c_.n_heads), int(c_.n_kv_heads), hd, eps, pos};
        qk_norm_rope_store(qa, s_);
        AttnArgs aa{as_f(q_), qa.kc, qa.vc, as_f(attn_), n, int(c_.n_heads), int(c_.n_kv_heads), hd, int(c_.sliding_window),
                    1.0f / std::sqrt(float(hd)), pos};
        if (n == 1) attention_decode(aa, as_f(scratch_), s_);
        else attention_prefill(aa, s_);
        linears({{&b.o, delta}}, as_f(attn_), nullptr, n);
        if (n == 1 && norm_mlp(b, cur, delta, alt)) {  // x += attention
            std::swap(cur, alt);
        } else {
            add_rmsnorm(cur, delta, as_f(b.ffn_norm), n, H, eps, h, s_);
            mlp(b, h, n);
        }
    }
    // head() and the next step read x_ (an odd number of fused norms leaves the stream in x2_).
    if (cur != x) CK(cudaMemcpyAsync(x, cur, size_t(H) * 4, cudaMemcpyDeviceToDevice, s_));
}

// logits[rows × vocab] = lm_head(final_norm(x_rows + delta_rows)): x_rows/delta_rows are the last `rows`
// tokens of the chunk (the last block's FFN output is still in delta).
void GpuRunner::head(int rows, const float* x_rows, float* out) {
    const int64_t off = x_rows - as_f(x_);
    add_rmsnorm(const_cast<float*>(x_rows), as_f(delta_) + off, as_f(g_.final_norm), rows, int(c_.hidden), float(c_.rms_eps),
                as_f(h_) + off, s_);
    linears({{&g_.head, out}}, as_f(h_) + off, nullptr, rows);
}

void GpuRunner::prefill(std::span<const int32_t> tokens, Logits want) {
    const int64_t n = int64_t(tokens.size());
    for (int64_t done = 0; done < n;) {
        const int k = int(std::min(chunk_, n - done));
        CK(cudaMemcpyAsync(tokens_.get(), tokens.data() + done, size_t(k) * 4, cudaMemcpyHostToDevice, s_));
        embed_rows(g_.embed.get(), g_.embed_bf16, static_cast<const int32_t*>(tokens_.get()), k, int(c_.hidden), as_f(x_), s_);
        layers(k, Pos{nullptr, int(length_)});
        length_ += k;
        done += k;
        if (want == Logits::All) {
            if (k > logits_all_rows_) logits_all_ = device_alloc(size_t(k * c_.vocab) * 4), logits_all_rows_ = k;
            head(k, as_f(x_), as_f(logits_all_));
            copy_logits(as_f(logits_all_), k, done - k);
        } else if (want == Logits::Last && done == n) {
            head(1, as_f(x_) + int64_t(k - 1) * c_.hidden, as_f(logits1_));
        }
    }
    pos_on_device_ = -1;
}

void GpuRunner::enqueue_decode() {
    embed_rows(g_.embed.get(), g_.embed_bf16, static_cast<const int32_t*>(tok_.get()), 1, int(c_.hidden), as_f(x_), s_);
    layers(1, Pos{static_cast<const int*>(pos_.get()), 0});
    head(1, as_f(x_), as_f(logits1_));
    argmax(as_f(logits1_), int(c_.vocab), static_cast<int32_t*>(tok_.get()), s_);
    advance_pos(static_cast<int*>(pos_.get()), s_);
}

// One token (already in tok_) at position length_: the first step runs eagerly (module loading, cuBLAS and
// shared-memory set-up happen outside any capture), the second is captured, every later one replays.
void GpuRunner::decode_step() {
    if (pos_on_device_ != int(length_)) set_int(static_cast<int*>(pos_.get()), int(length_), s_);
    if (!use_graph_ || decode_steps_ == 0) {
        enqueue_decode();
    } else {
        if (!exec_) {
            CK(cudaStreamBeginCapture(s_, cudaStreamCaptureModeThreadLocal));
            enqueue_decode();
            CK(cudaStreamEndCapture(s_, &graph_));
            CK(cudaGraphInstantiate(&exec_, graph_, 0));
        }
        CK(cudaGraphLaunch(exec_, s_));
    }
    ++decode_steps_;
    ++length_;
    pos_on_device_ = int(length_);
}

std::span<const float> GpuRunner::copy_logits(const float* dev, int64_t rows, int64_t offset_rows) {
    const int64_t need = offset_rows + rows;
    if (need > host_rows_) {  // grow the pinned buffer, keeping what earlier chunks wrote
        float* p = nullptr;
        CK(cudaMallocHost(&p, size_t(need * c_.vocab) * 4));
        if (host_logits_) {
            std::memcpy(p, host_logits_, size_t(host_rows_ * c_.vocab) * 4);
            cudaFreeHost(host_logits_);
        }
        host_logits_ = p, host_rows_ = need;
    }
    CK(cudaMemcpyAsync(host_logits_ + offset_rows * c_.vocab, dev, size_t(rows * c_.vocab) * 4, cudaMemcpyDeviceToHost, s_));
    CK(cudaStreamSynchronize(s_));
    return {host_logits_, size_t(need * c_.vocab)};
}

std::span<const float> GpuRunner::forward(std::span<const int32_t> tokens, Logits want) {
    if (tokens.empty()) return {};
    check_tokens(tokens);
    if (tokens.size() == 1) {
        CK(cudaMemcpyAsync(tok_.get(), tokens.data(), 4, cudaMemcpyHostToDevice, s_));
        decode_step();
    } else {
        prefill(tokens, want);
    }
    if (want == Logits::None) {
        CK(cudaStreamSynchronize(s_));
        return {};
    }
    if (want == Logits::Last || tokens.size() == 1) return copy_logits(as_f(logits1_), 1, 0);
    return {host_logits_, tokens.size() * size_t(c_.vocab)};
}

int32_t GpuRunner::forward_argmax(std::span<const int32_t> tokens) {
    if (tokens.empty()) fail("internal: forward_argmax without tokens");
    check_tokens(tokens);
    if (tokens.size() == 1) {
        CK(cudaMemcpyAsync(tok_.get(), tokens.data(), 4, cudaMemcpyHostToDevice, s_));
        decode_step();  // the graph's argmax leaves the next token in tok_
    } else {
        prefill(tokens, Logits::Last);
        argmax(as_f(logits1_), int(c_.vocab), static_cast<int32_t*>(tok_.get()), s_);
    }
    int32_t next = 0;
    CK(cudaMemcpyAsync(&next, tok_.get(), 4, cudaMemcpyDeviceToHost, s_));
    CK(cudaStreamSynchronize(s_));
    return next;
}

}  // namespace

std::unique_ptr<Runner> make_gpu_runner(const GpuModel& g, int64_t capacity, int64_t max_chunk) {
    return std::make_unique<GpuRunner>(g, capacity, max_chunk);
}

}  // namespace planeq::cuda
