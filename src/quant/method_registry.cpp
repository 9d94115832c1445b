// The method registry: one entry per method.
#include <array>

#include "core/error.hpp"
#include "formats/int_group.hpp"
#include "quant/method.hpp"

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

LinearQuantResult run_int(const float* W, int64_t rows, int64_t cols, const double* H, const LayerSetting& s, bool compensate) {
    GptqOptions o;
    o.bits = s.bits;
    o.group = s.group;
    o.sym = s.sym;
    o.order = compensate ? s.order : (s.order == ColumnOrder::Dynamic ? ColumnOrder::Dynamic : ColumnOrder::None);
    o.damp = s.damp;
    o.compensate = compensate;
    IntQuantResult q = gptq_quantize(W, rows, cols, o.order == ColumnOrder::None && !compensate ? nullptr : H, o);
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
                       &bpw_int};
const QuantMethod kGptq{"gptq", "GPTQ: Hessian-compensated int-group quantization", true, &check_int,
                        [](const float* W, int64_t r, int64_t c, const double* H, const LayerSetting& s) { return run_int(W, r, c, H, s, true); },
                        &bpw_int};

const std::array kMethods = {
    &kRtn,
    &kGptq,
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

}  // namespace planeq
