// The "tritplane" weight format (PTQTP, /shared/methods/PTQTP.md §3): every (row, group of g input
// columns) stores two ternary planes t1, t2 ∈ {−1, 0, +1}^g and two fp16 scales α1, α2:
//     ŵ_i = α1·t1_i + α2·t2_i,   computed in f32 as float(α1)·t1 + float(α2)·t2 (both products exact,
//                                 one rounding of the sum — every implementation gives the same bits).
// FormatParams: bits = 2 (the number of trit planes; nothing else is accepted), group g ∈ {32, 64, 128, 256}.
//
// Trit packing: P5, the TQ1_0 byte code pinned by the spec. Each plane of a row-group is nb = ⌈g/5⌉
// bytes: F = ⌊g/5⌋ full bytes of 5 trits and one tail byte with r = g mod 5 trits (r > 0 for every
// supported g), the tail's unused digits padded with t = 0. A byte holds u_k = t_k + 1 ∈ {0, 1, 2},
// k = 0..4, as n = Σ u_k·3^(4−k) (digit 0 most significant) stored as v = ⌈256·n/243⌉; digit k decodes
// as u_k = (((v·3^k) mod 256)·3) >> 8.
//
// Bits per weight: 2·8·nb/g (trits) + 32/g (scales), byte-exact:
//     g = 32: 4.5   g = 64: 3.75   g = 128: 3.5   g = 256: 3.375       (never "1.58-bit": that is one plane)
//
// Which trit of a plane's group sits in which byte and digit (chosen for the kernels; M = 4·⌊F/4⌋ "main"
// bytes, Ef = F − M full "extra" bytes, the tail byte is byte F; E = nb − M extra bytes in all):
//     i < 5M:          byte i mod M,              digit i div M
//     5M ≤ i < 5F:     byte M + (i − 5M) mod Ef,  digit (i − 5M) div Ef
//     5F ≤ i < g:      byte F,                    digit i − 5F
//   g = 32: M = 4, E = 3;  g = 64: M = 12, E = 1;  g = 128: M = 24, E = 2;  g = 256: M = 48, E = 4.
//
// Parts (rows R, cols C, G = C/g groups per row):
//   trits   U8  [R, 2·G·nb]   each row is a sequence of superblocks of (up to) 8 groups; a superblock of
//                             n groups has 2n "segments" L = 2·(group − first group) + plane (plane 0 = t1)
//                             and is laid out as
//                               M/4 main vectors of 8n bytes: vector v holds bytes 4v..4v+3 of segment L
//                                   at offset 4L (one 32-bit lane per segment),
//                               then the extra bytes: bytes M..nb−1 of segment L at offset L·E.
//                             (2n·nb bytes; for a full superblock the main vectors are exactly 64 bytes.)
//   scales  F16 [R, 2·G]      (α1, α2) of group j at [2j, 2j + 1] — segment order again.
// Stored bytes = R·G·(2·nb + 4): 56 bytes per row-group at g = 128 (2·26·8 + 32 bits).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "formats/format.hpp"

namespace planeq {

extern const WeightFormat kFormatTritplane;

// ---- the P5 byte code ----------------------------------------------------------------------------
// Five trits (t ∈ {−1, 0, 1}, digit 0 first) → one byte.
uint8_t p5_encode(const int8_t t[5]);
// One byte → five trits. Every byte decodes to something; p5_encode's image round-trips exactly.
inline void p5_decode(uint8_t v, int8_t t[5]) {
    unsigned m = v;
    for (int k = 0; k < 5; ++k) {
        t[k] = int8_t(int((m * 3u) >> 8) - 1);
        m = (m * 3u) & 0xFFu;
    }
}

// ---- geometry -----------------------------------------------------------------------------------
struct TritplaneGeometry {
    int g = 128;
    int nb = 26;  // bytes per plane per group
    int F = 25;   // full bytes
    int r = 3;    // trits in the tail byte (1..4)
    int M = 24;   // main bytes (multiple of 4)
    int Ef = 1;   // full extra bytes
    int E = 2;    // extra bytes (Ef + 1)
    explicit TritplaneGeometry(int group);
    // Where trit i (0 ≤ i < g) of a plane lives: byte and digit.
    void locate(int i, int& byte, int& digit) const;
    // The inverse: the trit at byte b, digit k, or −1 for a padding digit of the tail byte.
    int trit_at(int b, int k) const {
        if (b < M) return M * k + b;
        if (b < F) return 5 * M + k * Ef + (b - M);
        return k < r ? 5 * F + k : -1;
    }
};

constexpr int kTritplaneSuperGroups = 8;  // groups per superblock
inline int64_t tritplane_row_bytes(int64_t cols, int group) { return 2 * (cols / group) * ((group + 4) / 5); }
// Byte offset, inside a row, of byte b (0 ≤ b < nb) of segment (group j, plane p).
int64_t tritplane_byte_offset(const TritplaneGeometry& geo, int64_t groups, int64_t j, int p, int b);

// Packs planes t1, t2 (R×C int8 in {−1, 0, 1}, row-major) and scales (R×(2·C/g) fp16 bits, (α1, α2) per
// group) into an owned PackedWeight. Throws planeq::Error on bad input.
PackedWeight pack_tritplane(int64_t rows, int64_t cols, int group, std::span<const int8_t> t1,
                            std::span<const int8_t> t2, std::span<const uint16_t> scales_f16);
// The planes of a packed weight (R×C each).
void unpack_tritplane(const PackedWeight& w, int8_t* t1, int8_t* t2);

// Random planes (uniform trits, written straight into P5 bytes) and scales α1 ~ σ·U(0.5, 1.5),
// α2 ~ α1·U(0.2, 0.5): synthetic models for `planeq bench --shape`. Deterministic in seed.
PackedWeight random_tritplane(int64_t rows, int64_t cols, int group, float sigma, uint64_t seed);

// GEMV kernel variants (docs/formats.md has the measurements). Process-wide setting, read by prepare() (which
// builds the repack the kernel streams) and by the GEMV. AVX-512 runs each as named. AVX2 runs Int8RowBlocksCmp
// as named and the lookup variants (Lut, Lut7, Triples) as Int8Triples, its lookup. Scalar: the row model.
enum class TritplaneGemvVariant {
    Int8Superblocks,   // row by row, 16 (group, plane) segments of 8 groups as the lanes (kernel order)
    Int8RowBlocksCmp,  // 16-row blocks, one lane per row; digits by the add/compare recurrence
    Int8RowBlocksLut,  // 16-row blocks; digits by 256-entry vpermi2b lookups
    Int8RowBlocksLut7, // 16-row blocks recoded (kernels/cpu/tritplane_recode.hpp): three 128-entry lookups per 5 digits
    Int8Triples,       // 32-row blocks of 3-trit indices looked up in int16 tables of activation triples (AVX2 code)
};
void set_tritplane_gemv_variant(TritplaneGemvVariant v);
TritplaneGemvVariant tritplane_gemv_variant();
const char* tritplane_gemv_variant_name(TritplaneGemvVariant v);

}  // namespace planeq
