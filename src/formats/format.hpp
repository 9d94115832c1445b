// Weight formats: how a linear layer's weights are stored and multiplied. Methods (RTN, GPTQ, ...)
// choose a format's parameters; formats know nothing of methods. Each format is one file with its
// traits (stored layout, reference dequantize, GEMV, GEMM) and one line in registry.cpp.
//
// Conventions: a weight is W ∈ R^{rows×cols} (rows = out_features, cols = in_features), y = W x.
// GEMM computes Y[n×rows] = X[n×cols] · Wᵀ for n tokens (row-major activations).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"

namespace planeq {

struct FormatParams {
    int bits = 16;          // bits per code (int-group b, bit-plane k); 16/32 for dense
    int group = 0;          // columns per group; 0 = no groups
    bool sym = false;       // int-group: symmetric (no stored zero points)
    bool g_idx = false;     // int-group: per-column group index (dynamic act-order)

    nlohmann::json to_json() const;
    static FormatParams from_json(const nlohmann::json& j);
    bool operator==(const FormatParams&) const = default;
};

// One stored array of a packed weight, saved as the safetensors tensor "<layer>.<suffix>".
struct PartSpec {
    std::string suffix;
    DType dtype;
    std::vector<int64_t> shape;
    size_t nbytes() const;
};

struct WeightPart {
    PartSpec spec;
    const uint8_t* data = nullptr;  // a view into a mapped file or into PackedWeight::owned
    template <class T>
    const T* as() const { return reinterpret_cast<const T*>(data); }
};

struct WeightFormat;

struct PackedWeight {
    const WeightFormat* format = nullptr;
    int64_t rows = 0, cols = 0;
    FormatParams params;
    std::vector<WeightPart> parts;
    std::vector<std::shared_ptr<std::vector<uint8_t>>> owned;  // bytes the parts point into, if not mapped
    std::shared_ptr<void> runtime;                              // a kernel's repacked layout, built by prepare()

    const WeightPart& part(std::string_view suffix) const;  // throws if absent (a bug: layouts are validated)
    const WeightPart* find_part(std::string_view suffix) const;
    size_t stored_bytes() const;
    double bits_per_weight() const { return 8.0 * double(stored_bytes()) / double(rows * cols); }
    // Adds an owned part (copied).
    void add_part(PartSpec spec, std::span<const uint8_t> bytes);
    void dequantize(float* out) const;  // whole matrix, row-major [rows × cols]
};

struct WeightFormat {
    std::string_view name;
    std::string_view summary;
    // Parts a weight of this shape and these params stores; empty string = valid, else why not.
    std::string (*check)(int64_t rows, int64_t cols, const FormatParams& params);
    std::vector<PartSpec> (*layout)(int64_t rows, int64_t cols, const FormatParams& params);
    // Reference: rows [r0, r1) to f32, row-major into out[(r1 - r0) × cols]. Scalar, obviously right.
    void (*dequantize_rows)(const PackedWeight& w, int64_t r0, int64_t r1, float* out);
    void (*gemv)(const PackedWeight& w, const float* x, float* y);                 // y[rows] = W x
    void (*gemm)(const PackedWeight& w, const float* x, int64_t n, float* y);      // y[n×rows] = x[n×cols] Wᵀ
    void (*prepare)(PackedWeight& w);                                               // optional (may be null)
    // Optional fast dequantization of a block: rows [r0, r0 + nr), columns [c0, c0 + nc) into out[nr × nc].
    // The generic GEMM (gemm_packed) streams the weight through this, panel by panel.
    void (*dequantize_block)(const PackedWeight& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) = nullptr;
    // Optional: ys[i] = ws[i] x for several weights of this format with the same columns (q, k, v; gate, up), as
    // one GEMV: x is quantized once and all rows are one parallel pass. Each ys[i] has the bits gemv gives.
    void (*gemv_many)(std::span<const PackedWeight* const> ws, const float* x, std::span<float* const> ys) = nullptr;
};

const WeightFormat* find_format(std::string_view name);
std::span<const WeightFormat* const> all_formats();
std::string format_names();  // "f32, bf16, ..." for help texts

// Builds a PackedWeight from parts found by the caller (e.g. in a checkpoint), checking every part's
// dtype and shape against the format's layout. `lookup(suffix)` returns the stored bytes or nullptr.
// Errors name `where` (the file) and the tensor.
struct FoundPart {
    DType dtype;
    std::vector<int64_t> shape;
    const uint8_t* data;
    size_t nbytes;
};
PackedWeight bind_weight(const WeightFormat& fmt, int64_t rows, int64_t cols, const FormatParams& params,
                         const std::string& layer_name, const std::string& where,
                         const std::function<const FoundPart*(const std::string& suffix)>& lookup);

// GEMM by dequantizing the weight to f32 (in parallel) and one sgemm: the generic prefill path.
void gemm_via_dequantize(const PackedWeight& w, const float* x, int64_t n, float* y);
// GEMM that dequantizes block by block inside the f32 GEMM's panel packing (needs dequantize_block).
void gemm_packed(const PackedWeight& w, const float* x, int64_t n, float* y);
// ys[i] = ws[i] x, all weights applied to one x: the format's gemv_many where every weight has it (one format,
// the same columns), else one gemv each. Same bits as one gemv each.
void gemv_shared_input(std::span<const PackedWeight* const> ws, const float* x, std::span<float* const> ys);
// GEMV by the reference dequantize, row block by row block (slow; for formats' scalar fallback).
void gemv_via_dequantize(const PackedWeight& w, const float* x, float* y);

}  // namespace planeq
