// The 16-row block layout of the tritplane GEMV (tritplane_kernels.hpp, "row blocks"): the repack from the
// stored row layout and the per-call activation quads of the extra words. Portable; the repack runs once
// per weight at load.
#include <algorithm>
#include <cstring>

#include "formats/tritplane.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"
#include "kernels/cpu/tritplane_recode.hpp"

namespace planeq::cpu {

namespace {

// Byte translation P5 → Lut7 code: the pattern a P5 byte decodes to (every byte decodes to something), coded.
struct P5ToLut7 {
    uint8_t map[256];
    P5ToLut7() {
        for (int v = 0; v < 256; ++v) {
            int8_t t[5];
            p5_decode(uint8_t(v), t);
            int n = 0;
            for (int k = 0; k < 5; ++k) n = 3 * n + (t[k] + 1);
            map[v] = kTritLut7Code[n];
        }
    }
};

}  // namespace

TritBlocks tritplane_to_blocks(const TritplaneView& w, bool lut7) {
    static const P5ToLut7 recode;
    uint8_t map[256];
    for (int v = 0; v < 256; ++v) map[v] = lut7 ? recode.map[v] : uint8_t(v);
    TritBlocks b;
    b.lut7 = lut7;
    b.rows = w.rows, b.cols = w.cols, b.ngroups = w.ngroups, b.group = w.group;
    b.nb = w.nb, b.M = w.M, b.E = w.E;
    b.U = w.E % 2 == 0 ? 1 : 2;  // E even: a group's 2E extra bytes fill whole lanes; odd: two groups do
    b.W = (2 * b.U * b.E + 3) / 4;
    b.nblocks = (w.rows + 15) / 16;
    b.nunits = (w.ngroups + b.U - 1) / b.U;
    b.bytes.assign(size_t(b.nblocks * b.block_bytes()), 0);
    const TritplaneGeometry geo(w.group);
    const int M4 = b.M / 4, S = 2 * b.U;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < b.nblocks; ++blk) {
        const int64_t nr = std::min<int64_t>(16, w.rows - 16 * blk);
        for (int64_t t = 0; t < b.nunits; ++t) {
            uint8_t* unit = b.bytes.data() + blk * b.block_bytes() + t * b.unit_bytes();
            uint8_t* extras = unit + S * M4 * 64;
            uint16_t* scales = reinterpret_cast<uint16_t*>(extras + b.W * 64);
            for (int s = 0; s < S; ++s) {
                const int64_t j = t * b.U + s / 2;
                if (j >= w.ngroups) continue;  // the odd last group of a U = 2 unit: zeros
                const int p = s % 2;
                for (int64_t r = 0; r < nr; ++r) {
                    const uint8_t* row = w.trits + (16 * blk + r) * w.row_bytes;
                    for (int byte = 0; byte < b.nb; ++byte) {
                        const uint8_t v = map[row[tritplane_byte_offset(geo, w.ngroups, j, p, byte)]];
                        if (byte < b.M) {
                            unit[(s * M4 + byte / 4) * 64 + 4 * r + byte % 4] = v;
                        } else {
                            const int x = s * b.E + (byte - b.M);  // position in the row's extra sequence
                            extras[(x / 4) * 64 + 4 * r + x % 4] = v;
                        }
                    }
                    scales[s * 16 + r] = w.scales[(16 * blk + r) * 2 * w.ngroups + 2 * j + p];
                }
            }
        }
    }
    return b;
}

void tritplane_build_xext(const TritBlocks& b, const int8_t* xq, int32_t* xext) {
    const TritplaneGeometry geo(b.group);
    const int S = 2 * b.U;
    for (int64_t t = 0; t < b.nunits; ++t)
        for (int w = 0; w < b.W; ++w)
            for (int k = 0; k < 5; ++k)
                for (int s = 0; s < S; ++s) {
                    const int64_t j = t * b.U + s / 2;
                    int8_t q[4] = {0, 0, 0, 0};
                    for (int i = 0; i < 4; ++i) {
                        const int x = 4 * w + i;
                        if (j >= b.ngroups || x / b.E != s) continue;  // another segment's byte, or padding
                        const int trit = geo.trit_at(b.M + x % b.E, k);
                        if (trit >= 0) q[i] = xq[j * b.group + trit];
                    }
                    std::memcpy(xext + ((t * b.W + w) * 5 + k) * S + s, q, 4);
                }
}

}  // namespace planeq::cpu
