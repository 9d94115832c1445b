// Software prefetch for the AVX-512 block GEMVs (int, bitplane, tritplane), each of which streams its blocks'
// bytes once, front to back. Every 64-byte line is prefetched twice: into L1 4 KB ahead and into L2 16 KB
// ahead. 4 KB is barely one DRAM latency at ~29 GB/s a thread, so the L1 prefetch alone often waited on DRAM;
// the far L2 prefetch has the line on chip by then (docs/formats.md, "Two prefetch distances"). One distance
// alone, L1 or L2, and prefetcht1 measured slower.
#pragma once

#include <xmmintrin.h>

#include <cstdint>

namespace planeq::cpu {

constexpr int64_t kBlockPrefetchL1Bytes = 4096;
constexpr int64_t kBlockPrefetchL2Bytes = 16384;

// Prefetches the line kBlockPrefetchL1Bytes after p into L1 and the one kBlockPrefetchL2Bytes after it into L2.
inline __attribute__((always_inline)) void prefetch_block_line(const uint8_t* p) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kBlockPrefetchL1Bytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(p + kBlockPrefetchL2Bytes), _MM_HINT_T2);
}

}  // namespace planeq::cpu
