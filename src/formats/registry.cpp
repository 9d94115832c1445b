// The format registry: one line per format.
#include <array>

#include "formats/bitplane.hpp"
#include "formats/dense.hpp"
#include "formats/format.hpp"
#include "formats/int_group.hpp"
#include "formats/tritplane.hpp"

namespace planeq {

namespace {
const std::array kFormats = {
    &kFormatF32,
    &kFormatBF16,
    &kFormatF16,
    &kFormatIntGroup,
    &kFormatTritplane,
    &kFormatBitplane,
};
}  // namespace

std::span<const WeightFormat* const> all_formats() { return kFormats; }

const WeightFormat* find_format(std::string_view name) {
    for (const WeightFormat* f : kFormats)
        if (f->name == name) return f;
    return nullptr;
}

std::string format_names() {
    std::string s;
    for (const WeightFormat* f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f->name);
    return s;
}

}  // namespace planeq
