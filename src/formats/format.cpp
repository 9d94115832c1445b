#include "formats/format.hpp"

#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "core/scratch.hpp"
#include "kernels/cpu/gemm_f32.hpp"

namespace planeq {

nlohmann::json FormatParams::to_json() const {
    return {{"bits", bits}, {"group_size", group}, {"sym", sym}, {"g_idx", g_idx}};
}

FormatParams FormatParams::from_json(const nlohmann::json& j) {
    FormatParams p;
    p.bits = j.value("bits", 16);
    p.group = j.value("group_size", 0);
    p.sym = j.value("sym", false);
    p.g_idx = j.value("g_idx", false);
    return p;
}

size_t PartSpec::nbytes() const {
    size_t n = dtype_size(dtype);
    for (int64_t d : shape) n *= size_t(d);
    return n;
}

const WeightPart* PackedWeight::find_part(std::string_view suffix) const {
    for (const auto& p : parts)
        if (p.spec.suffix == suffix) return &p;
    return nullptr;
}

const WeightPart& PackedWeight::part(std::string_view suffix) const {
    const WeightPart* p = find_part(suffix);
    if (!p) fail("internal: weight has no part '" + std::string(suffix) + "'");
    return *p;
}

size_t PackedWeight::stored_bytes() const {
    size_t n = 0;
    for (const auto& p : parts) n += p.spec.nbytes();
    return n;
}

void PackedWeight::add_part(PartSpec spec, std::span<const uint8_t> bytes) {
    if (bytes.size() != spec.nbytes()) fail("internal: part '" + spec.suffix + "' has the wrong byte count");
    auto buf = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
    owned.push_back(buf);
    parts.push_back(WeightPart{std::move(spec), buf->data()});
}

void PackedWeight::dequantize(float* out) const {
    const int64_t block = 64;
#pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < rows; r0 += block)
        format->dequantize_rows(*this, r0, std::min(rows, r0 + block), out + r0 * cols);
}

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}
}  // namespace

PackedWeight bind_weight(const WeightFormat& fmt, int64_t rows, int64_t cols, const FormatParams& params,
                         const std::string& layer_name, const std::string& where,
                         const std::function<const FoundPart*(const std::string&)>& lookup) {
    if (std::string why = fmt.check(rows, cols, params); !why.empty())
        fail(where + ": layer '" + layer_name + "': " + why);
    PackedWeight w;
    w.format = &fmt;
    w.rows = rows;
    w.cols = cols;
    w.params = params;
    for (PartSpec spec : fmt.layout(rows, cols, params)) {
        const std::string tensor = layer_name + "." + spec.suffix;
        const FoundPart* found = lookup(spec.suffix);
        if (!found) fail(where + ": missing tensor '" + tensor + "'");
        if (found->dtype != spec.dtype)
            fail(where + ": tensor '" + tensor + "' has dtype " + std::string(dtype_name(found->dtype)) + ", " +
                 std::string(fmt.name) + " format stores " + std::string(dtype_name(spec.dtype)));
        if (found->shape != spec.shape)
            fail(where + ": tensor '" + tensor + "' has shape " + shape_str(found->shape) + ", expected " +
                 shape_str(spec.shape) + " for " + std::string(fmt.name) + " " + std::to_string(rows) + "x" +
                 std::to_string(cols));
        w.parts.push_back(WeightPart{std::move(spec), found->data});
    }
    if (fmt.prepare) fmt.prepare(w);
    return w;
}

void gemm_via_dequantize(const PackedWeight& w, const float* x, int64_t n, float* y) {
    float* wf = scratch_floats(size_t(w.rows * w.cols), 7);
    w.dequantize(wf);
    cpu::gemm_f32(n, w.rows, w.cols, x, w.cols, cpu::BOperand{wf, DType::F32, w.cols, true}, y, w.rows);
}

void gemm_packed(const PackedWeight& w, const float* x, int64_t n, float* y) {
    if (!w.format->dequantize_block) {
        gemm_via_dequantize(w, x, n, y);
        return;
    }
    cpu::BOperand b;
    b.ctx = &w;
    b.block = [](const void* ctx, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* out) {
        const auto& pw = *static_cast<const PackedWeight*>(ctx);
        pw.format->dequantize_block(pw, n0, nr, k0, kc, out);
    };
    cpu::gemm_f32(n, w.rows, w.cols, x, w.cols, b, y, w.rows);
}

void gemv_via_dequantize(const PackedWeight& w, const float* x, float* y) {
    const int64_t block = 16;
#pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < w.rows; r0 += block) {
        const int64_t r1 = std::min(w.rows, r0 + block);
        float* buf = scratch_floats(size_t((r1 - r0) * w.cols), 6);
        w.format->dequantize_rows(w, r0, r1, buf);
        for (int64_t r = r0; r < r1; ++r) {
            const float* row = buf + (r - r0) * w.cols;
            double acc = 0;
            for (int64_t c = 0; c < w.cols; ++c) acc += double(row[c]) * x[c];
            y[r] = float(acc);
        }
    }
}

void gemv_shared_input(std::span<const PackedWeight* const> ws, const float* x, std::span<float* const> ys) {
    if (ws.size() != ys.size()) fail("gemv_shared_input: " + std::to_string(ws.size()) + " weights, " + std::to_string(ys.size()) + " outputs");
    if (ws.empty()) return;
    const WeightFormat* f = ws[0]->format;
    const bool together = f->gemv_many && ws.size() > 1 &&
                          std::all_of(ws.begin(), ws.end(), [&](const PackedWeight* w) { return w->format == f && w->cols == ws[0]->cols; });
    if (together) return f->gemv_many(ws, x, ys);
    for (size_t i = 0; i < ws.size(); ++i) ws[i]->format->gemv(*ws[i], x, ys[i]);
}

}  // namespace planeq
