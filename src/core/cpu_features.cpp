#include "core/cpu_features.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace planeq {

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = [] {
        CpuFeatures c;
        __builtin_cpu_init();
        c.avx2 = __builtin_cpu_supports("avx2");
        c.fma = __builtin_cpu_supports("fma");
        c.f16c = __builtin_cpu_supports("f16c");
        c.avx512f = __builtin_cpu_supports("avx512f");
        c.avx512bw = __builtin_cpu_supports("avx512bw");
        c.avx512vl = __builtin_cpu_supports("avx512vl");
        c.avx512dq = __builtin_cpu_supports("avx512dq");
        c.avx512vnni = __builtin_cpu_supports("avx512vnni");
        c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
        c.avx512vpopcntdq = __builtin_cpu_supports("avx512vpopcntdq");
        c.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
        return c;
    }();
    return f;
}

namespace {

SimdLevel hardware_level() {
    const CpuFeatures& c = cpu_features();
    // Our AVX-512 kernels use F/BW/VL/DQ/VNNI/BF16/VPOPCNTDQ/VBMI together (Zen 4+, Ice Lake+ server).
    if (c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq && c.avx512vnni && c.avx512bf16 && c.avx512vpopcntdq &&
        c.avx512vbmi && c.fma && c.f16c)
        return SimdLevel::Avx512;
    if (c.avx2 && c.fma && c.f16c) return SimdLevel::Avx2;
    return SimdLevel::Scalar;
}

SimdLevel initial_level() {
    SimdLevel level = hardware_level();
    if (const char* env = std::getenv("PLANEQ_SIMD")) {
        SimdLevel want = level;
        if (!std::strcmp(env, "scalar")) want = SimdLevel::Scalar;
        else if (!std::strcmp(env, "avx2")) want = SimdLevel::Avx2;
        else if (!std::strcmp(env, "avx512")) want = SimdLevel::Avx512;
        if (int(want) < int(level)) level = want;
    }
    return level;
}

std::atomic<int>& current_level() {
    static std::atomic<int> level{int(initial_level())};
    return level;
}

}  // namespace

SimdLevel simd_level() { return SimdLevel(current_level().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) {
    const SimdLevel hw = hardware_level();
    current_level().store(int(int(level) < int(hw) ? level : hw));
}

const char* simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::Scalar: return "scalar";
        case SimdLevel::Avx2: return "avx2";
        case SimdLevel::Avx512: return "avx512";
    }
    return "?";
}

}  // namespace planeq
