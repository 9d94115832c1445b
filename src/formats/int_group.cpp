// The "int" (int-group) format: traits, packing, the scalar reference and the kernel dispatch.
// Layout in formats/int_group.hpp, kernels in kernels/cpu/int_group_*.cpp, design in docs/formats.md.
#include "formats/int_group.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>

#include "core/cpu_features.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/half.hpp"
#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq {

namespace {

bool valid_bits(int b) { return b == 2 || b == 3 || b == 4; }
bool valid_group(int g) { return g == 32 || g == 64 || g == 128 || g == 256; }

std::string check(int64_t rows, int64_t cols, const FormatParams& p) {
    if (!valid_bits(p.bits))
        return "int format: bits must be 2, 3 or 4 (got " + std::to_string(p.bits) + ")";
    if (!valid_group(p.group))
        return "int format: group size must be 32, 64, 128 or 256 (got " + std::to_string(p.group) + ")";
    if (rows <= 0 || cols <= 0) return "int format: empty weight";
    if (cols % p.group != 0)
        return "group size " + std::to_string(p.group) + " does not divide " + std::to_string(cols) + " input columns";
    return "";
}

int64_t zero_bytes(int64_t rows, int64_t cols, const FormatParams& p) {
    return (rows * (cols / p.group) * p.bits + 7) / 8;
}

std::vector<PartSpec> layout(int64_t rows, int64_t cols, const FormatParams& p) {
    std::vector<PartSpec> parts;
    parts.push_back({"qweight", DType::U8, {rows, int_group_row_bytes(p.bits, cols)}});
    parts.push_back({"scales", DType::F16, {rows, cols / p.group}});
    if (!p.sym) parts.push_back({"zeros", DType::U8, {zero_bytes(rows, cols, p)}});
    if (p.g_idx) parts.push_back({"g_idx", DType::I32, {cols}});
    return parts;
}

// b-bit value k of a little-endian bit stream.
int stream_get(const uint8_t* s, int64_t nbytes, int bits, int64_t k) {
    const int64_t bit = k * bits, byte = bit / 8;
    uint32_t v = s[byte];
    if (byte + 1 < nbytes) v |= uint32_t(s[byte + 1]) << 8;
    return int(v >> (bit % 8)) & ((1 << bits) - 1);
}
void stream_put(uint8_t* s, int bits, int64_t k, int value) {
    const int64_t bit = k * bits;
    for (int i = 0; i < bits; ++i)
        if ((value >> i) & 1) s[(bit + i) / 8] |= uint8_t(1u << ((bit + i) % 8));
}

// Packs the codes of one chunk of width w (natural column order) — the inverse of
// cpu::int_group_unpack_chunk; see the layout in formats/int_group.hpp.
void pack_chunk(const uint8_t* q, int bits, int64_t w, uint8_t* p) {
    if (bits == 4) {
        const int64_t half = w / 2;
        for (int64_t j = 0; j < half; ++j) p[j] = uint8_t(q[j] | q[half + j] << 4);
        return;
    }
    const int64_t quarter = w / 4;
    for (int64_t j = 0; j < quarter; ++j)
        p[j] = uint8_t((q[j] & 3) | (q[quarter + j] & 3) << 2 | (q[2 * quarter + j] & 3) << 4 | (q[3 * quarter + j] & 3) << 6);
    if (bits == 3)
        for (int64_t i = 0; i < w / 8; ++i) {
            int byte = 0;
            for (int b = 0; b < 8; ++b) byte |= ((q[8 * i + b] >> 2) & 1) << b;
            p[quarter + i] = uint8_t(byte);
        }
}

// A whole row: cols codes (natural order) <-> row bytes, chunk by chunk.
void pack_row(const uint8_t* q, int64_t cols, int bits, uint8_t* row) {
    const int64_t W = int_group_chunk_cols(bits);
    for (int64_t c0 = 0, k = 0; c0 < cols; c0 += W, ++k)
        pack_chunk(q + c0, bits, std::min(W, cols - c0), row + int_group_chunk_offset(bits, k));
}
void unpack_row(const uint8_t* row, int64_t cols, int bits, uint8_t* q) {
    const int64_t W = int_group_chunk_cols(bits);
    for (int64_t c0 = 0, k = 0; c0 < cols; c0 += W, ++k)
        cpu::int_group_unpack_chunk(row + int_group_chunk_offset(bits, k), bits, std::min(W, cols - c0), q + c0);
}

// Column order for g_idx: kernel column k is original column perm[k], groups contiguous (stable).
// Fails unless every g_idx is a valid group and every group has exactly g columns.
std::vector<int32_t> group_permutation(const int32_t* g_idx, int64_t cols, int group) {
    const int64_t ng = cols / group;
    std::vector<int64_t> count(size_t(ng), 0);
    for (int64_t i = 0; i < cols; ++i) {
        if (g_idx[i] < 0 || g_idx[i] >= ng)
            fail("int format: g_idx[" + std::to_string(i) + "] = " + std::to_string(g_idx[i]) + " is not a group in [0, " +
                 std::to_string(ng) + ")");
        ++count[size_t(g_idx[i])];
    }
    for (int64_t j = 0; j < ng; ++j)
        if (count[size_t(j)] != group)
            fail("int format: g_idx assigns " + std::to_string(count[size_t(j)]) + " columns to group " +
                 std::to_string(j) + ", every group must have exactly " + std::to_string(group));
    std::vector<int32_t> perm(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
    return perm;
}

// What prepare() builds: zero points one per byte; with g_idx, the codes repacked in group order.
struct Runtime {
    std::vector<uint8_t> zeros;        // [rows × ngroups]
    std::vector<int32_t> perm;         // g_idx only: kernel column k ← original column perm[k]
    std::vector<uint8_t> qweight;      // g_idx only: codes in kernel column order
    cpu::IntBlocks blocks;             // AVX-512 / AVX2: the 16-row block repack of the GEMV (empty otherwise)
};

cpu::IntGroupView view_of(const PackedWeight& w, const Runtime& rt, bool kernel_order);

std::shared_ptr<Runtime> build_runtime(const PackedWeight& w) {
    auto rt = std::make_shared<Runtime>();
    const int bits = w.params.bits;
    const int64_t ng = w.cols / w.params.group, n = w.rows * ng;
    rt->zeros.resize(size_t(n));
    if (w.params.sym) {
        std::fill(rt->zeros.begin(), rt->zeros.end(), uint8_t(1 << (bits - 1)));
    } else {
        const WeightPart& zp = w.part("zeros");
        const int64_t nbytes = int64_t(zp.spec.nbytes());
        for (int64_t k = 0; k < n; ++k) rt->zeros[size_t(k)] = uint8_t(stream_get(zp.data, nbytes, bits, k));
    }
    if (w.params.g_idx) {
        rt->perm = group_permutation(w.part("g_idx").as<int32_t>(), w.cols, w.params.group);
        const int64_t rb = int_group_row_bytes(bits, w.cols);
        rt->qweight.assign(size_t(w.rows * rb), 0);
        const uint8_t* src = w.part("qweight").data;
#pragma omp parallel
        {
            std::vector<uint8_t> orig(static_cast<size_t>(w.cols)), perm(size_t(w.cols));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < w.rows; ++r) {
                unpack_row(src + r * rb, w.cols, bits, orig.data());
                for (int64_t k = 0; k < w.cols; ++k) perm[size_t(k)] = orig[size_t(rt->perm[size_t(k)])];
                pack_row(perm.data(), w.cols, bits, rt->qweight.data() + r * rb);
            }
        }
    }
    if ((simd_level() == SimdLevel::Avx512 || simd_level() == SimdLevel::Avx2) && cpu::int_blocks_supported(bits, w.params.group))
        rt->blocks = cpu::int_group_to_blocks(view_of(w, *rt, true));
    return rt;
}

void prepare(PackedWeight& w) { w.runtime = build_runtime(w); }

// The runtime of w (built on the fly, slowly, if prepare() never ran).
std::shared_ptr<const Runtime> runtime_of(const PackedWeight& w) {
    if (w.runtime) return std::static_pointer_cast<const Runtime>(w.runtime);
    return build_runtime(w);
}

// Kernel view: `kernel_order` picks the g_idx-repacked codes (GEMV) over the stored ones (dequantize).
cpu::IntGroupView view_of(const PackedWeight& w, const Runtime& rt, bool kernel_order) {
    cpu::IntGroupView v;
    v.qweight = kernel_order && w.params.g_idx ? rt.qweight.data() : w.part("qweight").data;
    v.rows = w.rows;
    v.cols = w.cols;
    v.bits = w.params.bits;
    v.group = w.params.group;
    v.ngroups = w.cols / w.params.group;
    v.scales = w.part("scales").as<uint16_t>();
    v.zeros = rt.zeros.data();
    return v;
}

// The SIMD level the kernels run at: the AVX-512 kernels also use GFNI (vgf2p8affineqb extracts 2-bit
// fields in one instruction). Every CPU with planeq's AVX-512 level has it (Sapphire Rapids, Zen 4 on);
// it is checked anyway, falling back to AVX2.
SimdLevel kernel_level() {
    static const bool gfni = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("gfni") != 0;
    }();
    const SimdLevel level = simd_level();
    return level == SimdLevel::Avx512 && !gfni ? SimdLevel::Avx2 : level;
}

// ---- reference dequantization ---------------------------------------------------------------------

void dequantize_rows(const PackedWeight& w, int64_t r0, int64_t r1, float* out) {
    const int bits = w.params.bits, g = w.params.group;
    const int64_t cols = w.cols, ng = cols / g, rb = int_group_row_bytes(bits, cols);
    const uint8_t* q = w.part("qweight").data;
    const uint16_t* s = w.part("scales").as<uint16_t>();
    const WeightPart* zp = w.find_part("zeros");
    const int32_t* gi = w.params.g_idx ? w.part("g_idx").as<int32_t>() : nullptr;
    std::vector<int> z(static_cast<size_t>(ng));
    std::vector<float> sf(static_cast<size_t>(ng));
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t j = 0; j < ng; ++j) {
            z[size_t(j)] = zp ? stream_get(zp->data, int64_t(zp->spec.nbytes()), bits, r * ng + j) : 1 << (bits - 1);
            sf[size_t(j)] = f16_to_f32(s[r * ng + j]);
        }
        for (int64_t c = 0; c < cols; ++c) {
            const int64_t j = gi ? gi[c] : c / g;
            const int code = cpu::int_group_code(q + r * rb, cols, bits, c);
            out[(r - r0) * cols + c] = sf[size_t(j)] * float(code - z[size_t(j)]);
        }
    }
}

void dequantize_block(const PackedWeight& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out) {
    const auto rt = runtime_of(w);
    const cpu::IntGroupView v = view_of(w, *rt, false);
    const int32_t* gi = w.params.g_idx ? w.part("g_idx").as<int32_t>() : nullptr;
    if (kernel_level() == SimdLevel::Avx512) {
        cpu::int_group_dequant_block_avx512(v, gi, r0, nr, c0, nc, out);
        return;
    }
    // Scalar: unpack the chunks the block touches, then ŵ = float(s) · float(q − z). Without g_idx, per run of
    // one group's columns, so the scale and zero are converted once and the loop vectorizes (float(q) − float(z)
    // is the exact integer q − z, as before: the same bits). This is the prefill GEMM's B operand on AVX2 CPUs.
    const int64_t W = int_group_chunk_cols(v.bits);
    uint8_t codes[256];
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t* row = v.qweight + r * v.row_bytes();
        const uint16_t* s = v.scales + r * v.ngroups;
        const uint8_t* z = v.zeros + r * v.ngroups;
        float* o = out + (r - r0) * nc;  // o[c - c0] for column c
        for (int64_t k = c0 / W; k * W < c0 + nc; ++k) {
            const int64_t cs = k * W, width = std::min(W, v.cols - cs);
            cpu::int_group_unpack_chunk(row + int_group_chunk_offset(v.bits, k), v.bits, width, codes);
            const int64_t ca = std::max(c0, cs), cb = std::min(c0 + nc, cs + width);
            if (gi) {
                for (int64_t c = ca; c < cb; ++c) o[c - c0] = f16_to_f32(s[gi[c]]) * float(int(codes[c - cs]) - int(z[gi[c]]));
                continue;
            }
            for (int64_t c = ca; c < cb;) {
                const int64_t j = c / v.group, ce = std::min(cb, (j + 1) * v.group);
                const float sf = f16_to_f32(s[j]), zf = float(z[j]);
                for (; c < ce; ++c) o[c - c0] = sf * (float(codes[c - cs]) - zf);
            }
        }
    }
}

// ---- GEMV ---------------------------------------------------------------------------------------------

std::atomic<int> g_variant{int(IntGemvVariant::Int8RowBlocks)};

struct ActBuffers {
    std::vector<float> xperm;
    std::vector<int8_t> xq;
    std::vector<float> d, dexp, zsum, xsum;
    std::vector<int32_t> sx;
};

void gemv(const PackedWeight& w, const float* x, float* y) {
    const auto rt = runtime_of(w);
    const cpu::IntGroupView v = view_of(w, *rt, true);
    const int64_t cols = w.cols, g = w.params.group, ng = v.ngroups;
    thread_local ActBuffers buf;
    if (w.params.g_idx) {  // the kernel sees the columns grouped: permute x once
        buf.xperm.resize(size_t(cols));
        for (int64_t k = 0; k < cols; ++k) buf.xperm[size_t(k)] = x[rt->perm[size_t(k)]];
        x = buf.xperm.data();
    }
    const SimdLevel level = kernel_level();
    const IntGemvVariant variant = int_group_gemv_variant();
    // Rows go to threads as contiguous streams, 32 rows (or two 16-row blocks) at a time, with stealing
    // at the end (parallel_stream: a descheduled thread's work on a shared machine is taken over).
    const int64_t rows = w.rows, step = 32;

    if (variant == IntGemvVariant::F32Act && level == SimdLevel::Avx512 && g >= 64) {
        buf.xsum.assign(size_t(ng), 0.0f);
        for (int64_t j = 0; j < ng; ++j) {
            float s = 0.0f;
            for (int64_t i = j * g; i < (j + 1) * g; ++i) s += x[i];
            buf.xsum[size_t(j)] = s;
        }
        const float* xsum = buf.xsum.data();  // (buf is thread_local: name it outside the parallel region)
        parallel_stream(rows, step, [&](int64_t lo, int64_t hi) { cpu::int_group_gemv_rows_f32_avx512(v, x, xsum, lo, hi, y); });
        return;
    }

    const bool row_blocks = variant == IntGemvVariant::Int8RowBlocks;
    const int block = variant == IntGemvVariant::Int8ActGroup || row_blocks ? int(g) : 32;
    const int64_t nblocks = cols / block, nvec = (cols + 63) / 64;
    buf.xq.assign(size_t(cols + 64), 0);
    buf.d.resize(size_t(nblocks));
    buf.sx.resize(size_t(nblocks));
    if (level == SimdLevel::Avx512) cpu::int_group_quantize_act_avx512(x, cols, block, buf.xq.data(), buf.d.data(), buf.sx.data());
    else if (level == SimdLevel::Avx2) cpu::int_group_quantize_act_avx2(x, cols, block, buf.xq.data(), buf.d.data(), buf.sx.data());
    else cpu::int_group_quantize_act_scalar(x, cols, block, buf.xq.data(), buf.d.data(), buf.sx.data());
    buf.zsum.assign(size_t(ng), 0.0f);
    const int64_t per_group = g / block;
    for (int64_t j = 0; j < ng; ++j) {
        float s = 0.0f;
        for (int64_t k = j * per_group; k < (j + 1) * per_group; ++k) s += buf.d[size_t(k)] * float(buf.sx[size_t(k)]);
        buf.zsum[size_t(j)] = s;
    }
    if (block == 32) {
        buf.dexp.assign(size_t(nvec * 16), 0.0f);
        for (int64_t k = 0; k < nblocks; ++k)
            std::fill_n(buf.dexp.begin() + (k / 2) * 16 + (k % 2) * 8, 8, buf.d[size_t(k)]);
    }
    cpu::Int8Act a;
    a.block = block;
    a.xq = buf.xq.data();
    a.d = buf.d.data();
    a.dexp = buf.dexp.data();
    a.zsum = buf.zsum.data();
    if (row_blocks && (level == SimdLevel::Avx512 || level == SimdLevel::Avx2) && !rt->blocks.bytes.empty()) {
        const cpu::IntBlocks& blocks = rt->blocks;
        const int64_t nb = blocks.nblocks;
        auto kernel = level == SimdLevel::Avx512 ? &cpu::int_group_gemv_blocks_avx512 : &cpu::int_group_gemv_blocks_avx2;
        parallel_stream(nb, 2, [&](int64_t lo, int64_t hi) { kernel(blocks, a, lo, hi, y); });
        return;
    }
    auto kernel = level == SimdLevel::Avx512 ? &cpu::int_group_gemv_rows_avx512
                : level == SimdLevel::Avx2   ? &cpu::int_group_gemv_rows_avx2
                                             : &cpu::int_group_gemv_rows_scalar;
    parallel_stream(rows, step, [&](int64_t lo, int64_t hi) { kernel(v, a, lo, hi, y); });
}

}  // namespace

void set_int_group_gemv_variant(IntGemvVariant v) { g_variant.store(int(v)); }
IntGemvVariant int_group_gemv_variant() { return IntGemvVariant(g_variant.load(std::memory_order_relaxed)); }
const char* int_group_gemv_variant_name(IntGemvVariant v) {
    switch (v) {
        case IntGemvVariant::Int8Act32: return "int8-act32";
        case IntGemvVariant::Int8ActGroup: return "int8-actg";
        case IntGemvVariant::F32Act: return "f32-act";
        case IntGemvVariant::Int8RowBlocks: return "int8-rowblocks";
    }
    return "?";
}

PackedWeight pack_int_group(int64_t rows, int64_t cols, const FormatParams& p, std::span<const uint8_t> codes,
                            std::span<const uint16_t> scales_f16, std::span<const uint8_t> zeros,
                            std::span<const int32_t> g_idx) {
    if (std::string why = check(rows, cols, p); !why.empty()) fail(why);
    const int bits = p.bits, maxq = (1 << bits) - 1;
    const int64_t ng = cols / p.group, rb = int_group_row_bytes(bits, cols);
    if (int64_t(codes.size()) != rows * cols)
        fail("pack_int_group: " + std::to_string(codes.size()) + " codes for a " + std::to_string(rows) + "x" +
             std::to_string(cols) + " weight");
    if (int64_t(scales_f16.size()) != rows * ng) fail("pack_int_group: scales must have rows × cols/group entries");
    if (!p.sym && int64_t(zeros.size()) != rows * ng) fail("pack_int_group: zeros must have rows × cols/group entries");
    if (p.g_idx ? int64_t(g_idx.size()) != cols : !g_idx.empty())
        fail(p.g_idx ? "pack_int_group: g_idx must have one entry per input column"
                     : "pack_int_group: g_idx given but params.g_idx is off");
    if (p.g_idx) (void)group_permutation(g_idx.data(), cols, p.group);  // validates

    for (size_t i = 0; i < codes.size(); ++i)
        if (codes[i] > maxq)
            fail("pack_int_group: code " + std::to_string(codes[i]) + " at (" + std::to_string(int64_t(i) / cols) + ", " +
                 std::to_string(int64_t(i) % cols) + ") does not fit in " + std::to_string(bits) + " bits");
    std::vector<uint8_t> qw(size_t(rows * rb), 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) pack_row(codes.data() + r * cols, cols, bits, qw.data() + r * rb);
    PackedWeight w;
    w.format = &kFormatIntGroup;
    w.rows = rows;
    w.cols = cols;
    w.params = p;
    for (const PartSpec& spec : layout(rows, cols, p)) {
        if (spec.suffix == "qweight") {
            w.add_part(spec, qw);
        } else if (spec.suffix == "scales") {
            w.add_part(spec, {reinterpret_cast<const uint8_t*>(scales_f16.data()), scales_f16.size() * 2});
        } else if (spec.suffix == "zeros") {
            std::vector<uint8_t> zs(spec.nbytes(), 0);
            for (int64_t k = 0; k < rows * ng; ++k) {
                if (zeros[size_t(k)] > maxq)
                    fail("pack_int_group: zero point " + std::to_string(zeros[size_t(k)]) + " does not fit in " +
                         std::to_string(bits) + " bits");
                stream_put(zs.data(), bits, k, zeros[size_t(k)]);
            }
            w.add_part(spec, zs);
        } else {
            w.add_part(spec, {reinterpret_cast<const uint8_t*>(g_idx.data()), g_idx.size() * 4});
        }
    }
    prepare(w);
    return w;
}

std::vector<uint8_t> unpack_int_group_codes(const PackedWeight& w) {
    const int bits = w.params.bits;
    const int64_t rb = int_group_row_bytes(bits, w.cols);
    const uint8_t* q = w.part("qweight").data;
    std::vector<uint8_t> out(size_t(w.rows * w.cols));
    for (int64_t r = 0; r < w.rows; ++r) unpack_row(q + r * rb, w.cols, bits, out.data() + r * w.cols);
    return out;
}

std::vector<uint8_t> unpack_int_group_zeros(const PackedWeight& w) {
    const auto rt = runtime_of(w);
    return rt->zeros;
}

const WeightFormat kFormatIntGroup{
    "int",
    "b-bit integer codes (b = 2, 3, 4) with an fp16 scale and a b-bit zero point per group of g input columns",
    &check,
    &layout,
    &dequantize_rows,
    &gemv,
    &gemm_packed,
    &prepare,
    &dequantize_block,
};

}  // namespace planeq
