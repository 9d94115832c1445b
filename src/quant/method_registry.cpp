// The method registry: one entry per method.
#include <array>

#include "core/error.hpp"
#include "formats/bitplane.hpp"
#include "formats/int_group.hpp"
#include "quant/bpdq.hpp"
#include "quant/device.hpp"
#include "quant/method.hpp"
#include "quant/ptqtp.hpp"

namespace planeq {

nlohmann::json LayerSetting::to_json() const {
    return {{"method", method}, {"bits", bits}, {"group_size", group}, {"sym", sym}, {"order", column_order_name(order)},
            {"damp", damp}, {"iters", iters}};
}

namespace {

std::string check_int(const LayerSetting& s, int64_t rows, int64_t cols) {
    FormatParams p{s.bits, s.group, s.sym, s.order == ColumnOrder::Dynamic};
    return kFormatIntGroup.check(rows, cols, p);
}

double bpw_int(const LayerSetting& s, int64_t rows, int64_t cols) {
    FormatParams p{s.bits, s.group, s.sym, s.order == ColumnOrder::Dynamic};
    size_t bytes = 0;
    for (const PartSpec& part : kFormatIntGroup.layout(rows, cols, p)) bytes += part.nbytes();
    return 8.0 * double(bytes) / double(rows * cols);
}

LinearQuantResult run_int(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s, bool compensate,
                          const QuantDevice* dev = nullptr) {
    GptqOptions o;
    o.bits = s.bits;
    o.group = s.group;
    o.sym = s.sym;
    o.order = compensate ? s.order : (s.order == ColumnOrder::Dynamic ? ColumnOrder::Dynamic : ColumnOrder::None);
    o.damp = s.damp;
    o.compensate = compensate;
    const double* Hq = o.order == ColumnOrder::None && !compensate ? nullptr : H;
    IntQuantResult q = dev ? dev->gptq(W, rows, cols, Hq, o) : gptq_quantize(W, rows, cols, Hq, o);
    LinearQuantResult r;
    const FormatParams p{s.bits, s.group, s.sym, !q.g_idx.empty()};
    r.weight = pack_int_group(rows, cols, p, q.codes, q.scales, q.zeros, q.g_idx);
    r.dequant = std::move(q.dequant);
    r.proxy_loss = q.loss;
    r.damp_used = q.damp_used;
    r.log = std::move(q.log);
    return r;
}

const QuantMethod kRtn{"rtn", "round-to-nearest on the int-group grid (no calibration needed)", false, &check_int,
                       [](const float* W, int64_t r, int64_t c, const double* H, const LayerSetting& s) { return run_int(W, r, c, H, s, false); },
                       &bpw_int, nullptr};  // RTN is a memory pass: no device path
const QuantMethod kGptq{"gptq", "GPTQ: Hessian-compensated int-group quantization", true, &check_int,
                        [](const float* W, int64_t r, int64_t c, const double* H, const LayerSetting& s) { return run_int(W, r, c, H, s, true); },
                        &bpw_int,
                        [](const float* W, int64_t r, int64_t c, const double* H, const LayerSetting& s, const QuantDevice& d) {
                            return run_int(W, r, c, H, s, true, &d);
                        }};

// BPDQ (/shared/methods/BPDQ.md) into the bitplane format: bits = planes k, GAR forced, damping 0.05.
std::string check_bpdq(const LayerSetting& s, int64_t rows, int64_t cols) {
    if (s.order == ColumnOrder::Dynamic) return "bpdq always uses the GAR column order (the bitplane format has no g_idx)";
    if (s.iters < 1) return "bpdq needs at least 1 iteration (got " + std::to_string(s.iters) + ")";
    return kFormatBitplane.check(rows, cols, FormatParams{s.bits, s.group, false, false});
}

double bpw_bpdq(const LayerSetting& s, int64_t rows, int64_t cols) {
    size_t bytes = 0;
    for (const PartSpec& part : kFormatBitplane.layout(rows, cols, FormatParams{s.bits, s.group, false, false})) bytes += part.nbytes();
    return 8.0 * double(bytes) / double(rows * cols);
}

LinearQuantResult run_bpdq_on(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s, const QuantDevice* dev) {
    BpdqOptions o;
    o.bits = s.bits;
    o.group = s.group;
    o.iters = s.iters;
    // BPDQ.md §5: damping 0.05 (GPTQModel's default). LayerSetting's default (0.01) is GPTQ's, and the
    // setting cannot tell "left at the default" from "asked for 0.01": the shared default means 0.05 here.
    o.damp = s.damp == LayerSetting{}.damp || s.damp <= 0 ? 0.05 : s.damp;
    BpdqResult q = dev ? dev->bpdq(W, rows, cols, H, o) : bpdq_quantize(W, rows, cols, H, o);
    LinearQuantResult r;
    r.weight = pack_bitplane(rows, cols, FormatParams{s.bits, s.group, false, false}, q.codes, q.coefs);
    r.dequant = std::move(q.dequant);
    r.proxy_loss = q.loss;
    r.damp_used = q.damp_used;
    r.log = std::move(q.log);
    if (s.order != ColumnOrder::Gar) r.log.push_back("bpdq: column order " + column_order_name(s.order) + " ignored, GAR is forced");
    return r;
}

LinearQuantResult run_bpdq(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s) {
    return run_bpdq_on(W, rows, cols, H, s, nullptr);
}

const QuantMethod kBpdq{"bpdq", "BPDQ: bit-plane decomposition on a variable grid (k planes, k+1 bf16 coefficients per group)", true,
                        &check_bpdq, &run_bpdq, &bpw_bpdq,
                        [](const float* W, int64_t r, int64_t c, const double* H, const LayerSetting& s, const QuantDevice& d) {
                            return run_bpdq_on(W, r, c, H, s, &d);
                        }};

const std::array kMethods = {
    &kRtn,
    &kGptq,
    &kBpdq,
    &kMethodPtqtp,
    &kMethodPtqtpH,
};

}  // namespace

const QuantMethod* find_method(std::string_view name) {
    for (const QuantMethod* m : kMethods)
        if (m->name == name) return m;
    return nullptr;
}

std::string method_names() {
    std::string s;
    for (const QuantMethod* m : kMethods) s += (s.empty() ? "" : ", ") + std::string(m->name);
    return s;
}

std::string method_help() {
    std::string s = "Methods:\n";
    for (const QuantMethod* m : kMethods)
        s += "  " + std::string(m->name) + std::string(m->name.size() < 10 ? 10 - m->name.size() : 1, ' ') + std::string(m->summary) +
             (m->needs_hessian ? " [needs --calib]" : " [data-free]") + "\n";
    return s;
}

}  // namespace planeq
