// The byte code of the Lut7 row-block variant (tritplane_kernels.hpp): the same five trits per byte as P5
// (1.6 bits per trit; the repack at load translates byte by byte), but assigned so that every digit is a
// 128-entry lookup of a one-instruction index — vpermi2b indexes by the low 7 bits of a byte:
//     digits 0, 1:  T[c]                    (bit 7 of the code does not matter to them)
//     digits 2, 3:  T[c >> 1]               (vpsrlw by 1; bit 0 does not matter)
//     digit 4:      T[(c + 1) >> 1]         (vpavgb with zero; codes 2i − 1, 2i, and 255, 0, share it)
// P5 cannot do this (its digits need all 8 bits), so the code was found by a search (simulated annealing
// over the assignments of the 243 patterns to the 256 bytes, 13 left unused) for one under which each
// digit is constant on the codes sharing its index. kTritLut7Code[n] is the byte of pattern
// n = Σ_k u_k·3^(4−k) (u_k = t_k + 1, digit 0 most significant, as P5's n); the tables are derived from
// it at compile time, and a static_assert checks that the code is one-to-one and every index unambiguous.
#pragma once

#include <cstdint>

namespace planeq::cpu {

inline constexpr uint8_t kTritLut7Code[243] = {
    165, 110, 142, 89, 44, 196, 242, 22, 193, 131, 217, 114, 32, 160, 14, 3, 37, 87, 238, 157, 68, 172, 188, 29, 65, 150, 215, 7, 174, 111, 183, 46, 88, 254, 140, 55, 177, 234, 216, 77, 106, 135, 58, 49, 205, 239, 247, 119, 240, 12, 220, 92, 186, 112, 253, 70, 245, 212, 45, 182, 5, 255, 54, 237, 109, 198, 117, 33, 161, 133, 59, 127, 118, 156, 246, 221, 173, 28, 151, 187, 84, 252, 164, 225, 1, 213, 124, 57, 50, 141, 210, 108, 236, 230, 185, 73, 227, 129, 36, 82, 97, 201, 203, 99, 13, 178, 75, 85, 6, 17, 24, 81, 0, 181, 209, 233, 51, 211, 130, 94, 134, 163, 35, 2, 42, 128, 152, 105, 83, 222, 167, 145, 170, 179, 39, 228, 224, 71, 9, 122, 123, 137, 248, 56, 61, 199, 235, 184, 107, 120, 251, 218, 250, 62, 100, 96, 241, 21, 190, 90, 149, 113, 16, 25, 143, 19, 80, 30, 208, 158, 249, 176, 147, 95, 15, 121, 206, 78, 48, 219, 153, 200, 195, 166, 223, 144, 91, 38, 67, 175, 244, 27, 8, 47, 197, 232, 243, 136, 138, 155, 115, 231, 76, 116, 204, 43, 226, 63, 69, 104, 20, 98, 191, 171, 148, 103, 229, 26, 40, 31, 18, 52, 4, 159, 192, 154, 139, 146, 207, 34, 162, 132, 79, 86, 101, 11, 194, 169, 168, 202, 66, 214, 74};

constexpr unsigned lut7_index(int k, unsigned c) {
    return k < 2 ? c & 127u : k < 4 ? (c >> 1) & 127u : ((c + 1) >> 1) & 127u;
}

// tab[k][i]: digit k of the patterns whose code has index i (0 where no code has it).
struct TritLut7Tables {
    alignas(64) uint8_t tab[5][128];
    bool ok = true;  // no index is shared by codes with different digits
    constexpr TritLut7Tables() : tab{} {
        int8_t seen[5][128] = {};
        bool used[256] = {};
        for (int n = 0; n < 243; ++n) {
            if (used[kTritLut7Code[n]]) ok = false;  // two patterns, one byte
            used[kTritLut7Code[n]] = true;
        }
        for (int n = 0; n < 243; ++n)
            for (int k = 0, p = 81; k < 5; ++k, p /= 3) {
                const int u = n / p % 3;
                const unsigned i = lut7_index(k, kTritLut7Code[n]);
                if (seen[k][i] && tab[k][i] != u) ok = false;
                seen[k][i] = 1;
                tab[k][i] = uint8_t(u);
            }
    }
};
inline constexpr TritLut7Tables kTritLut7{};
static_assert(kTritLut7.ok, "kTritLut7Code: a lookup index is shared by codes with different digits");

}  // namespace planeq::cpu
