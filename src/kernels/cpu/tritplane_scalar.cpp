// Scalar tritplane kernels: the activation expansion every SIMD level uses, the scalar GEMV (the model of
// the integer math: natural trit order, not the kernel order), segment decoding, and the PTQTP topology
// step. See tritplane_kernels.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.hpp"
#include "formats/tritplane.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"

namespace planeq::cpu {

void tritplane_build_act(const TritplaneView& w, const int8_t* xq, const float* d, const int32_t* sx, int8_t* xexp,
                         int32_t* zinit, float* dexp) {
    const TritplaneGeometry geo(w.group);
    const int V = w.V(), M4 = geo.M / 4;
    const int64_t nsb = w.nsb();
    std::memset(xexp, 0, tritplane_xexp_bytes(w));
    std::fill_n(zinit, nsb * 16, 0);
    std::fill_n(dexp, nsb * 16, 0.0f);
    for (int64_t j = 0; j < w.ngroups; ++j) {
        const int64_t s = j / 8;
        const int8_t* xg = xq + j * geo.g;
        int8_t* base = xexp + s * V * 320;
        for (int p = 0; p < 2; ++p) {
            const int L = int(2 * (j % 8) + p);
            for (int k = 0; k < 5; ++k) {
                const int8_t* src = xg + geo.M * k;  // main bytes, digit k: trits M·k .. M·k + M − 1
                for (int v = 0; v < M4; ++v) std::memcpy(base + (v * 5 + k) * 64 + 4 * L, src + 4 * v, 4);
                int8_t* ex = base + (M4 * 5 + k) * 64 + 4 * L;
                for (int q = 0; q < geo.E; ++q) {
                    const int i = geo.trit_at(geo.M + q, k);
                    ex[q] = i < 0 ? int8_t(0) : xg[i];
                }
            }
            zinit[s * 16 + L] = -sx[j];
            dexp[s * 16 + L] = d[j];
        }
    }
}

namespace {

// kDigit[k][v]: digit k of the P5 byte v (m ← 3m mod 256 per digit, digit = ⌊3m / 256⌋), built once.
struct DigitTable {
    uint8_t d[5][256];
    DigitTable() {
        for (int v = 0; v < 256; ++v)
            for (unsigned k = 0, m = unsigned(v); k < 5; ++k, m = (m * 3u) & 0xFFu) d[k][v] = uint8_t((m * 3u) >> 8);
    }
};
const DigitTable kDigit;

}  // namespace

void tritplane_segment_digits(const TritplaneView& w, const uint8_t* row, int64_t j, int p, uint8_t* u) {
    // The layout (tritplane_byte_offset): main byte b < M of segment (j, p) holds trits b, M + b, …, 4M + b (digit k
    // = trit kM + b), in runs of 4 bytes at stride 8n inside the superblock; the E extra bytes follow the main bytes
    // of all 2n segments. So the main digits are 5 table lookups a byte into contiguous runs, no per-trit locate.
    const TritplaneGeometry geo(w.group);
    const int M = geo.M;
    const int64_t s = j / kTritplaneSuperGroups, n = std::min<int64_t>(kTritplaneSuperGroups, w.ngroups - s * kTritplaneSuperGroups);
    const int64_t L = 2 * (j % kTritplaneSuperGroups) + p;
    const uint8_t* base = row + s * 2 * kTritplaneSuperGroups * geo.nb;
    for (int b = 0; b < M; ++b) {
        const uint8_t v = base[(b / 4) * 8 * n + 4 * L + b % 4];
        for (int k = 0; k < 5; ++k) u[k * M + b] = kDigit.d[k][v];
    }
    const uint8_t* extra = base + 2 * n * M + L * geo.E;
    for (int q = 0; q < geo.E; ++q)
        for (int k = 0; k < 5; ++k)
            if (const int i = geo.trit_at(M + q, k); i >= 0) u[i] = kDigit.d[k][extra[q]];
}

void tritplane_gemv_rows_scalar(const TritplaneView& w, const int8_t* xq, const float* d, const int32_t* sx, int64_t r0,
                                int64_t r1, float* y) {
    const int g = w.group;
    uint8_t u[256];
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* row = w.trits + r * w.row_bytes;
        const uint16_t* sc = w.scales + r * 2 * w.ngroups;
        float out[16] = {};
        for (int64_t s = 0; s < w.nsb(); ++s) {
            const int64_t n = std::min<int64_t>(8, w.ngroups - 8 * s);
            for (int L = 0; L < 2 * n; ++L) {
                const int64_t j = 8 * s + L / 2;
                tritplane_segment_digits(w, row, j, L % 2, u);
                int32_t acc = -sx[j];
                for (int i = 0; i < g; ++i) acc += int32_t(u[i]) * xq[j * g + i];
                const float scale = f16_to_f32(sc[2 * j + L % 2]) * d[j];
                out[L] = std::fmaf(float(acc), scale, out[L]);
            }
        }
        y[r] = tritplane_reduce16(out);
    }
}

namespace {
constexpr int8_t kPair1[9] = {0, 1, -1, 0, 0, 1, 1, -1, -1};
constexpr int8_t kPair2[9] = {0, 0, 0, 1, -1, 1, -1, 1, -1};
}  // namespace

int64_t tritplane_topology_scalar(const double* w, int64_t n, double a1, double a2, int8_t* t1, int8_t* t2) {
    double level[9];
    for (int c = 0; c < 9; ++c) level[c] = double(kPair1[c]) * a1 + double(kPair2[c]) * a2;
    int64_t changed = 0;
    for (int64_t i = 0; i < n; ++i) {
        double d = w[i] - level[0];
        double best = d * d;
        int bc = 0;
        for (int c = 1; c < 9; ++c) {
            d = w[i] - level[c];
            const double e = d * d;
            if (e < best) {
                best = e;
                bc = c;
            }
        }
        changed += (t1[i] != kPair1[bc]) | (t2[i] != kPair2[bc]);
        t1[i] = kPair1[bc];
        t2[i] = kPair2[bc];
    }
    return changed;
}

}  // namespace planeq::cpu
