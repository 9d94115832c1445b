// Upload: a PackedWeight → its GPU layout (cuda_gemv.hpp). The repack goes through each format's public
// unpack functions (codes in natural order), not its stored bytes, so the GPU path depends only on the
// formats' documented contracts and stays right while their packed layouts evolve.
#include <cstring>
#include <vector>

#include "core/half.hpp"
#include "formats/bitplane.hpp"
#include "formats/int_group.hpp"
#include "formats/tritplane.hpp"
#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/plane_layout.hpp"

namespace planeq::cuda {

namespace {

template <class T>
void* to_device(const std::vector<T>& v, size_t& bytes) {
    bytes = v.size() * sizeof(T);
    void* d = nullptr;
    PLANEQ_CUDA_CHECK(cudaMalloc(&d, bytes));
    PLANEQ_CUDA_CHECK(cudaMemcpy(d, v.data(), bytes, cudaMemcpyHostToDevice));
    return d;
}

// The batch-1 bandwidth-first layout (gpu_weight.hpp: bw_codes, bw_coefs; gemv_bw.cu reads it). `v`: the 2-bit
// codes R×C in natural order; `rec(r, j, p)`: coefficient record p (of nrec, each rb bytes) of (row r, group j).
template <class Rec>
void upload_bw(GpuWeight& w, const std::vector<uint8_t>& v, int nrec, int rb, Rec&& rec) {
    const int64_t R = w.rows, C = w.cols, rbs = (R + 31) / 32, kcs = w.supers * 4, G = C / w.group;
    const int gpi = kSuperCols / w.group, lb = gpi * rb;  // records a lane loads per 256 columns, bytes
    std::vector<uint32_t> codes(size_t(rbs * kcs * 32 * 4), 0u);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < rbs; ++b)
        for (int64_t kc = 0; kc < kcs; ++kc)
            for (int lane = 0; lane < 32; ++lane) {
                const int64_t r = b * 32 + lane;
                if (r >= R) continue;
                for (int wi = 0; wi < 4; ++wi) {
                    uint32_t word = 0;
                    for (int c = 0; c < 4; ++c)
                        for (int j = 0; j < 4; ++j) {
                            const int64_t col = kc * 64 + wi * 16 + 4 * c + j;
                            if (col < C) word |= uint32_t(v[size_t(r * C + col)] & 3u) << (8 * j + 2 * c);
                        }
                    codes[size_t(((b * kcs + kc) * 32 + lane) * 4 + wi)] = word;
                }
            }
    std::vector<uint8_t> cf(size_t(rbs * w.supers * nrec * 32 * lb), 0);
    for (int64_t b = 0; b < rbs; ++b)
        for (int64_t it = 0; it < w.supers; ++it)
            for (int p = 0; p < nrec; ++p)
                for (int lane = 0; lane < 32; ++lane)
                    for (int gs = 0; gs < gpi; ++gs) {
                        const int64_t r = b * 32 + lane, j = it * gpi + gs;
                        if (r < R && j < G)
                            rec(r, j, p, cf.data() + (((b * w.supers + it) * nrec + p) * 32 + lane) * lb + gs * rb);
                    }
    w.bw_codes = to_device(codes, w.bw_code_bytes);
    w.bw_coefs = to_device(cf, w.bw_coef_bytes);
}

}  // namespace

GpuWeight::~GpuWeight() {
    for (void* p : planes) cudaFree(p);
    cudaFree(bw_codes);
    cudaFree(bw_coefs);
    cudaFree(coefs);
    cudaFree(bf16);
}
void GpuWeightDeleter::operator()(GpuWeight* w) const { delete w; }

int64_t rows(const GpuWeight& w) { return w.rows; }
int64_t cols(const GpuWeight& w) { return w.cols; }
std::string describe(const GpuWeight& w) { return w.desc; }
size_t device_bytes(const GpuWeight& w) {
    if (w.dense) return size_t(w.rows * w.cols) * 2;
    size_t b = w.coef_bytes;
    for (size_t p : w.plane_bytes) b += p;
    return b;
}

GpuWeightPtr upload(const PackedWeight& pw) {
    if (!pw.format) fail("cuda upload: weight without a format");
    const std::string_view name = pw.format->name;
    const int64_t R = pw.rows, C = pw.cols;
    GpuWeightPtr w(new GpuWeight);
    w->rows = R, w->cols = C;
    if (name == "bf16" || name == "f32" || name == "f16") {
        if (C % 8 != 0) fail("cuda upload: dense weights need a multiple of 8 columns (got " + std::to_string(C) + ")");
        w->dense = true;
        const WeightPart& part = pw.part("weight");
        PLANEQ_CUDA_CHECK(cudaMalloc(&w->bf16, size_t(R * C) * 2));
        if (name == "bf16") {
            PLANEQ_CUDA_CHECK(cudaMemcpy(w->bf16, part.data, size_t(R * C) * 2, cudaMemcpyHostToDevice));
        } else {  // f32 / f16 are rounded to bf16 (one rounding, round-to-nearest-even): the dense GPU kernels are bf16
            std::vector<uint16_t> b(size_t(R * C));
            const bool f32 = name == "f32";
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < R * C; ++i)
                b[size_t(i)] = f32_to_bf16(f32 ? part.as<float>()[i] : f16_to_f32(part.as<uint16_t>()[i]));
            PLANEQ_CUDA_CHECK(cudaMemcpy(w->bf16, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
        }
        w->desc = name == "bf16" ? "bf16" : std::string(name) + " (as bf16)";
        return w;
    }
    const FormatParams& p = pw.params;
    const int g = p.group;
    if (g != 32 && g != 64 && g != 128 && g != 256) fail("cuda upload: group must be 32, 64, 128 or 256");
    w->group = g;
    w->tiles = (R + kTileRows - 1) / kTileRows;
    w->supers = (C + kSuperCols - 1) / kSuperCols;
    w->groups_pad = w->supers * kSuperCols / g;
    const int64_t G = C / g;
    std::vector<std::vector<uint8_t>> planes;  // codes per plane, R×C
    int cb = 0;
    const int gs_per_super = kSuperCols / g;
    int block = 0;
    std::vector<uint8_t> coef;  // [tiles][supers][8][block] (gpu_weight.hpp: coef_block_bytes)
    auto coef_at = [&](int64_t r, int64_t j) {
        const int64_t T = r / kTileRows, rr = r % kTileRows, S = j / gs_per_super, gs = j % gs_per_super;
        return coef.data() + ((T * w->supers + S) * 8 + rr % 8) * block + (gs * 2 + rr / 8) * cb;
    };
    auto alloc_coefs = [&](int fmt) {
        w->fmt = fmt;
        cb = plane_coef_bytes(fmt);
        block = coef_block_bytes(fmt, gs_per_super);
        coef.assign(size_t(w->tiles * w->supers * 8 * block), 0);
    };

    if (name == "int") {
        if (p.g_idx) fail("cuda upload: int weights with g_idx (act-order) are not supported on the GPU yet; "
                          "requantize without --act-order or use the CPU");
        alloc_coefs(p.bits == 2 ? kInt2 : p.bits == 3 ? kInt3 : kInt4);
        std::vector<uint8_t> codes = unpack_int_group_codes(pw);
        const std::vector<uint8_t> zeros = unpack_int_group_zeros(pw);
        const uint16_t* scales = pw.part("scales").as<uint16_t>();
        if (p.bits == 3) {  // q = lo + 4·hi: a 2-bit plane and a 1-bit plane (coefficient 4s)
            std::vector<uint8_t> hi(codes.size());
            for (size_t i = 0; i < codes.size(); ++i) hi[i] = codes[i] >> 2, codes[i] &= 3;
            planes.push_back(std::move(codes));
            planes.push_back(std::move(hi));
        } else {
            planes.push_back(std::move(codes));
            if (p.bits == 2)
                upload_bw(*w, planes[0], 1, 4, [&](int64_t r, int64_t j, int, uint8_t* d) {
                    const uint32_t v = uint32_t(scales[r * G + j]) | (uint32_t(zeros[size_t(r * G + j)]) << 16);
                    std::memcpy(d, &v, 4);
                });
        }
        for (int64_t r = 0; r < R; ++r)
            for (int64_t j = 0; j < G; ++j) {
                const uint32_t v = uint32_t(scales[r * G + j]) | (uint32_t(zeros[size_t(r * G + j)]) << 16);
                std::memcpy(coef_at(r, j), &v, 4);
            }
        w->desc = "int b" + std::to_string(p.bits) + " g" + std::to_string(g) + (p.sym ? " sym" : " asym");
    } else if (name == "bitplane") {
        const int k = p.bits;
        alloc_coefs(k == 2 ? kBit2 : k == 3 ? kBit3 : kBit4);
        const std::vector<uint8_t> codes = unpack_bitplane_codes(pw);
        const std::vector<uint16_t> cf = bitplane_coefs(pw);  // [R][G][k+1], index 0 = c_0
        for (int m = 0; m < k; ++m) {
            std::vector<uint8_t> pl(codes.size());
            for (size_t i = 0; i < codes.size(); ++i) pl[i] = (codes[i] >> m) & 1;
            planes.push_back(std::move(pl));
        }
        if (k == 2)  // v = b1 + 2·b2 is the stored code; records c0, c1, c2 as three bf16 planes
            upload_bw(*w, codes, 3, 2, [&](int64_t r, int64_t j, int p, uint8_t* d) {
                std::memcpy(d, cf.data() + (r * G + j) * 3 + p, 2);
            });
        for (int64_t r = 0; r < R; ++r)
            for (int64_t j = 0; j < G; ++j) std::memcpy(coef_at(r, j), cf.data() + (r * G + j) * (k + 1), size_t(2 * (k + 1)));
        w->desc = "bitplane k" + std::to_string(k) + " g" + std::to_string(g);
    } else if (name == "tritplane") {
        alloc_coefs(kTrit);
        std::vector<int8_t> t1(size_t(R * C)), t2(size_t(R * C));
        unpack_tritplane(pw, t1.data(), t2.data());
        for (const auto* t : {&t1, &t2}) {  // v = t + 1 ∈ {0, 1, 2}; the bias −(α1 + α2) removes the + 1
            std::vector<uint8_t> pl(t->size());
            for (size_t i = 0; i < pl.size(); ++i) pl[i] = uint8_t((*t)[i] + 1);
            planes.push_back(std::move(pl));
        }
        const uint16_t* sc = pw.part("scales").as<uint16_t>();  // [R][2G]: (α1, α2) per group
        for (int64_t r = 0; r < R; ++r)
            for (int64_t j = 0; j < G; ++j) {
                const uint32_t v = uint32_t(sc[r * 2 * G + 2 * j]) | (uint32_t(sc[r * 2 * G + 2 * j + 1]) << 16);
                std::memcpy(coef_at(r, j), &v, 4);
            }
        w->desc = "tritplane g" + std::to_string(g);
    } else {
        fail("cuda upload: format '" + std::string(name) + "' has no GPU kernel (supported: bf16, int, bitplane, tritplane)");
    }
    for (size_t i = 0; i < planes.size(); ++i) {
        const std::vector<uint32_t> packed = pack_plane(planes[i], R, C, plane_bits(w->fmt, int(i)), w->tiles, w->supers);
        w->planes[i] = to_device(packed, w->plane_bytes[i]);
    }
    w->coefs = to_device(coef, w->coef_bytes);
    return w;
}

GpuWeightPtr clone(const GpuWeight& src) {
    GpuWeightPtr w(new GpuWeight);
    w->dense = src.dense, w->rows = src.rows, w->cols = src.cols, w->fmt = src.fmt, w->group = src.group;
    w->tiles = src.tiles, w->supers = src.supers, w->groups_pad = src.groups_pad, w->desc = src.desc;
    auto copy = [](const void* from, size_t bytes) {
        void* d = nullptr;
        if (!from || bytes == 0) return d;
        PLANEQ_CUDA_CHECK(cudaMalloc(&d, bytes));
        PLANEQ_CUDA_CHECK(cudaMemcpy(d, from, bytes, cudaMemcpyDeviceToDevice));
        return d;
    };
    for (int i = 0; i < 4; ++i) w->planes[i] = copy(src.planes[i], w->plane_bytes[i] = src.plane_bytes[i]);
    w->coefs = copy(src.coefs, w->coef_bytes = src.coef_bytes);
    w->bw_codes = copy(src.bw_codes, w->bw_code_bytes = src.bw_code_bytes);
    w->bw_coefs = copy(src.bw_coefs, w->bw_coef_bytes = src.bw_coef_bytes);
    if (src.dense) w->bf16 = copy(src.bf16, size_t(src.rows * src.cols) * 2);
    return w;
}

}  // namespace planeq::cuda
