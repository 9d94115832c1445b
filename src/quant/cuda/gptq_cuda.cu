// GPTQ on the device, the structure of quant/gptq.cpp: step 0 (factor_cuda.cu), group parameters of the
// static order from the original weights, the lazy-block loop (the within-block column loop in a kernel,
// one thread per row, the block's columns in shared memory; the trailing update by cuBLAS), and the output
// back in the original column order.
#include <algorithm>

#include "core/half.hpp"
#include "quant/cuda/quant_common.cuh"

namespace planeq::cuda {

namespace {

using namespace quant;

struct GptqArgs {
    float* Wt;           // [C][R] working copy (permuted)
    int64_t R, C, i1, i2;
    const float* U;      // [C][C] f32 (compensate only)
    const int64_t* perm;
    int g, bits;
    bool sym, refit, compensate, dynamic;  // refit: parameters at every group start (not static)
    float* scale;        // [G][R]
    uint8_t* zero;       // [G][R]
    uint8_t* codes;      // [C][R]
    float* q;            // [C][R]
    float* negerr;       // [B][R]: −e of the block
    double* loss;        // [R] accumulated
};

// The within-block column loop of quant/gptq.cpp for row r (rows are independent inside a block). The
// block's working columns live in the tile: shared memory [t − i1][lane] when they fit, else Wt itself.
__global__ void __launch_bounds__(kRowsPerBlock) gptq_block_kernel(GptqArgs a, bool shared_tile) {
    extern __shared__ float tile[];
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (r >= a.R) return;  // no barrier below: every thread touches only its own lane
    const int64_t R = a.R, nb = a.i2 - a.i1;
    float* w;
    int64_t ws;
    if (shared_tile) {
        w = tile + threadIdx.x, ws = blockDim.x;
        for (int64_t t = 0; t < nb; ++t) w[t * ws] = a.Wt[(a.i1 + t) * R + r];
    } else {
        w = a.Wt + a.i1 * R + r, ws = R;
    }
    const DGrid grid{a.bits, a.sym};
    double loss = 0;
    for (int64_t t = a.i1; t < a.i2; ++t) {
        const int64_t lt = t - a.i1;
        const int64_t p = (a.dynamic ? t / a.g : a.perm[t] / a.g) * R + r;
        if (a.refit && t % a.g == 0) {  // fit_group over the compensated working columns t … t + g − 1
            float lo = w[lt * ws], hi = lo;
            for (int64_t u = lt + 1; u < lt + a.g; ++u) {
                lo = dmin(lo, w[u * ws]);
                hi = dmax(hi, w[u * ws]);
            }
            grid.fit(lo, hi, a.scale[p], a.zero[p]);
        }
        const float s = a.scale[p];
        const uint8_t z = a.zero[p];
        const float d = a.compensate ? a.U[t * a.C + t] : 1.0f;
        const float wv = w[lt * ws];
        const uint8_t q = grid.code(wv, s, z);
        const float qhat = DGrid::value(q, s, z);
        a.codes[t * R + r] = q;
        a.q[t * R + r] = qhat;
        const float et = __fdiv_rn(__fsub_rn(wv, qhat), d);
        const float e = -et;
        a.negerr[lt * R + r] = e;
        loss += 0.5 * double(et) * double(et);
        if (!a.compensate) continue;
        const float* urow = a.U + t * a.C;
        for (int64_t j = t + 1; j < a.i2; ++j)  // W1[:, j] −= e · U[t, j]   (as wj[r] += (−e)·u)
            w[(j - a.i1) * ws] = __fadd_rn(w[(j - a.i1) * ws], __fmul_rn(e, urow[j]));
    }
    a.loss[r] += loss;
}

// Static order: every group's parameters from the un-permuted original weights (dead columns zero).
__global__ void static_params_kernel(const float* W, int64_t R, int64_t C, const char* dead, int g, int bits, bool sym, float* scale,
                                     uint8_t* zero) {
    const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, j = blockIdx.y;
    if (r >= R) return;
    const float* row = W + r * C + j * g;
    float lo = dead[j * g] ? 0.0f : row[0], hi = lo;
    for (int u = 1; u < g; ++u) {
        const float v = dead[j * g + u] ? 0.0f : row[u];
        lo = dmin(lo, v);
        hi = dmax(hi, v);
    }
    DGrid{bits, sym}.fit(lo, hi, scale[j * R + r], zero[j * R + r]);
}

}  // namespace

IntQuantResult gptq_quantize(const float* dW, int64_t R, int64_t C, const double* dH, const GptqOptions& opt) {
    if (opt.trace) fail("internal: the GPU GPTQ has no trace hook");
    if (opt.bits < 2 || opt.bits > 8) fail("bits must be between 2 and 8, got " + std::to_string(opt.bits));
    if (opt.group <= 0 || C % opt.group != 0)
        fail("group size " + std::to_string(opt.group) + " does not divide " + std::to_string(C) + " input columns");
    const bool need_h = opt.compensate || opt.order != ColumnOrder::None;
    if (need_h && !dH) fail("internal: this GPTQ configuration needs a Hessian");
    const int64_t g = opt.group, G = C / g;
    const int64_t B = opt.block > 0 ? opt.block : std::max<int64_t>(128, g);
    if (B % g != 0) fail("internal: GPTQ block must be a multiple of the group size");

    IntQuantResult res;
    res.rows = R;
    res.cols = C;
    PreparedLayer P = prepare_layer(dW, R, C, dH, g, opt.order, opt.compensate, opt.damp, false, res.log, "GPTQ");
    res.damp_used = P.damp_used;

    DeviceArray<float> scale(size_t(G * R)), q(size_t(C * R)), negerr(size_t(B * R));
    DeviceArray<uint8_t> zero(size_t(G * R)), codes(size_t(C * R));
    DeviceArray<double> loss{size_t(R)};
    QCK(cudaMemset(loss.data(), 0, size_t(R) * sizeof(double)));
    if (opt.order == ColumnOrder::Static) {
        DeviceArray<char> ddead{size_t(C)};
        ddead.upload(P.dead.data(), size_t(C));
        static_params_kernel<<<dim3(blocks_for(R, 128), unsigned(G)), 128>>>(dW, R, C, ddead.data(), int(g), opt.bits, opt.sym, scale.data(),
                                                                              zero.data());
        check_launch("static params");
    }
    const size_t max_tile = size_t(B) * kRowsPerBlock * sizeof(float);
    if (tile_fits(B)) QCK(cudaFuncSetAttribute(gptq_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(max_tile)));
    for (int64_t i1 = 0; i1 < C; i1 += B) {
        const int64_t i2 = std::min(C, i1 + B);
        GptqArgs a{P.Wt.data(), R, C, i1, i2, opt.compensate ? P.U.data() : nullptr, P.dperm.data(), int(g), opt.bits, opt.sym,
                   opt.order != ColumnOrder::Static, opt.compensate, opt.order == ColumnOrder::Dynamic, scale.data(), zero.data(),
                   codes.data(), q.data(), negerr.data(), loss.data()};
        const bool shared = tile_fits(i2 - i1);
        gptq_block_kernel<<<blocks_for(R, kRowsPerBlock), kRowsPerBlock, shared ? size_t(i2 - i1) * kRowsPerBlock * sizeof(float) : 0>>>(a, shared);
        check_launch("gptq block");
        // Lazy global update: W[:, i2:] −= Err1 · U[i1:i2, i2:].
        if (opt.compensate) trailing_update(P.Wt.data(), negerr.data(), P.U.data(), R, C, i1, i2);
    }
    const std::vector<double> row_loss = loss.download();
    for (double l : row_loss) res.loss += l;
    if (!opt.compensate) res.loss = 0.0;

    // Back to the original column order and row-major layout (as quant/gptq.cpp; the transpose on the device).
    res.codes = unpermute_download(codes, R, C, P.dperm.data());
    res.dequant = unpermute_download(q, R, C, P.dperm.data());
    const std::vector<uint8_t> zeros_t = zero.download();
    const std::vector<float> scales_t = scale.download();
    const std::vector<int64_t>& perm = P.perm;
    res.scales.resize(size_t(R * G));
    res.zeros.resize(size_t(R * G));
    for (int64_t j = 0; j < G; ++j)
        for (int64_t r = 0; r < R; ++r) {
            res.scales[size_t(r * G + j)] = f32_to_f16(scales_t[size_t(j * R + r)]);
            res.zeros[size_t(r * G + j)] = zeros_t[size_t(j * R + r)];
        }
    if (opt.order == ColumnOrder::Dynamic) {
        res.g_idx.resize(size_t(C));
        for (int64_t t = 0; t < C; ++t) res.g_idx[size_t(perm[size_t(t)])] = int32_t(t / g);
    }
    return res;
}

}  // namespace planeq::cuda
