// bf16 and IEEE fp16 <-> f32 conversions. Scalar and exact (round-to-nearest-even when narrowing);
// the SIMD kernels have their own vector versions.
#pragma once

#include <cstdint>
#include <cstring>

namespace planeq {

inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
    return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do { ++e; mant <<= 1; } while (!(mant & 0x400u));
            u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | mant << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | mant << 13;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;       // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00u;      // overflow (incl. inf) after rounding
    if (a < 0x38800000u) {                            // result is subnormal or zero
        if (a < 0x33000000u) return sign;             // < half of the smallest subnormal
        const uint32_t shift = 126 - (a >> 23);       // 14..24
        uint32_t mant = (a & 0x7fffffu) | 0x800000u;
        uint32_t half = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
        return sign | uint16_t(half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);       // round to nearest even at bit 13
    return sign | uint16_t(((r >> 13) - ((127 - 15) << 10)) & 0x7fffu);
}

// Round a float to the nearest value representable in fp16 / bf16 (used where a parameter is
// stored narrowed and the method must see exactly the stored value).
inline float round_to_f16(float f) { return f16_to_f32(f32_to_f16(f)); }
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

}  // namespace planeq
