#include "model/cuda/gpu_model.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

#include "core/error.hpp"
#include "core/half.hpp"
#include "formats/int_group.hpp"
#include "kernels/cuda/infer_ops.hpp"

namespace planeq::cuda {

void DeviceFree::operator()(void* p) const { cudaFree(p); }

DevicePtr device_alloc(size_t bytes) {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 4));
    if (e != cudaSuccess) fail("CUDA: cannot allocate " + std::to_string(bytes) + " bytes (" + cudaGetErrorString(e) + ")");
    return DevicePtr(p);
}

DevicePtr device_copy(const void* host, size_t bytes) {
    DevicePtr d = device_alloc(bytes);
    const cudaError_t e = cudaMemcpy(d.get(), host, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) fail(std::string("CUDA: upload failed (") + cudaGetErrorString(e) + ")");
    return d;
}

namespace {

DevicePtr upload_vector(const std::vector<float>& v) { return v.empty() ? nullptr : device_copy(v.data(), v.size() * 4); }

// An act-order int weight (g_idx) as a plain int weight over its columns sorted by group (stable): column k of
// the result is column perm[k] of w, so W x = W' x' with x'_k = x_perm[k].
PackedWeight sort_columns_by_group(const PackedWeight& w, std::vector<int32_t>& perm) {
    const int64_t R = w.rows, C = w.cols, g = w.params.group;
    const int32_t* gi = w.part("g_idx").as<int32_t>();
    perm.resize(size_t(C));
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return gi[a] < gi[b]; });
    for (int64_t k = 0; k < C; ++k)
        if (gi[perm[size_t(k)]] != k / g) fail("g_idx does not give every group exactly " + std::to_string(g) + " columns");
    const std::vector<uint8_t> codes = unpack_int_group_codes(w), zeros = unpack_int_group_zeros(w);
    std::vector<uint8_t> sorted(codes.size());
    for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < C; ++k) sorted[size_t(r * C + k)] = codes[size_t(r * C + perm[size_t(k)])];
    FormatParams p = w.params;
    p.g_idx = false;
    const uint16_t* sc = w.part("scales").as<uint16_t>();
    return pack_int_group(R, C, p, sorted, std::span<const uint16_t>(sc, size_t(R * (C / g))), zeros, {});
}

// Uploads each distinct weight once; a weight whose bytes were seen before (synthetic models share one
// random weight per shape) gets a device clone, so every layer still streams its own memory.
class Uploader {
public:
    GpuLinear linear(const Linear& l, size_t& bytes) {
        GpuLinear g;
        g.name = l.name;
        const PackedWeight& w = l.weight;
        g.rows = w.rows, g.cols = w.cols, g.group = w.params.group;
        const std::string fmt(w.format->name);
        const bool dense = fmt == "bf16" || fmt == "f32" || fmt == "f16";
        g.key = dense ? "dense" : fmt + "-b" + std::to_string(w.params.bits) + "-g" + std::to_string(w.params.group);
        const auto id = std::make_tuple(w.parts.empty() ? nullptr : w.parts[0].data, w.rows, w.cols, w.format);
        try {
            auto it = seen_.find(id);
            if (fmt == "int" && w.params.g_idx) {
                std::vector<int32_t> perm;
                g.w = std::shared_ptr<GpuWeight>(cuda::upload(sort_columns_by_group(w, perm)));
                g.perm = device_copy(perm.data(), perm.size() * 4);
                g.key += "-perm-" + l.name;  // its own launch: the input is gathered for it alone
            } else {
                g.w = it != seen_.end() ? std::shared_ptr<GpuWeight>(clone(*it->second)) : std::shared_ptr<GpuWeight>(cuda::upload(w));
                seen_.emplace(id, g.w);
            }
        } catch (const Error& e) {
            fail(l.name + " (" + fmt + "): " + e.what());
        }
        g.bf16 = dense_bf16(*g.w);
        g.bias = upload_vector(l.bias);
        bytes += device_bytes(*g.w);
        return g;
    }

private:
    std::map<std::tuple<const uint8_t*, int64_t, int64_t, const WeightFormat*>, std::shared_ptr<GpuWeight>> seen_;
};

}  // namespace

std::unique_ptr<GpuModel> GpuModel::upload(const Model& m) {
    std::string why;
    if (!device_available(&why)) fail("--device cuda: no usable GPU (" + why + ")");
    const ModelConfig& c = m.config;
    auto g = std::make_unique<GpuModel>();
    g->host = &m;
    Uploader up;
    size_t small = 0;
    auto vec = [&](const std::vector<float>& v) {
        small += v.size() * 4;
        return upload_vector(v);
    };
    for (const Block& b : m.blocks) {
        GpuBlock gb;
        gb.attn_norm = vec(b.attn_norm), gb.ffn_norm = vec(b.ffn_norm);
        gb.q_norm = vec(b.q_norm), gb.k_norm = vec(b.k_norm);
        gb.q = up.linear(b.q, g->weight_bytes), gb.k = up.linear(b.k, g->weight_bytes), gb.v = up.linear(b.v, g->weight_bytes);
        gb.o = up.linear(b.o, g->weight_bytes);
        gb.gate = up.linear(b.gate, g->weight_bytes), gb.up = up.linear(b.up, g->weight_bytes);
        gb.down = up.linear(b.down, g->weight_bytes);
        g->blocks.push_back(std::move(gb));
    }
    g->final_norm = vec(m.final_norm);
    g->head = up.linear(m.lm_head, g->weight_bytes);
    // The embedding table for the gather: bf16 as stored, anything else dequantized to f32 on the host.
    const PackedWeight& e = m.embed;
    const size_t elems = size_t(c.vocab * c.hidden);
    if (e.format->name == "bf16") {
        g->embed_bf16 = true;
        g->embed = device_copy(e.part("weight").data, elems * 2);
        small += elems * 2;
    } else {
        std::vector<float> t(elems);
        const int64_t rows_per = 1024;
#pragma omp parallel for schedule(dynamic)
        for (int64_t r0 = 0; r0 < c.vocab; r0 += rows_per)
            e.format->dequantize_rows(e, r0, std::min(c.vocab, r0 + rows_per), t.data() + size_t(r0 * c.hidden));
        g->embed = device_copy(t.data(), elems * 4);
        small += elems * 4;
    }
    g->resident_bytes = g->weight_bytes + small;
    return g;
}

}  // namespace planeq::cuda
