// The "tritplane" format: traits, P5 packing, the scalar reference and the kernel dispatch.
// Layout in formats/tritplane.hpp, kernels in kernels/cpu/tritplane_*.cpp, design in docs/formats.md.
#include "formats/tritplane.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/half.hpp"
#include "kernels/cpu/int_group_kernels.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"
#include "quant/calibration.hpp"

namespace planeq {

uint8_t p5_encode(const int8_t t[5]) {
    unsigned n = 0;
    for (int k = 0; k < 5; ++k) n = n * 3u + unsigned(t[k] + 1);
    return uint8_t((n * 256u + 242u) / 243u);  // ⌈256·n/243⌉
}

TritplaneGeometry::TritplaneGeometry(int group) : g(group) {
    F = g / 5;
    r = g % 5;
    nb = F + (r > 0 ? 1 : 0);
    M = 4 * (F / 4);
    Ef = F - M;
    E = nb - M;
}

void TritplaneGeometry::locate(int i, int& byte, int& digit) const {
    if (i < 5 * M) {
        byte = i % M;
        digit = i / M;
    } else if (i < 5 * F) {
        const int k = i - 5 * M;
        byte = M + k % Ef;
        digit = k / Ef;
    } else {
        byte = F;
        digit = i - 5 * F;
    }
}

int64_t tritplane_byte_offset(const TritplaneGeometry& geo, int64_t groups, int64_t j, int p, int b) {
    const int64_t s = j / kTritplaneSuperGroups;
    const int64_t n = std::min<int64_t>(kTritplaneSuperGroups, groups - s * kTritplaneSuperGroups);
    const int64_t L = 2 * (j % kTritplaneSuperGroups) + p;
    const int64_t base = s * 2 * kTritplaneSuperGroups * geo.nb;
    if (b < geo.M) return base + (b / 4) * 8 * n + 4 * L + b % 4;
    return base + 2 * n * geo.M + L * geo.E + (b - geo.M);
}

namespace {

bool valid_group(int g) { return g == 32 || g == 64 || g == 128 || g == 256; }

std::string check(int64_t rows, int64_t cols, const FormatParams& p) {
    if (p.bits != 2) return "tritplane format: bits is the number of trit planes and must be 2 (got " + std::to_string(p.bits) + ")";
    if (!valid_group(p.group))
        return "tritplane format: group size must be 32, 64, 128 or 256 (got " + std::to_string(p.group) + ")";
    if (p.sym || p.g_idx) return "tritplane format: sym and g_idx do not apply";
    if (rows <= 0 || cols <= 0) return "tritplane format: empty weight";
    if (cols % p.group != 0)
        return "group size " + std::to_string(p.group) + " does not divide " + std::to_string(cols) + " input columns";
    return "";
}

std::vector<PartSpec> layout(int64_t rows, int64_t cols, const FormatParams& p) {
    return {{"trits", DType::U8, {rows, tritplane_row_bytes(cols, p.group)}},
            {"scales", DType::F16, {rows, 2 * (cols / p.group)}}};
}

cpu::TritplaneView view_of(const PackedWeight& w) {
    const TritplaneGeometry geo(w.params.group);
    cpu::TritplaneView v;
    v.trits = w.part("trits").data;
    v.scales = w.part("scales").as<uint16_t>();
    v.rows = w.rows;
    v.cols = w.cols;
    v.group = geo.g;
    v.ngroups = w.cols / geo.g;
    v.row_bytes = tritplane_row_bytes(w.cols, geo.g);
    v.nb = geo.nb;
    v.M = geo.M;
    v.E = geo.E;
    return v;
}

// The nb bytes of one segment (group j, plane p) of a row, in byte order.
void gather_segment(const TritplaneGeometry& geo, int64_t groups, const uint8_t* row, int64_t j, int p, uint8_t* out) {
    for (int b = 0; b < geo.nb; ++b) out[b] = row[tritplane_byte_offset(geo, groups, j, p, b)];
}
void place_segment(const TritplaneGeometry& geo, int64_t groups, uint8_t* row, int64_t j, int p, const uint8_t* bytes) {
    for (int b = 0; b < geo.nb; ++b) row[tritplane_byte_offset(geo, groups, j, p, b)] = bytes[b];
}

// Trit i of a segment is digit pos[i] % 5 of byte pos[i] / 5.
std::vector<int> trit_positions(const TritplaneGeometry& geo) {
    std::vector<int> pos(static_cast<size_t>(geo.g));
    for (int i = 0; i < geo.g; ++i) {
        int b, k;
        geo.locate(i, b, k);
        pos[size_t(i)] = 5 * b + k;
    }
    return pos;
}

// ---- reference dequantization ---------------------------------------------------------------------

void dequantize_rows(const PackedWeight& w, int64_t r0, int64_t r1, float* out) {
    const TritplaneGeometry geo(w.params.group);
    const int64_t G = w.cols / geo.g, rb = tritplane_row_bytes(w.cols, geo.g);
    const uint8_t* trits = w.part("trits").data;
    const uint16_t* scales = w.part("scales").as<uint16_t>();
    const std::vector<int> pos = trit_positions(geo);
    std::vector<uint8_t> bytes(static_cast<size_t>(geo.nb));
    std::vector<int8_t> digits(static_cast<size_t>(5 * geo.nb)), t1(static_cast<size_t>(geo.g));
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = trits + r * rb;
        for (int64_t j = 0; j < G; ++j) {
            const float a1 = f16_to_f32(scales[r * 2 * G + 2 * j]), a2 = f16_to_f32(scales[r * 2 * G + 2 * j + 1]);
            for (int p = 0; p < 2; ++p) {
                gather_segment(geo, G, row, j, p, bytes.data());
                for (int b = 0; b < geo.nb; ++b) p5_decode(bytes[size_t(b)], digits.data() + 5 * b);
                float* o = out + (r - r0) * w.cols + j * geo.g;
                for (int i = 0; i < geo.g; ++i) {
                    const int8_t t = digits[size_t(pos[size_t(i)])];
                    if (p == 0) t1[size_t(i)] = t;
                    else o[i] = a1 * float(t1[size_t(i)]) + a2 * float(t);  // both products exact, one rounding
                }
            }
        }
    }
}

void dequantize_block(const PackedWeight& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    const cpu::TritplaneView v = view_of(w);
    if (simd_level() == SimdLevel::Avx512) {
        cpu::tritplane_dequant_block_avx512(v, r0, nr, c0, nc, out);
        return;
    }
    const int g = v.group;
    uint8_t u1[256], u2[256];
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = v.trits + r * v.row_bytes;
        for (int64_t j = c0 / g; j * g < c0 + nc; ++j) {
            cpu::tritplane_segment_digits(v, row, j, 0, u1);
            cpu::tritplane_segment_digits(v, row, j, 1, u2);
            const float a1 = f16_to_f32(v.scales[r * 2 * v.ngroups + 2 * j]);
            const float a2 = f16_to_f32(v.scales[r * 2 * v.ngroups + 2 * j + 1]);
            for (int64_t c = std::max(c0, j * g); c < std::min(c0 + nc, (j + 1) * g); ++c) {
                const int64_t i = c - j * g;
                out[(r - r0) * nc + (c - c0)] = a1 * float(int(u1[i]) - 1) + a2 * float(int(u2[i]) - 1);
            }
        }
    }
}

// ---- GEMV ---------------------------------------------------------------------------------------------

// The variant: Lut7 unless PLANEQ_TRITPLANE_GEMV names another (read once, at first use), or as set.
std::atomic<int> g_variant{-1};
constexpr TritplaneGemvVariant kVariants[] = {TritplaneGemvVariant::Int8Superblocks, TritplaneGemvVariant::Int8RowBlocksCmp,
                                             TritplaneGemvVariant::Int8RowBlocksLut, TritplaneGemvVariant::Int8RowBlocksLut7,
                                             TritplaneGemvVariant::Int8Triples};
TritplaneGemvVariant variant_from_env() {
    const char* env = std::getenv("PLANEQ_TRITPLANE_GEMV");
    if (!env || !*env) return TritplaneGemvVariant::Int8RowBlocksLut7;
    std::string names;
    for (TritplaneGemvVariant v : kVariants) {
        if (std::string(env) == tritplane_gemv_variant_name(v)) return v;
        names += std::string(names.empty() ? "" : ", ") + tritplane_gemv_variant_name(v);
    }
    fail(std::string("PLANEQ_TRITPLANE_GEMV: unknown tritplane GEMV variant '") + env + "' (one of " + names + ")");
}

// The kernel a (level, variant) runs. AVX-512: the 16-row blocks in the variant's byte code, or the triples.
// AVX2 (no 128-entry byte lookups): the lookup variants run AVX2's lookup, the triples; Cmp the P5 blocks.
enum class Kernel { Rows, BlocksP5, BlocksLut7, Triples };
Kernel kernel_for(SimdLevel level, TritplaneGemvVariant v) {
    using V = TritplaneGemvVariant;
    if (level == SimdLevel::Scalar || v == V::Int8Superblocks) return Kernel::Rows;
    if (v == V::Int8Triples) return Kernel::Triples;
    if (level == SimdLevel::Avx2) return v == V::Int8RowBlocksCmp ? Kernel::BlocksP5 : Kernel::Triples;
    return v == V::Int8RowBlocksLut7 ? Kernel::BlocksLut7 : Kernel::BlocksP5;
}

// The repack of the kernel chosen when prepare() ran (the 16-row blocks or the 32-row triples); built on the
// fly (slowly) for a weight without it or with another.
struct Repack {
    Kernel kind = Kernel::Rows;
    cpu::TritBlocks blocks;
    cpu::TritTriples triples;
};
std::shared_ptr<const Repack> make_repack(const PackedWeight& w, Kernel k) {
    auto r = std::make_shared<Repack>();
    r->kind = k;
    if (k == Kernel::Triples) r->triples = cpu::tritplane_to_triples(view_of(w));
    else r->blocks = cpu::tritplane_to_blocks(view_of(w), k == Kernel::BlocksLut7);
    return r;
}
std::shared_ptr<const Repack> repack_of(const PackedWeight& w, Kernel k) {
    if (w.runtime) {
        auto r = std::static_pointer_cast<const Repack>(w.runtime);
        if (r->kind == k) return r;
    }
    return make_repack(w, k);
}

void prepare(PackedWeight& w) {
    const Kernel k = kernel_for(simd_level(), tritplane_gemv_variant());
    if (k != Kernel::Rows) w.runtime = std::const_pointer_cast<Repack>(make_repack(w, k));
}

struct ActBuffers {
    std::vector<int8_t> xq, xexp;
    std::vector<float> d, dexp;
    std::vector<int32_t> sx, zinit, xext;
    std::vector<uint8_t> lut;
};

// ys[i] = ws[i] x for weights with the same columns and group (one weight: the plain GEMV). x is quantized
// and its tables are built once; the rows of all weights are one parallel pass (parallel_stream_concat), so
// q, k and v (gate and up) cost one fork/join, and the threads' streams and stealing span them all. Each
// weight's rows go through the same kernel as alone, so each ys[i] has the same bits.
void gemv_many(std::span<const PackedWeight* const> ws, const float* x, std::span<float* const> ys) {
    const cpu::TritplaneView v = view_of(*ws[0]);
    const int64_t cols = v.cols, G = v.ngroups;
    for (const PackedWeight* w : ws)
        if (w->cols != cols || view_of(*w).group != v.group) {  // tables differ: one at a time
            for (size_t i = 0; i < ws.size(); ++i) gemv_many(std::span(&ws[i], 1), x, std::span(&ys[i], 1));
            return;
        }
    thread_local ActBuffers buf;
    buf.xq.assign(size_t(cols + 64), 0);
    buf.d.resize(size_t(G));
    buf.sx.resize(size_t(G));
    const SimdLevel level = simd_level();
    if (level == SimdLevel::Avx512) cpu::int_group_quantize_act_avx512(x, cols, v.group, buf.xq.data(), buf.d.data(), buf.sx.data());
    else if (level == SimdLevel::Avx2) cpu::int_group_quantize_act_avx2(x, cols, v.group, buf.xq.data(), buf.d.data(), buf.sx.data());
    else cpu::int_group_quantize_act_scalar(x, cols, v.group, buf.xq.data(), buf.d.data(), buf.sx.data());
    const TritplaneGemvVariant variant = tritplane_gemv_variant();
    const Kernel k = kernel_for(level, variant);
    std::vector<int64_t> counts(ws.size());
    if (k == Kernel::Triples || k == Kernel::BlocksP5 || k == Kernel::BlocksLut7) {
        std::vector<std::shared_ptr<const Repack>> r(ws.size());
        for (size_t i = 0; i < ws.size(); ++i) r[i] = repack_of(*ws[i], k);
        if (k == Kernel::Triples) {
            const cpu::TritTriples& t = r[0]->triples;
            buf.lut.resize(cpu::tritplane_triple_lut_bytes(t));
            cpu::tritplane_build_triple_lut_avx2(t, buf.xq.data(), buf.lut.data());
            const uint8_t* lut = buf.lut.data();
            const float* d = buf.d.data();
            for (size_t i = 0; i < ws.size(); ++i) counts[i] = r[i]->triples.nblocks;
            // Contiguous runs of 32-row blocks per thread, with stealing (as the int and bitplane formats).
            parallel_stream_concat(counts, 1, [&](size_t i, int64_t lo, int64_t hi) {
                cpu::tritplane_gemv_triples_avx2(r[i]->triples, lut, d, lo, hi, ys[i]);
            });
            return;
        }
        buf.xext.resize(cpu::tritplane_xext_entries(r[0]->blocks));
        cpu::tritplane_build_xext(r[0]->blocks, buf.xq.data(), buf.xext.data());
        cpu::TritBlockAct a;
        a.xq = buf.xq.data();
        a.xext = buf.xext.data();
        a.d = buf.d.data();
        a.sx = buf.sx.data();
        auto kernel = level == SimdLevel::Avx2                             ? &cpu::tritplane_gemv_blocks_cmp_avx2
                      : variant == TritplaneGemvVariant::Int8RowBlocksCmp ? &cpu::tritplane_gemv_blocks_cmp_avx512
                      : variant == TritplaneGemvVariant::Int8RowBlocksLut ? &cpu::tritplane_gemv_blocks_lut_avx512
                                                                          : &cpu::tritplane_gemv_blocks_lut7_avx512;
        for (size_t i = 0; i < ws.size(); ++i) counts[i] = r[i]->blocks.nblocks;
        // Contiguous runs of blocks per thread, two at a time, with stealing (as the int and bitplane formats).
        parallel_stream_concat(counts, 2, [&](size_t i, int64_t lo, int64_t hi) { kernel(r[i]->blocks, a, lo, hi, ys[i]); });
        return;
    }
    // Rows go to threads as contiguous streams with stealing (a descheduled thread's rows are taken over).
    std::vector<cpu::TritplaneView> views(ws.size());
    for (size_t i = 0; i < ws.size(); ++i) views[i] = view_of(*ws[i]), counts[i] = ws[i]->rows;
    const int64_t step = 16;
    if (level == SimdLevel::Scalar) {
        const int8_t* xq = buf.xq.data();
        const float* d = buf.d.data();
        const int32_t* sx = buf.sx.data();
        parallel_stream_concat(counts, step, [&](size_t i, int64_t lo, int64_t hi) {
            cpu::tritplane_gemv_rows_scalar(views[i], xq, d, sx, lo, hi, ys[i]);
        });
        return;
    }
    buf.xexp.resize(cpu::tritplane_xexp_bytes(v));
    buf.zinit.resize(cpu::tritplane_lane_entries(v));
    buf.dexp.resize(cpu::tritplane_lane_entries(v));
    cpu::tritplane_build_act(v, buf.xq.data(), buf.d.data(), buf.sx.data(), buf.xexp.data(), buf.zinit.data(), buf.dexp.data());
    cpu::TritplaneAct a;
    a.xexp = buf.xexp.data();
    a.zinit = buf.zinit.data();
    a.dexp = buf.dexp.data();
    auto kernel = level == SimdLevel::Avx512 ? &cpu::tritplane_gemv_rows_avx512 : &cpu::tritplane_gemv_rows_avx2;
    parallel_stream_concat(counts, step, [&](size_t i, int64_t lo, int64_t hi) { kernel(views[i], a, lo, hi, ys[i]); });
}

void gemv(const PackedWeight& w, const float* x, float* y) {
    const PackedWeight* ws[] = {&w};
    float* ys[] = {y};
    gemv_many(ws, x, ys);
}

}  // namespace

void set_tritplane_gemv_variant(TritplaneGemvVariant v) { g_variant.store(int(v)); }
TritplaneGemvVariant tritplane_gemv_variant() {
    int v = g_variant.load(std::memory_order_relaxed);
    if (v < 0) {
        int unset = -1;
        g_variant.compare_exchange_strong(unset, int(variant_from_env()));
        v = g_variant.load();
    }
    return TritplaneGemvVariant(v);
}
const char* tritplane_gemv_variant_name(TritplaneGemvVariant v) {
    switch (v) {
        case TritplaneGemvVariant::Int8Superblocks: return "int8-superblocks";
        case TritplaneGemvVariant::Int8RowBlocksCmp: return "int8-rowblocks-cmp";
        case TritplaneGemvVariant::Int8RowBlocksLut: return "int8-rowblocks-lut";
        case TritplaneGemvVariant::Int8RowBlocksLut7: return "int8-rowblocks-lut7";
        case TritplaneGemvVariant::Int8Triples: return "int8-triples";
    }
    return "?";
}

PackedWeight pack_tritplane(int64_t rows, int64_t cols, int group, std::span<const int8_t> t1, std::span<const int8_t> t2,
                            std::span<const uint16_t> scales_f16) {
    const FormatParams p{2, group, false, false};
    if (std::string why = check(rows, cols, p); !why.empty()) fail(why);
    const TritplaneGeometry geo(group);
    const int64_t G = cols / group, rb = tritplane_row_bytes(cols, group);
    if (int64_t(t1.size()) != rows * cols || int64_t(t2.size()) != rows * cols)
        fail("pack_tritplane: each plane must have rows × cols trits");
    if (int64_t(scales_f16.size()) != rows * 2 * G) fail("pack_tritplane: scales must have rows × 2·cols/group entries");
    for (size_t i = 0; i < t1.size(); ++i)
        if (t1[i] < -1 || t1[i] > 1 || t2[i] < -1 || t2[i] > 1)
            fail("pack_tritplane: trit at (" + std::to_string(int64_t(i) / cols) + ", " + std::to_string(int64_t(i) % cols) +
                 ") is not -1, 0 or 1");
    const std::vector<int> pos = trit_positions(geo);
    std::vector<uint8_t> tw(size_t(rows * rb), 0);
#pragma omp parallel
    {
        std::vector<int8_t> digits(static_cast<size_t>(5 * geo.nb));
        std::vector<uint8_t> bytes(static_cast<size_t>(geo.nb));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < G; ++j)
                for (int p = 0; p < 2; ++p) {
                    const int8_t* t = (p == 0 ? t1.data() : t2.data()) + r * cols + j * group;
                    std::fill(digits.begin(), digits.end(), int8_t(0));  // padding digits: t = 0
                    for (int i = 0; i < group; ++i) digits[size_t(pos[size_t(i)])] = t[i];
                    for (int b = 0; b < geo.nb; ++b) bytes[size_t(b)] = p5_encode(digits.data() + 5 * b);
                    place_segment(geo, G, tw.data() + r * rb, j, p, bytes.data());
                }
    }
    PackedWeight w;
    w.format = &kFormatTritplane;
    w.rows = rows;
    w.cols = cols;
    w.params = p;
    const auto specs = layout(rows, cols, p);
    w.add_part(specs[0], tw);
    w.add_part(specs[1], {reinterpret_cast<const uint8_t*>(scales_f16.data()), scales_f16.size() * 2});
    prepare(w);
    return w;
}

void unpack_tritplane(const PackedWeight& w, int8_t* t1, int8_t* t2) {
    const TritplaneGeometry geo(w.params.group);
    const int64_t G = w.cols / geo.g, rb = tritplane_row_bytes(w.cols, geo.g);
    const uint8_t* trits = w.part("trits").data;
    const std::vector<int> pos = trit_positions(geo);
    std::vector<uint8_t> bytes(static_cast<size_t>(geo.nb));
    std::vector<int8_t> digits(static_cast<size_t>(5 * geo.nb));
    for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t j = 0; j < G; ++j)
            for (int p = 0; p < 2; ++p) {
                gather_segment(geo, G, trits + r * rb, j, p, bytes.data());
                for (int b = 0; b < geo.nb; ++b) p5_decode(bytes[size_t(b)], digits.data() + 5 * b);
                int8_t* t = (p == 0 ? t1 : t2) + r * w.cols + j * geo.g;
                for (int i = 0; i < geo.g; ++i) t[i] = digits[size_t(pos[size_t(i)])];
            }
}

PackedWeight random_tritplane(int64_t rows, int64_t cols, int group, float sigma, uint64_t seed) {
    const FormatParams p{2, group, false, false};
    if (std::string why = check(rows, cols, p); !why.empty()) fail(why);
    const TritplaneGeometry geo(group);
    const int64_t G = cols / group, rb = tritplane_row_bytes(cols, group);
    uint8_t code[243];
    for (unsigned n = 0; n < 243; ++n) code[n] = uint8_t((n * 256u + 242u) / 243u);
    std::vector<uint8_t> tw(size_t(rows * rb));
    std::vector<uint16_t> scales(size_t(rows * 2 * G));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        PortableRng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(r));
        uint8_t* row = tw.data() + r * rb;
        for (int64_t b = 0; b < rb; b += 4) {  // every byte a full 5-trit code (n uniform in 0..242) ...
            uint64_t bits = rng.next();
            for (int64_t k = 0; k < 4 && b + k < rb; ++k, bits >>= 16) row[b + k] = code[((bits & 0xFFFF) * 243) >> 16];
        }
        for (int64_t j = 0; j < G; ++j) {  // ... then the tail bytes: r random trits, the rest padding (u = 1)
            for (int pl = 0; pl < 2; ++pl) {
                unsigned n = 0;
                for (int k = 0; k < 5; ++k) n = n * 3u + (k < geo.r ? unsigned(rng.below(3)) : 1u);
                row[tritplane_byte_offset(geo, G, j, pl, geo.F)] = code[n];
            }
            const double a1 = sigma * (0.5 + rng.uniform()), a2 = a1 * (0.2 + 0.3 * rng.uniform());
            scales[size_t(r * 2 * G + 2 * j)] = f32_to_f16(float(a1));
            scales[size_t(r * 2 * G + 2 * j + 1)] = f32_to_f16(float(a2));
        }
    }
    PackedWeight w;
    w.format = &kFormatTritplane;
    w.rows = rows;
    w.cols = cols;
    w.params = p;
    const auto specs = layout(rows, cols, p);
    w.add_part(specs[0], tw);
    w.add_part(specs[1], {reinterpret_cast<const uint8_t*>(scales.data()), scales.size() * 2});
    prepare(w);
    return w;
}

const WeightFormat kFormatTritplane{
    "tritplane",
    "PTQTP: two ternary trit-planes (P5, 5 trits per byte) and two fp16 scales per group of g input columns",
    &check,
    &layout,
    &dequantize_rows,
    &gemv,
    &gemm_packed,
    &prepare,
    &dequantize_block,
    &gemv_many,
};

}  // namespace planeq
