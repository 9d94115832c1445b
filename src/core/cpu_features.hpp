// Run-time CPU feature detection. Kernels compiled for AVX-512 or AVX2 are only called when the
// processor has them. PLANEQ_SIMD=scalar|avx2|avx512 caps the level (tests use it to check every path).
#pragma once

namespace planeq {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512vnni = false, avx512bf16 = false, avx512vpopcntdq = false, avx512vbmi = false;
};

const CpuFeatures& cpu_features();
SimdLevel simd_level();                 // the best level the CPU supports, capped by PLANEQ_SIMD
void set_simd_level(SimdLevel level);   // tests: force a level (never above what the CPU has)
const char* simd_level_name(SimdLevel level);

}  // namespace planeq
