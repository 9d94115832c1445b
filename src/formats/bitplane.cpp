// The "bitplane" format: traits, packing, the released-layout converters, the scalar reference and the
// kernel dispatch. Layout in formats/bitplane.hpp, kernels in kernels/cpu/bitplane_*.cpp, design and
// measurements in docs/formats.md.
#include "formats/bitplane.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "kernels/cpu/bitplane_kernels.hpp"
#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq {

namespace {

bool valid_bits(int k) { return k == 2 || k == 3 || k == 4; }
bool valid_group(int g) { return g == 32 || g == 64 || g == 128 || g == 256; }

std::string check(int64_t rows, int64_t cols, const FormatParams& p) {
    if (!valid_bits(p.bits))
        return "bitplane format: bits (planes k) must be 2, 3 or 4 (got " + std::to_string(p.bits) + ")";
    if (!valid_group(p.group))
        return "bitplane format: group size must be 32, 64, 128 or 256 (got " + std::to_string(p.group) + ")";
    if (p.sym || p.g_idx) return "bitplane format: no symmetric variant and no g_idx";
    if (rows <= 0 || cols <= 0) return "bitplane format: empty weight";
    if (cols % p.group != 0)
        return "group size " + std::to_string(p.group) + " does not divide " + std::to_string(cols) + " input columns";
    if (cols % 32 != 0) return "bitplane format: input columns (" + std::to_string(cols) + ") must be a multiple of 32";
    return "";
}

std::vector<PartSpec> layout(int64_t rows, int64_t cols, const FormatParams& p) {
    return {{"planes", DType::U8, {rows, bitplane_row_bytes(p.bits, cols)}},
            {"coefs", DType::BF16, {rows, cols / p.group, int64_t(p.bits) + 1}}};
}

// One row's codes (natural order) → its plane bytes (the inverse of cpu::bitplane_code).
void pack_row(const uint8_t* q, int64_t cols, int k, uint8_t* row) {
    for (int64_t t = 0; 64 * t < cols; ++t) {
        const bool full = 64 * t + 64 <= cols;
        const int64_t width = full ? 64 : 32;
        for (int m = 1; m <= k; ++m) {
            uint64_t word = 0;
            for (int64_t i = 0; i < width; ++i) word |= uint64_t((q[64 * t + i] >> (m - 1)) & 1u) << i;
            if (full) {
                std::memcpy(row + 8 * k * t + 8 * (m - 1), &word, 8);
            } else {
                const uint32_t w32 = uint32_t(word);
                std::memcpy(row + 8 * k * t + 4 * (m - 1), &w32, 4);
            }
        }
    }
}

cpu::BitplaneView view_of(const PackedWeight& w) {
    cpu::BitplaneView v;
    v.planes = w.part("planes").data;
    v.rows = w.rows;
    v.cols = w.cols;
    v.k = w.params.bits;
    v.group = w.params.group;
    v.ngroups = w.cols / w.params.group;
    v.coefs = w.part("coefs").as<uint16_t>();
    return v;
}

// ---- reference dequantization ---------------------------------------------------------------------

void dequantize_rows(const PackedWeight& w, int64_t r0, int64_t r1, float* out) {
    const cpu::BitplaneView v = view_of(w);
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = v.planes + r * v.row_bytes();
        for (int64_t c = 0; c < v.cols; ++c) {
            const uint16_t* cf = v.coefs + (r * v.ngroups + c / v.group) * (v.k + 1);
            out[(r - r0) * v.cols + c] = bitplane_level_bf16(cf, v.k, unsigned(cpu::bitplane_code(row, v.cols, v.k, c)));
        }
    }
}

void dequantize_block(const PackedWeight& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    const cpu::BitplaneView v = view_of(w);
    if (simd_level() == SimdLevel::Avx512) {
        cpu::bitplane_dequant_block_avx512(v, r0, nr, c0, nc, out);
        return;
    }
    // Scalar (the prefill GEMM's B operand without AVX-512): per row and group the 2^k levels once, per 64-column
    // chunk the k plane masks once, then per column its code's bits and a lookup.
    float lev[16];
    uint64_t mask[8];
    const int64_t end = c0 + nc;
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = v.planes + r * v.row_bytes();
        float* o = out + (r - r0) * nc - c0;
        for (int64_t c = c0; c < end;) {
            const int64_t j = c / v.group, gend = std::min(end, (j + 1) * v.group);
            const uint16_t* cf = v.coefs + (r * v.ngroups + j) * (v.k + 1);
            for (unsigned b = 0; b < (1u << v.k); ++b) lev[b] = bitplane_level_bf16(cf, v.k, b);
            while (c < gend) {
                const int64_t t = c / 64, cend = std::min(gend, 64 * t + 64);
                for (int m = 0; m < v.k; ++m) mask[m] = cpu::bitplane_mask(row, v.cols, v.k, t, m + 1);
                for (; c < cend; ++c) {
                    const int i = int(c % 64);
                    unsigned code = 0;
                    for (int m = 0; m < v.k; ++m) code |= unsigned((mask[m] >> i) & 1u) << m;
                    o[c] = lev[code];
                }
            }
        }
    }
}

// ---- GEMV ---------------------------------------------------------------------------------------------

std::atomic<int> g_variant{int(BitplaneGemvVariant::Int8RowBlocks)};

// Where the row-block kernel runs: AVX-512 (every k) and AVX2 (the bit-slot layouts, k = 2 and 4).
bool runs_blocks(SimdLevel level, int k) { return level == SimdLevel::Avx512 || (level == SimdLevel::Avx2 && (k == 2 || k == 4)); }

// The 16-row block repack of kernel (d), built by prepare() where it runs (on the fly otherwise).
std::shared_ptr<const cpu::BitplaneBlocks> blocks_of(const PackedWeight& w) {
    if (w.runtime) return std::static_pointer_cast<const cpu::BitplaneBlocks>(w.runtime);
    return std::make_shared<const cpu::BitplaneBlocks>(cpu::bitplane_to_blocks(view_of(w)));
}

void prepare(PackedWeight& w) {
    if (runs_blocks(simd_level(), w.params.bits)) w.runtime = std::make_shared<cpu::BitplaneBlocks>(cpu::bitplane_to_blocks(view_of(w)));
}

struct ActBuffers {
    std::vector<int8_t> xq;
    std::vector<float> d, drep, sxe, xsum, lut;
    std::vector<int32_t> sx;
};

void gemv(const PackedWeight& w, const float* x, float* y) {
    const cpu::BitplaneView v = view_of(w);
    const int64_t cols = w.cols, g = v.group, ng = v.ngroups, k1 = v.k + 1;
    thread_local ActBuffers buf;
    const SimdLevel level = simd_level();
    const BitplaneGemvVariant variant = bitplane_gemv_variant();
    const int64_t rows = w.rows, step = 32;  // rows per chunk of parallel_stream (as the int format)
    cpu::BitplaneAct a;

    if (level == SimdLevel::Avx512 && (variant == BitplaneGemvVariant::F32Levels || variant == BitplaneGemvVariant::F32Lut)) {
        a.xf = x;
        buf.xsum.assign(size_t(ng), 0.0f);
        for (int64_t j = 0; j < ng; ++j) {
            float s = 0.0f;
            for (int64_t i = j * g; i < (j + 1) * g; ++i) s += x[i];
            buf.xsum[size_t(j)] = s;
        }
        a.xsum = buf.xsum.data();
        if (variant == BitplaneGemvVariant::F32Lut) {
            // Whole 64-column vectors: the builder writes (and the kernel gathers from) the all-zero
            // chunks past cols of a 32-column last vector (cols % 64 = 32, g = 32).
            buf.lut.resize(size_t((cols + 63) / 64 * 8 * 256));
            cpu::bitplane_build_lut_avx512(x, cols, buf.lut.data());
            a.lut = buf.lut.data();
        }
        auto kernel = variant == BitplaneGemvVariant::F32Lut ? &cpu::bitplane_gemv_rows_lut_avx512
                                                             : &cpu::bitplane_gemv_rows_levels_avx512;
        parallel_stream(rows, step, [&](int64_t lo, int64_t hi) { kernel(v, a, lo, hi, y); });
        return;
    }

    buf.xq.assign(size_t(cols + 64), 0);
    buf.d.resize(size_t(ng));
    buf.sx.resize(size_t(ng));
    if (level == SimdLevel::Avx512) cpu::int_group_quantize_act_avx512(x, cols, int(g), buf.xq.data(), buf.d.data(), buf.sx.data());
    else if (level == SimdLevel::Avx2) cpu::int_group_quantize_act_avx2(x, cols, int(g), buf.xq.data(), buf.d.data(), buf.sx.data());
    else cpu::int_group_quantize_act_scalar(x, cols, int(g), buf.xq.data(), buf.d.data(), buf.sx.data());
    buf.drep.resize(size_t(ng * k1 + 16));
    buf.sxe.assign(size_t(ng * k1 + 16), 0.0f);
    for (int64_t j = 0; j < ng; ++j) {
        for (int64_t m = 0; m < k1; ++m) buf.drep[size_t(j * k1 + m)] = buf.d[size_t(j)];
        buf.sxe[size_t(j * k1)] = float(buf.sx[size_t(j)]);
    }
    a.xq = buf.xq.data();
    a.d = buf.d.data();
    a.sx = buf.sx.data();
    a.drep = buf.drep.data();
    a.sxe = buf.sxe.data();
    if (runs_blocks(level, v.k) && variant == BitplaneGemvVariant::Int8RowBlocks) {
        const auto blocks = blocks_of(w);
        const int64_t nb = blocks->nblocks;
        auto kernel = level == SimdLevel::Avx512 ? &cpu::bitplane_gemv_blocks_avx512 : &cpu::bitplane_gemv_blocks_avx2;
        parallel_stream(nb, 2, [&](int64_t lo, int64_t hi) { kernel(*blocks, a, lo, hi, y); });
        return;
    }
    auto kernel = level == SimdLevel::Avx512 ? &cpu::bitplane_gemv_rows_avx512
                : level == SimdLevel::Avx2   ? &cpu::bitplane_gemv_rows_avx2
                                             : &cpu::bitplane_gemv_rows_scalar;
    parallel_stream(rows, step, [&](int64_t lo, int64_t hi) { kernel(v, a, lo, hi, y); });
}

}  // namespace

void set_bitplane_gemv_variant(BitplaneGemvVariant v) { g_variant.store(int(v)); }
BitplaneGemvVariant bitplane_gemv_variant() { return BitplaneGemvVariant(g_variant.load(std::memory_order_relaxed)); }
const char* bitplane_gemv_variant_name(BitplaneGemvVariant v) {
    switch (v) {
        case BitplaneGemvVariant::Int8BitSerial: return "int8-bitserial";
        case BitplaneGemvVariant::F32Levels: return "f32-levels";
        case BitplaneGemvVariant::F32Lut: return "f32-lut";
        case BitplaneGemvVariant::Int8RowBlocks: return "int8-rowblocks";
    }
    return "?";
}

PackedWeight pack_bitplane(int64_t rows, int64_t cols, const FormatParams& p, std::span<const uint8_t> codes,
                           std::span<const uint16_t> coefs_bf16) {
    if (std::string why = check(rows, cols, p); !why.empty()) fail(why);
    const int k = p.bits;
    const int64_t ng = cols / p.group, rb = bitplane_row_bytes(k, cols);
    if (int64_t(codes.size()) != rows * cols)
        fail("pack_bitplane: " + std::to_string(codes.size()) + " codes for a " + std::to_string(rows) + "x" +
             std::to_string(cols) + " weight");
    if (int64_t(coefs_bf16.size()) != rows * ng * (k + 1))
        fail("pack_bitplane: coefs must have rows × cols/group × (k+1) entries");
    for (size_t i = 0; i < codes.size(); ++i)
        if (codes[i] >> k)
            fail("pack_bitplane: code " + std::to_string(codes[i]) + " at (" + std::to_string(int64_t(i) / cols) + ", " +
                 std::to_string(int64_t(i) % cols) + ") does not fit in " + std::to_string(k) + " planes");
    std::vector<uint8_t> planes(size_t(rows * rb), 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) pack_row(codes.data() + r * cols, cols, k, planes.data() + r * rb);
    PackedWeight w;
    w.format = &kFormatBitplane;
    w.rows = rows;
    w.cols = cols;
    w.params = p;
    const std::vector<PartSpec> specs = layout(rows, cols, p);
    w.add_part(specs[0], planes);
    w.add_part(specs[1], {reinterpret_cast<const uint8_t*>(coefs_bf16.data()), coefs_bf16.size() * 2});
    prepare(w);
    return w;
}

std::vector<uint8_t> unpack_bitplane_codes(const PackedWeight& w) {
    const cpu::BitplaneView v = view_of(w);
    std::vector<uint8_t> out(size_t(w.rows * w.cols));
    for (int64_t r = 0; r < w.rows; ++r)
        for (int64_t c = 0; c < w.cols; ++c)
            out[size_t(r * w.cols + c)] = uint8_t(cpu::bitplane_code(v.planes + r * v.row_bytes(), v.cols, v.k, c));
    return out;
}

std::vector<uint16_t> bitplane_coefs(const PackedWeight& w) {
    const WeightPart& c = w.part("coefs");
    const uint16_t* p = c.as<uint16_t>();
    return std::vector<uint16_t>(p, p + c.spec.nbytes() / 2);
}

BitplaneReleased bitplane_to_released(const PackedWeight& w) {
    const cpu::BitplaneView v = view_of(w);
    const int64_t R = w.rows, C = w.cols, k = v.k, ng = v.ngroups;
    BitplaneReleased out;
    out.planes.resize(size_t(C / 32 * k * R));
    out.c.resize(size_t(ng * (k + 1) * R));
    for (int64_t r = 0; r < R; ++r) {
        const uint8_t* row = v.planes + r * v.row_bytes();
        for (int64_t t = 0; t < C / 32; ++t)
            for (int m = 1; m <= k; ++m) {
                const uint32_t word = uint32_t(cpu::bitplane_mask(row, C, int(k), t / 2, m) >> (32 * (t % 2)));
                out.planes[size_t((t * k + (m - 1)) * R + r)] = int32_t(word);
            }
        for (int64_t j = 0; j < ng; ++j) {
            const uint16_t* cf = v.coefs + (r * ng + j) * (k + 1);
            for (int m = 1; m <= k; ++m) out.c[size_t((j * (k + 1) + (m - 1)) * R + r)] = cf[m];
            out.c[size_t((j * (k + 1) + k) * R + r)] = cf[0];
        }
    }
    return out;
}

PackedWeight bitplane_from_released(int64_t rows, int64_t cols, const FormatParams& p, std::span<const int32_t> planes,
                                    std::span<const uint16_t> c) {
    if (std::string why = check(rows, cols, p); !why.empty()) fail(why);
    const int64_t R = rows, C = cols, k = p.bits, ng = cols / p.group, rb = bitplane_row_bytes(p.bits, cols);
    if (int64_t(planes.size()) != C / 32 * k * R) fail("bitplane_from_released: planes must be int32 [C/32, k, R]");
    if (int64_t(c.size()) != ng * (k + 1) * R) fail("bitplane_from_released: c must be bf16 [C/g, k+1, R]");
    std::vector<uint8_t> bytes(size_t(R * rb), 0);
    std::vector<uint16_t> coefs(size_t(R * ng * (k + 1)));
    for (int64_t r = 0; r < R; ++r) {
        uint8_t* row = bytes.data() + r * rb;
        for (int64_t t = 0; t < C / 32; ++t)
            for (int64_t m = 1; m <= k; ++m) {
                const uint32_t word = uint32_t(planes[size_t((t * k + (m - 1)) * R + r)]);
                const int64_t t64 = t / 2;
                // Full 64-column chunk: the two 32-bit halves of word m − 1; a 32-column last chunk: a u32.
                const int64_t off = 64 * t64 + 64 <= C ? 8 * k * t64 + 8 * (m - 1) + 4 * (t % 2) : 8 * k * t64 + 4 * (m - 1);
                std::memcpy(row + off, &word, 4);  // little-endian: the low half first
            }
        for (int64_t j = 0; j < ng; ++j) {
            uint16_t* cf = coefs.data() + (r * ng + j) * (k + 1);
            for (int64_t m = 1; m <= k; ++m) cf[m] = c[size_t((j * (k + 1) + (m - 1)) * R + r)];
            cf[0] = c[size_t((j * (k + 1) + k) * R + r)];
        }
    }
    PackedWeight w;
    w.format = &kFormatBitplane;
    w.rows = rows;
    w.cols = cols;
    w.params = p;
    const std::vector<PartSpec> specs = layout(rows, cols, p);
    w.add_part(specs[0], bytes);
    w.add_part(specs[1], {reinterpret_cast<const uint8_t*>(coefs.data()), coefs.size() * 2});
    prepare(w);
    return w;
}

const WeightFormat kFormatBitplane{
    "bitplane",
    "BPDQ bit-planes: k binary planes (k = 2, 3, 4) and k+1 bf16 coefficients per group of g input columns",
    &check,
    &layout,
    &dequantize_rows,
    &gemv,
    &gemm_packed,
    &prepare,
    &dequantize_block,
};

}  // namespace planeq
