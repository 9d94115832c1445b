// CPU kernels of the tritplane format (formats/tritplane.hpp) and of the PTQTP fit (quant/ptqtp.cpp).
//
// GEMV with int8 activations, multiplication-free in the inner loop. Activations are quantized per weight
// group (the int-group quantizer: d_j = max|x|/127, xq = round-half-even(x/d_j), Σ xq = sx_j). With
// u = t + 1 ∈ {0, 1, 2} (the P5 digit as decoded),
//     Σ_{i∈j} t_i·xq_i = Σ_{i∈j} u_i·xq_i − sx_j,
// so a segment's integer dot is a sum of xq values picked once or twice (u8 × s8 dot instructions on
// {0, 1, 2} are additions: vpdpbusd / vpmaddubsw) minus a per-group constant shared by every row, and
//     y_r = Σ_j d_j·(α1_rj·(Σ u1·xq − sx_j) + α2_rj·(Σ u2·xq − sx_j))      — two multiplies per row-group.
// The kernels decode P5 digits without multiplying: m_0 = v, m_{k+1} = m_k + m_k + m_k (mod 256) and
// u_k = [m_k ≥ 86] + [m_k ≥ 171] (= (3·m_k) >> 8, the spec's fixed-point decode).
//
// Kernel order. A superblock's 16 segments (8 groups × 2 planes) are the 16 int32 lanes of a vector: its
// main vector v and digit k meet the activations xexp[s][v][k][64] whose lane L holds the 4 activations of
// the trits of bytes 4v..4v+3 of segment L at digit k; the extra bytes are widened to one 32-bit lane per
// segment (zero padded) and form vector V − 1. xexp is built once per call (tritplane_build_act) and
// shared by all rows. Lanes of a partial superblock past its segments carry zeros.
//
// Float combination (every level computes exactly this, so all levels give identical bits):
//     out[L] = fma(float(acc_L), float(α_L)·d_j, out[L])   superblock by superblock, L = 0..15,
//     y = ((o[0..8) + o[8..16)) folded to 4, 2, 1 lanes the same way), see tritplane_reduce16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace planeq::cpu {

struct TritplaneView {
    const uint8_t* trits = nullptr;   // [rows × row_bytes]
    const uint16_t* scales = nullptr; // [rows × 2·ngroups] fp16 bits
    int64_t rows = 0, cols = 0, ngroups = 0, row_bytes = 0;
    int group = 128, nb = 26, M = 24, E = 2;
    int64_t nsb() const { return (ngroups + 7) / 8; }
    int V() const { return M / 4 + 1; }
};

struct TritplaneAct {
    const int8_t* xexp = nullptr;    // [nsb][V][5][64]
    const int32_t* zinit = nullptr;  // [nsb][16]: −sx of the lane's group (0 past the groups)
    const float* dexp = nullptr;     // [nsb][16]: d of the lane's group (0 past the groups)
};

// Bytes of xexp / entries of zinit and dexp for one call.
inline size_t tritplane_xexp_bytes(const TritplaneView& w) { return size_t(w.nsb()) * size_t(w.V()) * 320; }
inline size_t tritplane_lane_entries(const TritplaneView& w) { return size_t(w.nsb()) * 16; }

// Builds the kernel-order activations from xq [cols], d and sx [ngroups] (scalar; cheap next to a GEMV).
void tritplane_build_act(const TritplaneView& w, const int8_t* xq, const float* d, const int32_t* sx, int8_t* xexp,
                         int32_t* zinit, float* dexp);

// The fixed f32 reduction of the 16 lane sums: fold halves 8, 4, 2, 1.
inline float tritplane_reduce16(const float* o) {
    float a[8];
    for (int i = 0; i < 8; ++i) a[i] = o[i] + o[i + 8];
    for (int i = 0; i < 4; ++i) a[i] = a[i] + a[i + 4];
    for (int i = 0; i < 2; ++i) a[i] = a[i] + a[i + 2];
    return a[0] + a[1];
}

// y[r] for rows [r0, r1).
//   scalar: the model — decodes each segment in natural trit order and forms Σ u·xq − sx directly (not
//           through xexp), so it checks the layout and the activation expansion too.
void tritplane_gemv_rows_scalar(const TritplaneView& w, const int8_t* xq, const float* d, const int32_t* sx, int64_t r0,
                                int64_t r1, float* y);
void tritplane_gemv_rows_avx2(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y);
void tritplane_gemv_rows_avx512(const TritplaneView& w, const TritplaneAct& a, int64_t r0, int64_t r1, float* y);

// One segment's digits u ∈ {0, 1, 2} in natural trit order (g bytes), from its stored bytes (scalar).
void tritplane_segment_digits(const TritplaneView& w, const uint8_t* row, int64_t j, int p, uint8_t* u);

// Rows [r0, r0 + nr) × columns [c0, c0 + nc) to f32 into out[nr × nc], bit-identical to the reference.
void tritplane_dequant_block_avx512(const TritplaneView& w, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float* out);

// ---- row blocks (the default GEMV on AVX-512) -----------------------------------------------------
// The trits repacked at load into blocks of 16 rows so that one int32 lane is one row: the activation quad
// of a vpdpbusd is the same for all 16 lanes (a broadcast of 4 natural-order xq, no expanded activations
// for the main bytes) and a block is one sequential byte stream. Still 1.6 bits per trit: P5 bytes are
// copied, or translated byte for byte into the Lut7 code (the Lut7 variant). Block b (rows 16b … 16b + 15; rows past the end zero) is a sequence of units of
// U groups (U = 1 where a segment's E extra bytes pair up into 32-bit lanes, g ∈ {128, 256}; U = 2 where
// E is odd, g ∈ {32, 64}; a last unit of an odd group count is stored as a full one, its missing group
// zero). A unit's 2U segments s = 2·(group − first group) + plane are laid out as
//   main: segment by segment, M/4 vectors of 64 bytes: byte 4ρ + i of vector v = byte 4v + i of row ρ's
//         segment — digit k of it is trit M·k + 4v + i, so the activation quad is xq[j·g + M·k + 4v …];
//   extras: W = ⌈2U·E/4⌉ vectors: lane ρ holds row ρ's extra bytes (bytes M … nb − 1 of segment 0, then of
//         segment 1, …) 4 at a time, zero padded; a lane can mix segments, so its activation quads are
//         per (unit, word, digit, segment) with zeros in the other segments' bytes (TritBlockAct::xext);
//   scales: 2U × 16 fp16, [s][ρ].
// Bytes per 16 rows and group: exactly the stored 16·(2·nb + 4) (plus the odd last group's padding).
// Float combination: as the row kernels — 16 f32 accumulators per row, lane L = 2·(j mod 8) + plane,
// fma(float(acc), float(α)·d_j, o_L), folded by tritplane_reduce16 — so every variant gives the same bits.
struct TritBlocks {
    int64_t rows = 0, cols = 0, ngroups = 0, nblocks = 0, nunits = 0;
    int group = 128, nb = 26, M = 24, E = 2, U = 1, W = 1;
    bool lut7 = false;           // bytes in the Lut7 code (tritplane_recode.hpp) instead of P5
    std::vector<uint8_t> bytes;  // nblocks × block_bytes()
    int64_t unit_bytes() const { return 2 * U * (M / 4) * 64 + W * 64 + 2 * U * 32; }
    int64_t block_bytes() const { return nunits * unit_bytes(); }
};
TritBlocks tritplane_to_blocks(const TritplaneView& w, bool lut7);  // the repack (portable)

// The block geometry at compile time, for the block kernels (tritplane_blocks_avx512.cpp, _avx2.cpp): per group F
// whole bytes of 5 trits, nb stored bytes, M main bytes (a multiple of 4), E extra bytes; a unit of U groups
// has S = 2U segments and W extra words.
template <int G>
struct TritBlockGeo {
    static constexpr int F = G / 5, nb = F + (G % 5 > 0 ? 1 : 0), M = 4 * (F / 4), E = nb - M, M4 = M / 4;
    static constexpr int U = E % 2 == 0 ? 1 : 2, S = 2 * U, W = (2 * U * E + 3) / 4;
    static constexpr int64_t unit_bytes = S * M4 * 64 + W * 64 + S * 32;
    // Whether extra word w holds a byte of segment s (its bytes are positions 4w … 4w + 3 of the row's
    // extra sequence; segment s owns positions s·E … s·E + E − 1).
    static constexpr bool touches(int w, int s) { return 4 * w < (s + 1) * E && s * E < 4 * w + 4; }
};

struct TritBlockAct {
    const int8_t* xq = nullptr;     // [cols + 64], natural order
    const int32_t* xext = nullptr;  // [nunits][W][5][2U] activation quads of the extra words
    const float* d = nullptr;       // [ngroups] group scales
    const int32_t* sx = nullptr;    // [ngroups] Σ xq of the group
};
inline size_t tritplane_xext_entries(const TritBlocks& b) { return size_t(b.nunits * b.W * 5 * 2 * b.U); }
void tritplane_build_xext(const TritBlocks& b, const int8_t* xq, int32_t* xext);

// The digit decoders of the block kernel (docs/formats.md has the measurements), ALU instructions per
// 64-byte vector besides its five vpdpbusd:
//   Cmp (P5):  m ← 3m by two byte adds, u = [m ≥ 86] + [m ≥ 171] by two compares and two masked moves: 28;
//   Lut (P5):  u_k = T_k[v], 256-entry tables: two vpermi2b (bytes 0–127, 128–255) and a blend on the top
//              bit (one vpmovb2m per vector): 16;
//   Lut7 (the Lut7 code): one vpermi2b per index c, c >> 1, avg(c, 0), the first two giving two digits each
//              (split by an AND): 9, of which 3 on the shuffle pipes that vpdpbusd also needs.
// The block kernel runs the two planes of a group together (ten vpdpbusd chains: one plane's five were
// latency-bound).
// AVX2 (no VNNI, no byte lookups of 128 entries): the Cmp decode on P5 blocks, in two 256-bit halves, vpmaddubsw
// into int16 pair sums widened once per group (39 ALU instructions per 32 bytes; tritplane_blocks_avx2.cpp).
void tritplane_gemv_blocks_cmp_avx2(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y);
void tritplane_gemv_blocks_cmp_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y);
void tritplane_gemv_blocks_lut_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y);
void tritplane_gemv_blocks_lut7_avx512(const TritBlocks& w, const TritBlockAct& a, int64_t b0, int64_t b1, float* y);

// ---- triples (the lookup GEMV on AVX2) -----------------------------------------------------------
// AVX2 has no 128-entry byte lookup and no vpdpbusd, so decoding P5 digits costs ~8 instructions a digit.
// Instead, as bitnet.cpp's TL2 does for ternary weights, each three trits (t0, t1, t2) of a segment become
// one lookup: code c = Σ 3^i·(t_i + 1) ∈ 0…26, and since c and 26 − c are the same trits negated, a 4-bit
// index c' = min(c, 26 − c) ∈ 0…13 and a sign bit [c > 13]. A group has NT = ⌈g/3⌉ triples; g is never a
// multiple of 3 (32, 64, 128, 256), so the last triple holds one or two trits and is stored unsigned: its
// index is the code of its real trits, c = u0 (+ 3·u1), 0…8.
// Per call, every activation triple τ (xq at j·g + 3τ + 0, 1, 2; zero past the group) gets a 16-entry table of
// v[c'] = Σ t_i·xq_i (|v| ≤ 381; the last triple's table is indexed by its unsigned code), stored split as
// v = 32·h + l with l ∈ [−16, 15] and h ∈ [−12, 12]: 16 bytes of l, then 16 bytes of h.
// The kernel looks up 32 rows' indices in one table (one vpshufb for l, one for h), applies the sign to the
// bytes (vpsignb: −v = 32·(−h) + (−l)) and adds them into int8 sums of l and of h, which fit 7 (|l| ≤ 16) and
// 10 (|h| ≤ 12) triples; then they are widened into int16 row sums (even and odd rows apart, h times 32 by the
// same shifts): ~9.7 instructions for 96 trits of one plane, against ~23 for the P5 decode.
// The repack, blocks of 32 rows (rows past the end: the zero triple — index 13, or the unsigned code of
// zeros for the last — sign +, scales 0), per group (both planes, then the scales), per plane:
//   index vectors: NP = ⌈NT/2⌉ × 32 bytes, byte ρ of vector q = row ρ's index of triple 2q (low nibble) and
//                  2q + 1 (high nibble; the zero triple where 2q + 1 = NT);
//   sign vectors:  NS = ⌈(NT − 1)/7⌉ × 32 bytes: byte ρ of vector w holds row ρ's signs of triples 7w + k
//                  in bit 7 − k (k = 0…6), and bit 0 always 1, so that the byte doubled k < 7 times is never
//                  zero (vpsignb by a zero byte would zero the value);
//   then scales:   2 × 32 fp16, [plane][row].
// Bytes per row and group: 2·(NP + NS) + 4 (g = 128: 60, i.e. 3.75 bits a weight in memory, against the
// stored 55.2 = 3.45).
// Float combination: the row kernels' (lane L = 2·(j mod 8) + plane, tritplane_reduce16), so the same bits.
struct TritTriples {
    // The layout's sizes for a group of g trits; one definition for the repack and for the kernel's unrolling.
    static constexpr int triples(int g) { return (g + 2) / 3; }                // NT
    static constexpr int index_vectors(int g) { return (triples(g) + 1) / 2; }  // NP
    static constexpr int sign_vectors(int g) { return (triples(g) - 1 + 6) / 7; }  // NS
    static constexpr int64_t plane_bytes_for(int g) { return int64_t(index_vectors(g) + sign_vectors(g)) * 32; }
    static constexpr int64_t group_bytes_for(int g) { return 2 * plane_bytes_for(g) + 128; }

    int64_t rows = 0, cols = 0, ngroups = 0, nblocks = 0;
    int group = 128, NT = triples(128), NP = index_vectors(128), NS = sign_vectors(128);
    std::vector<uint8_t> bytes;  // nblocks × block_bytes()
    int64_t plane_bytes() const { return plane_bytes_for(group); }
    int64_t group_bytes() const { return group_bytes_for(group); }
    int64_t block_bytes() const { return ngroups * group_bytes(); }
};
TritTriples tritplane_to_triples(const TritplaneView& w);  // the repack (portable)
// The per-call tables: ngroups × NT × 32 bytes.
inline size_t tritplane_triple_lut_bytes(const TritTriples& t) { return size_t(t.ngroups * t.NT * 32); }
void tritplane_build_triple_lut_avx2(const TritTriples& t, const int8_t* xq, uint8_t* lut);
// y for the rows of blocks [b0, b1); d = the activations' group scales.
void tritplane_gemv_triples_avx2(const TritTriples& w, const uint8_t* lut, const float* d, int64_t b0, int64_t b1, float* y);

// ---- PTQTP fit ----------------------------------------------------------------------------------
// Topology step (PTQTP.md §4.2b): for each i the pair (t1_i, t2_i) of the 9 minimizing
// (w_i − (a1·t1 + a2·t2))² (levels and errors in f64, no FMA), first minimum in the order
// (0,0), (1,0), (−1,0), (0,1), (0,−1), (1,1), (1,−1), (−1,1), (−1,−1). Writes t1, t2; returns how many
// pairs changed. Both levels give identical results.
int64_t tritplane_topology_scalar(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2);
int64_t tritplane_topology_avx512(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2);

}  // namespace planeq::cpu
