// Internal to src/kernels/cuda: kernel launches with programmatic dependent launch (PDL), and the device
// side of it. Why: a batch-1 token is ~257 small kernels; on Hopper a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while its predecessor's last blocks still run
// (also inside a captured graph), so it can stream its weights (which no earlier kernel writes) before
// griddepcontrol.wait, and the launch gap and the ramp-up overlap the predecessor's tail.
// Contract for every kernel launched here: call pdl_wait() before reading anything an earlier kernel wrote
// and before writing anything an earlier kernel may still read (outputs, activation buffers). Without the
// attribute (PDL off, or the legacy default stream) both device calls are no-ops.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "kernels/cuda/cuda_gemv.hpp"
#include "kernels/cuda/gpu_weight.hpp"

namespace planeq::cuda {

// Lets the next kernel in the stream launch now (its blocks are placed as ours leave); ours keep running.
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
// Waits until the previous kernel has completed and its writes are visible.
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Asks L2 for `bytes` from `base` (128-byte lines, the block's threads striding): the whole tile of weights is
// requested at once instead of one superchunk ahead per warp, so more bytes are in flight per SM.
__device__ __forceinline__ void prefetch_l2_block(const void* base, long long bytes) {
    const char* p = static_cast<const char*>(base);
    for (long long o = (long long)threadIdx.x * 128; o < bytes; o += (long long)blockDim.x * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
}

// `cluster` > 1: thread-block clusters of that many consecutive blocks along x (grid.x a multiple of it).
template <class... P, class... A>
void launch_pdl_cluster(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, int cluster, A&&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = s;
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (s != nullptr && decode_options().pdl) {  // the legacy stream: plain launches
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n++].val.clusterDim = {unsigned(cluster), 1, 1};
    }
    cfg.attrs = attr, cfg.numAttrs = n;
    PLANEQ_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...));
}

// The current device's SM count (asked once): the launch-shape choices of the GEMV and GEMM kernels.
inline int sm_count() {
    static const int sms = [] {
        int dev = 0, m = 0;
        PLANEQ_CUDA_CHECK(cudaGetDevice(&dev));
        PLANEQ_CUDA_CHECK(cudaDeviceGetAttribute(&m, cudaDevAttrMultiProcessorCount, dev));
        return m;
    }();
    return sms;
}

template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
    launch_pdl_cluster(kernel, grid, block, smem, s, 1, std::forward<A>(args)...);
}

}  // namespace planeq::cuda
