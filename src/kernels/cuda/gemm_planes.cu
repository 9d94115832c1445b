// The plane GEMM (prefill): y[tokens × rows] = x[tokens × cols] · Ŵᵀ for many tokens, on Hopper's warpgroup
// MMA (wgmma, sm_90a), with the weights dequantized in registers from the same GPU layout the decode GEMV
// reads (no second copy of the weights).
//
// The problem is computed transposed, D[rows × tokens] = Ŵ · xᵀ, so that the quantized operand is wgmma's
// A, which may come from registers: the plane layout already stores each lane's codes in m16n8k16 A-fragment
// order, and that is the register layout of wgmma's A for the warp's 16 rows. Each consumer thread loads
// its codes and coefficients with plain loads (a k-block ahead), decodes them to fp16 ŵ (exact codes by the
// exponent trick, then the format's coefficients by HSUB2/HMUL2/HFMA2: ~2–3 instructions per weight), and
// issues wgmma.m64n128k16 with B = 128 tokens × 16 columns of fp16 activations from shared memory.
//
// Activations: prepare_prefill converts x (f32) to fp16 once per GEMM input, already in the shared-memory
// image wgmma wants (K-major, 128-byte swizzle: 64 columns × 128 tokens = 16 KB per k-block and token tile,
// contiguous), so a producer thread fills a pipeline stage with one bulk copy (cp.async.bulk completing on
// an mbarrier): no tensor map, no driver API.
//
// CTA: two warpgroups (8 warps: 2 per SM sub-partition, so up to 255 registers a thread; a ninth, producer
// warp would put 3 warps on one sub-partition's 16K registers and cap every thread at 168, which spills);
// thread 0 also issues the bulk copies, kStages − 3 k-blocks ahead. Each consumer warpgroup owns 64·RT
// weight rows × BN tokens (RT m64 tiles of wgmma.m64nBNk16, RT·BN/2 fp32 accumulators per thread); CTA tiles
// 128 × 256 (the default when it fills the waves), 256 × 128 and 128 × 128.
// The two consumers share every activation stage. Accuracy: fp16 activations and fp16 ŵ (one rounding
// each), fp32 accumulation: ~3e-4 relative on random data (tests: ≤ 1e-3).
#include <cuda_fp16.h>

#include <cstdlib>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mbarrier.cuh"
#include "kernels/cuda/plane_decode.cuh"

namespace planeq::cuda {

struct PrefillBuffer {
    void* x16 = nullptr;  // [cols_pad / 64 k-blocks][tokens_pad][128 B, swizzled]
    int64_t cap_bytes = 0;
    int64_t cols = 0, cols_pad = 0;
    int tokens = 0, tokens_pad = 0;
    ~PrefillBuffer() { cudaFree(x16); }
};
void PrefillBufferDeleter::operator()(PrefillBuffer* p) const { delete p; }

namespace {

constexpr int kBK = 64;                     // columns per pipeline stage: one 128-byte swizzle row of fp16
constexpr int kPadTokens = 256;             // token padding of the prefill buffer (the largest token tile)
// Per token tile BN (the wgmma N, 128 or 256): pipeline stages of BN × 64 fp16 (16 or 32 KB).
template <int BN>
constexpr int gemm_stages() { return BN == 256 ? 6 : 8; }
template <int BN>
constexpr int gemm_smem() { return gemm_stages<BN>() * BN * kBK * 2 + 1024 + 16 * gemm_stages<BN>(); }
constexpr int kGemmThreads = 256;           // 2 consumer warpgroups; thread 0 also issues the stage copies

__device__ __forceinline__ uint32_t h2_mul(uint32_t a, uint32_t b) {
    half2 r = __hmul2(*reinterpret_cast<half2*>(&a), *reinterpret_cast<half2*>(&b));
    return *reinterpret_cast<uint32_t*>(&r);
}
__device__ __forceinline__ uint32_t h2_fma(uint32_t a, uint32_t b, uint32_t c) {
    half2 r = __hfma2(*reinterpret_cast<half2*>(&a), *reinterpret_cast<half2*>(&b), *reinterpret_cast<half2*>(&c));
    return *reinterpret_cast<uint32_t*>(&r);
}
__device__ __forceinline__ uint32_t h2_dup_f32(float f) {
    half2 r = __float2half2_rn(f);
    return *reinterpret_cast<uint32_t*>(&r);
}

// ---- wgmma (PTX); mbarriers and bulk copies: mbarrier.cuh ----
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads/writes across the asynchronous MMAs.
template <int N>
__device__ __forceinline__ void fence_acc(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes apart.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
    return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}
// wgmma m64n128k16, fp16 A from registers (the warp's m16n8k16 A fragment), fp16 B from shared memory by descriptor,
// fp32 accumulators d (the m16n8 C fragment repeated over the 16 n8 blocks). scale-d = 1: d += A·B.
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}
__device__ __forceinline__ void wgmma_rs(float (&d)[128], const uint32_t (&a)[4], uint64_t desc) {  // m64n256k16
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, {%128, %129, %130, %131}, %132, p, 1, 1, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(1));
}

struct GemmProblem {
    const uint8_t* planes[4];
    const uint8_t* coefs;
    float* y;
    int rows, tiles, block_begin;
};

struct GemmLaunch {
    GemmProblem prob[3];
    int nprob, supers, kblocks, coef_block, group_shift;  // group_shift = log2(group)
    int tokens, tokens_pad, tok_tiles;
    uint32_t expo[11];
    const uint8_t* x16;
};

// Half-word i of the lane's coefficient words (compile-time index after unrolling).
template <int N>
__device__ __forceinline__ uint32_t coef_hw(const uint32_t (&c)[N], int i) {
    return (i & 1) ? c[i >> 1] >> 16 : c[i >> 1] & 0xffffu;
}

// ŵ for fragment register r (row g + 8·(r & 1), columns 2t(+1) + 8·(r >> 1)) of k-step ks of the k-block, as an
// fp16 pair. w: the k-block's code words of every plane (plane p's b_p words in turn); c: its coefficients.
template <int F, int GK, int NW, int NC>
__device__ __forceinline__ uint32_t dequant(const uint32_t (&w)[NW], const uint32_t (&c)[NC], int ks, int r,
                                            const uint32_t* expo) {
    constexpr int P = plane_count(F);
    constexpr int CH = plane_coef_bytes(F) / 2;  // coefficient half-words per (row, group)
    const int h = r & 1, gl = GK == 2 ? ks >> 1 : 0;
    const int hb = (gl * 2 + h) * CH;
    uint32_t code[P];
    int off = 0;
#pragma unroll
    for (int p = 0; p < P; ++p) {
        const int b = plane_bits(F, p), per_word = 4 / b;
        const uint32_t word = w[off + ks / per_word];
        const uint32_t wsh = word >> (b == 4 ? 8 : 10);
        const int pos = b * ((ks % per_word) * 4 + r);
        code[p] = b == 1 ? decode_pair<1>(word, wsh, pos, expo) : b == 2 ? decode_pair<2>(word, wsh, pos, expo)
                                                                         : decode_pair<4>(word, wsh, pos, expo);
        off += b;
    }
    if constexpr (F == kInt2 || F == kInt3 || F == kInt4) {  // (q − z) · s: the subtraction is exact
        uint32_t q = code[0];
        if constexpr (F == kInt3) q = h2_fma(code[1], 0x44004400u, q);  // lo + 4·hi
        const half z = __ushort2half_rn(uint16_t(coef_hw(c, hb + 1)));
        const uint32_t z2 = uint32_t(__half_as_ushort(z)) * 0x10001u;
        return h2_mul(h2_sub(q, z2), coef_hw(c, hb) * 0x10001u);
    } else if constexpr (F == kTrit) {  // α1·t1 + α2·t2, t = code − 1 exact
        const uint32_t t1 = h2_sub(code[0], 0x3C003C00u), t2 = h2_sub(code[1], 0x3C003C00u);
        return h2_fma(t2, coef_hw(c, hb + 1) * 0x10001u, h2_mul(t1, coef_hw(c, hb) * 0x10001u));
    } else {  // bitplane: c0 + Σ c_m·b_m (bf16 coefficients → fp16)
        uint32_t v = h2_dup_f32(__uint_as_float(coef_hw(c, hb) << 16));
#pragma unroll
        for (int m = 0; m < P; ++m) v = h2_fma(code[m], h2_dup_f32(__uint_as_float(coef_hw(c, hb + 1 + m) << 16)), v);
        return v;
    }
}

template <int F>
constexpr int plane_words_per_kblock() {  // Σ_p bits_p: a b-bit plane has b words per lane per 64 columns
    int s = 0;
    for (int p = 0; p < plane_count(F); ++p) s += plane_bits(F, p);
    return s;
}

template <int F, int RT, int GK, int BN>
__global__ void __launch_bounds__(kGemmThreads, 1) plane_gemm_kernel(const __grid_constant__ GemmLaunch L) {
    constexpr int kBN = BN, kStages = gemm_stages<BN>(), kStageBytes = BN * kBK * 2;
    constexpr int kAhead = kStages - 3;  // k-blocks whose copies are in flight ahead of the consumers
    constexpr int P = plane_count(F);
    constexpr int NW = plane_words_per_kblock<F>();
    constexpr int NC = GK * plane_coef_bytes(F) / 2;  // coefficient words per k-block (GK groups × 2 rows)
    extern __shared__ uint8_t smem_raw[];
    const uint32_t sbase = (uint32_t(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;
    const uint32_t bar_full = sbase + kStages * kStageBytes, bar_empty = bar_full + 8 * kStages;

    int q = 0;
#pragma unroll
    for (int i = 1; i < 3; ++i)
        if (i < L.nprob && int(blockIdx.x) >= L.prob[i].block_begin) q = i;
    const GemmProblem& pr = L.prob[q];
    const int local = int(blockIdx.x) - pr.block_begin;
    const int tt = local % L.tok_tiles, rtile = local / L.tok_tiles;

    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) mbar_init(bar_full + 8 * s, 1), mbar_init(bar_empty + 8 * s, 256);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
    // Thread 0 refills the stage of k-block kb − 3 with k-block kb + kAhead at the top of iteration kb: both
    // warpgroups released it (after its MMAs completed, at iteration kb − 2), so the wait rarely stalls.
    const uint8_t* xsrc = L.x16 + size_t(tt) * kBN * 128;
    auto produce = [&](int nk) {
        const int ns = nk % kStages;
        if (nk >= kStages) mbar_wait(bar_empty + 8 * ns, ((nk / kStages) - 1) & 1);
        mbar_expect_tx(bar_full + 8 * ns, kStageBytes);
        bulk_copy(sbase + ns * kStageBytes, xsrc + size_t(nk) * L.tokens_pad * 128, kStageBytes, bar_full + 8 * ns);
    };
    if (threadIdx.x == 0)
        for (int nk = 0; nk < kAhead && nk < L.kblocks; ++nk) produce(nk);

    const int cw = threadIdx.x >> 7, wi = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int row0 = rtile * 128 * RT + cw * 64 * RT;  // this warpgroup's first row
    const uint8_t* pbase[RT][P];
    const uint8_t* cbase[RT];
#pragma unroll
    for (int rt = 0; rt < RT; ++rt) {
        const int T = min((row0 + rt * 64) / 16 + wi, pr.tiles - 1);  // rows past the weight: load a valid tile
#pragma unroll
        for (int p = 0; p < P; ++p)
            pbase[rt][p] = pr.planes[p] + (size_t(T) * L.supers * 32 + lane) * 16 * plane_bits(F, p);
        cbase[rt] = pr.coefs + (size_t(T) * L.supers * 8 + g) * L.coef_block;
    }
    auto load = [&](int kb, uint32_t (&w)[RT][NW], uint32_t (&c)[RT][NC]) {
        const int S = kb >> 2, j = kb & 3;
        const int gs = GK == 2 ? 2 * j : (j * 64) >> L.group_shift;
#pragma unroll
        for (int rt = 0; rt < RT; ++rt) {
            int off = 0;
#pragma unroll
            for (int p = 0; p < P; ++p) {
                const int b = plane_bits(F, p);
                const uint32_t* src = reinterpret_cast<const uint32_t*>(pbase[rt][p] + size_t(S) * 32 * 16 * b + j * 4 * b);
#pragma unroll
                for (int v = 0; v < b; ++v) w[rt][off + v] = __ldg(src + v);
                off += b;
            }
            const uint32_t* cs = reinterpret_cast<const uint32_t*>(cbase[rt] + size_t(S) * 8 * L.coef_block + gs * plane_coef_bytes(F) * 2);
#pragma unroll
            for (int i = 0; i < NC; ++i) c[rt][i] = __ldg(cs + i);
        }
    };

    float acc[RT][BN / 2];
#pragma unroll
    for (int rt = 0; rt < RT; ++rt)
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc[rt][i] = 0.0f;
    uint32_t wc[RT][NW], cc[RT][NC], wn[RT][NW], cn[RT][NC];
    load(0, wc, cc);
    // One k-block of MMAs stays in flight while the next is decoded: its A fragments live in the other buffer
    // (the loop is unrolled by two so that the buffer index is a compile-time constant).
    uint32_t abuf[2][4][RT][4];
    auto step = [&](int kb, uint32_t (&a)[4][RT][4]) {
        const int s = kb % kStages;
        if (threadIdx.x == 0 && kb + kAhead < L.kblocks) produce(kb + kAhead);
        if (kb + 1 < L.kblocks) load(kb + 1, wn, cn);
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
#pragma unroll
            for (int rt = 0; rt < RT; ++rt)
#pragma unroll
                for (int r = 0; r < 4; ++r) a[ks][rt][r] = dequant<F, GK>(wc[rt], cc[rt], ks, r, L.expo);
        mbar_wait(bar_full + 8 * s, (kb / kStages) & 1);
        const uint64_t desc = smem_desc(sbase + s * kStageBytes);
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
#pragma unroll
            for (int rt = 0; rt < RT; ++rt) wgmma_rs(acc[rt], a[ks][rt], desc + 2 * ks);  // +32 bytes per k-step
        wgmma_commit();
        wgmma_wait<1>();  // k-block kb − 1 is done: release its stage
        if (kb > 0) mbar_arrive(bar_empty + 8 * ((kb - 1) % kStages));
#pragma unroll
        for (int rt = 0; rt < RT; ++rt) {
#pragma unroll
            for (int i = 0; i < NW; ++i) wc[rt][i] = wn[rt][i];
#pragma unroll
            for (int i = 0; i < NC; ++i) cc[rt][i] = cn[rt][i];
        }
    };
    for (int kb = 0; kb < L.kblocks; kb += 2) {  // kblocks = 4 · superchunks: even
        step(kb, abuf[0]);
        step(kb + 1, abuf[1]);
    }
    wgmma_wait<0>();
#pragma unroll
    for (int rt = 0; rt < RT; ++rt) fence_acc(acc[rt]);
    // Epilogue: accumulator i holds row g + 8·((i >> 1) & 1), token 8·(i >> 2) + 2t + (i & 1) of the warp's 16 × 128.
#pragma unroll
    for (int rt = 0; rt < RT; ++rt) {
        const int rbase = row0 + rt * 64 + wi * 16 + g;
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) {
            const int row = rbase + 8 * ((i >> 1) & 1);
            const int tok = tt * kBN + 8 * (i >> 2) + 2 * t + (i & 1);
            if (row < pr.rows && tok < L.tokens) pr.y[int64_t(tok) * pr.rows + row] = acc[rt][i];
        }
    }
}

// x (or silu(x)·up), optionally divided by its RMS, → fp16 in the swizzled k-block image (one block per token).
__global__ void prep_prefill_kernel(const float* __restrict__ x, const float* __restrict__ up, int cols, int cols_pad,
                                    int tokens, int tokens_pad, bool rms, uint8_t* __restrict__ out) {
    const int n = blockIdx.x;
    auto at = [&](int c) {
        const float a = x[int64_t(n) * cols + c];
        return up ? a / (1.0f + __expf(-a)) * up[int64_t(n) * cols + c] : a;
    };
    float scale = 1.0f;
    if (rms && n < tokens) {
        float s2 = 0;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float a = at(c);
            s2 += a * a;
        }
        __shared__ float red[32];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s2;
        __syncthreads();
        if (threadIdx.x < 32) {
            s2 = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s2 += __shfl_xor_sync(0xffffffffu, s2, o);
            if (threadIdx.x == 0) red[0] = rsqrtf(s2 / float(cols) + 1e-5f);
        }
        __syncthreads();
        scale = red[0];
    }
    for (int c8 = threadIdx.x; c8 < cols_pad / 8; c8 += blockDim.x) {
        const int c0 = c8 * 8;
        uint32_t v[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const float a = n < tokens && c0 + 2 * i < cols ? at(c0 + 2 * i) * scale : 0.0f;
            const float b = n < tokens && c0 + 2 * i + 1 < cols ? at(c0 + 2 * i + 1) * scale : 0.0f;
            const half2 h = __floats2half2_rn(a, b);
            v[i] = *reinterpret_cast<const uint32_t*>(&h);
        }
        const int kb = c0 / 64, ch = (c0 % 64) / 8;
        *reinterpret_cast<uint4*>(out + (int64_t(kb) * tokens_pad + n) * 128 + ((ch ^ (n & 7)) * 16)) = make_uint4(v[0], v[1], v[2], v[3]);
    }
}

template <int F, int RT, int GK, int BN>
void launch_gemm(const GemmLaunch& L0, cudaStream_t s) {
    static const bool opted_in = [] {
        PLANEQ_CUDA_CHECK(cudaFuncSetAttribute(plane_gemm_kernel<F, RT, GK, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, gemm_smem<BN>()));
        return true;
    }();
    (void)opted_in;
    GemmLaunch L = L0;
    L.tok_tiles = (L.tokens + BN - 1) / BN;
    int blocks = 0;
    for (int i = 0; i < L.nprob; ++i) {
        L.prob[i].block_begin = blocks;
        blocks += (L.prob[i].rows + 128 * RT - 1) / (128 * RT) * L.tok_tiles;
    }
    plane_gemm_kernel<F, RT, GK, BN><<<blocks, kGemmThreads, gemm_smem<BN>(), s>>>(L);
}

template <int F, int RT, int BN>
void launch_gemm_gk(const GemmLaunch& L, int group, cudaStream_t s) {
    if (group == 32) launch_gemm<F, RT, 2, BN>(L, s);
    else launch_gemm<F, RT, 1, BN>(L, s);
}

template <int RT, int BN>
void launch_gemm_fmt(int f, const GemmLaunch& L, int group, cudaStream_t s) {
    switch (f) {
        case kInt2: return launch_gemm_gk<kInt2, RT, BN>(L, group, s);
        case kInt3: return launch_gemm_gk<kInt3, RT, BN>(L, group, s);
        case kInt4: return launch_gemm_gk<kInt4, RT, BN>(L, group, s);
        case kBit2: return launch_gemm_gk<kBit2, RT, BN>(L, group, s);
        case kBit3: return launch_gemm_gk<kBit3, RT, BN>(L, group, s);
        case kBit4: return launch_gemm_gk<kBit4, RT, BN>(L, group, s);
        case kTrit: return launch_gemm_gk<kTrit, RT, BN>(L, group, s);
    }
    fail("cuda gemm: bad plane format id");
}

}  // namespace

PrefillBufferPtr make_prefill_buffer(int64_t max_tokens, int64_t max_cols) {
    PrefillBufferPtr b(new PrefillBuffer);
    const int64_t tp = (max_tokens + kPadTokens - 1) / kPadTokens * kPadTokens, cp = (max_cols + kSuperCols - 1) / kSuperCols * kSuperCols;
    b->cap_bytes = tp * cp * 2;
    PLANEQ_CUDA_CHECK(cudaMalloc(&b->x16, size_t(b->cap_bytes)));
    return b;
}

void prepare_prefill(PrefillBuffer& b, const float* x, const float* up, int64_t cols, int tokens, cudaStream_t s, bool rms_norm) {
    if (tokens < 1) fail("cuda prefill: tokens must be ≥ 1");
    const int64_t tp = (tokens + kPadTokens - 1) / kPadTokens * kPadTokens, cp = (cols + kSuperCols - 1) / kSuperCols * kSuperCols;
    if (tp * cp * 2 > b.cap_bytes) fail("cuda prefill: buffer too small for " + std::to_string(tokens) + " × " + std::to_string(cols));
    prep_prefill_kernel<<<int(tp), 256, 0, s>>>(x, up, int(cols), int(cp), tokens, int(tp), rms_norm, static_cast<uint8_t*>(b.x16));
    PLANEQ_CUDA_CHECK(cudaGetLastError());
    b.cols = cols, b.cols_pad = cp, b.tokens = tokens, b.tokens_pad = int(tp);
}

namespace {
int g_force_tile = -1;  // -1: not read yet; 0: automatic
}
void gemm_force_row_tile(int cfg) { g_force_tile = cfg >= 1 && cfg <= 3 ? cfg : 0; }

// CTA tile: 1 = 128 rows × 128 tokens, 2 = 256 × 128 (half the activation traffic per MMA), 3 = 128 × 256
// (half the decode work and register-A traffic per MMA). PLANEQ_GEMM_TILE=1|2|3 forces one (benchmarks).
int gemm_tile_config(const GpuWeight* const* w, int n, int tokens) {
    if (g_force_tile < 0) {
        const char* e = std::getenv("PLANEQ_GEMM_TILE");
        g_force_tile = e && e[0] >= '1' && e[0] <= '3' ? e[0] - '0' : 0;
    }
    if (g_force_tile) return g_force_tile;
    // Waves × work per CTA (in 128 × 128 units); ties go to the larger tiles, 128 × 256 first (measured
    // fastest at 2048 tokens: half the decode and register-A work per MMA).
    const int sms = sm_count();
    int64_t best = 0;
    int best_cfg = 3;
    for (int cfg : {3, 2, 1}) {
        const int rows_cta = cfg == 2 ? 256 : 128, toks_cta = cfg == 3 ? 256 : 128;
        const int64_t tok_tiles = (tokens + toks_cta - 1) / toks_cta;
        int64_t ctas = 0;
        for (int i = 0; i < n; ++i) ctas += (w[i]->rows + rows_cta - 1) / rows_cta * tok_tiles;
        const int64_t cost = (ctas + sms - 1) / sms * (cfg == 1 ? 1 : 2);
        if (cfg == 3 || cost < best) best = cost, best_cfg = cfg;
    }
    return best_cfg;
}

void gemm_multi(const GpuWeight* const* w, float* const* y, int n, const PrefillBuffer& b, cudaStream_t s) {
    if (n < 1 || n > 3) fail("cuda gemm_multi: 1 … 3 weights per launch");
    const GpuWeight& w0 = *w[0];
    if (w0.dense) fail("cuda gemm: bf16 weights run through cuBLAS (gemv_cublas_bf16), not the plane GEMM");
    if (b.cols_pad != w0.supers * kSuperCols || b.cols != w0.cols)
        fail("cuda gemm: the prefill buffer was prepared for another width");
    GemmLaunch L{};
    L.nprob = n, L.supers = int(w0.supers), L.kblocks = int(w0.supers * 4);
    L.coef_block = coef_block_bytes(w0.fmt, kSuperCols / w0.group);
    L.group_shift = w0.group == 32 ? 5 : w0.group == 64 ? 6 : w0.group == 128 ? 7 : 8;
    L.tokens = b.tokens, L.tokens_pad = b.tokens_pad;
    for (int p = 0; p < 11; ++p) L.expo[p] = (uint32_t(25 - p) << 10) * 0x10001u;
    L.x16 = static_cast<const uint8_t*>(b.x16);
    for (int i = 0; i < n; ++i) {
        const GpuWeight& wi = *w[i];
        if (wi.dense || wi.fmt != w0.fmt || wi.group != w0.group || wi.supers != w0.supers)
            fail("cuda gemm_multi: weights of one launch must share format, group and width");
        GemmProblem& p = L.prob[i];
        for (int k = 0; k < 4; ++k) p.planes[k] = static_cast<const uint8_t*>(wi.planes[k]);
        p.coefs = static_cast<const uint8_t*>(wi.coefs);
        p.y = y[i], p.rows = int(wi.rows), p.tiles = int(wi.tiles);
    }
    switch (gemm_tile_config(w, n, b.tokens)) {
        case 1: launch_gemm_fmt<1, 128>(w0.fmt, L, w0.group, s); break;
        case 3: launch_gemm_fmt<1, 256>(w0.fmt, L, w0.group, s); break;
        default: launch_gemm_fmt<2, 128>(w0.fmt, L, w0.group, s);
    }
    PLANEQ_CUDA_CHECK(cudaGetLastError());
}

void gemm(const GpuWeight& w, const PrefillBuffer& b, float* y, cudaStream_t s) {
    const GpuWeight* ws[1] = {&w};
    float* ys[1] = {y};
    gemm_multi(ws, ys, 1, b, s);
}

}  // namespace planeq::cuda
