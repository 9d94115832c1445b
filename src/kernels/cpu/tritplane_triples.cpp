// The 32-row triple layout of the tritplane lookup GEMV (tritplane_kernels.hpp, "triples"): the repack from
// the stored P5 rows. Portable; runs once per weight at load.
#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/tritplane.hpp"
#include "kernels/cpu/tritplane_kernels.hpp"

namespace planeq::cpu {

TritTriples tritplane_to_triples(const TritplaneView& w) {
    TritTriples t;
    t.rows = w.rows, t.cols = w.cols, t.ngroups = w.ngroups, t.group = w.group;
    t.NT = (w.group + 2) / 3;
    t.NP = (t.NT + 1) / 2;
    t.NSW = (t.NT + 14) / 15;
    t.nblocks = (w.rows + 31) / 32;
    t.bytes.assign(size_t(t.nblocks * t.block_bytes()), 0);
    const int g = w.group;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < t.nblocks; ++blk) {
        uint8_t u[256 + 2];  // a segment's digits u = t + 1, then two padding digits (t = 0) for the last triple
        for (int64_t j = 0; j < t.ngroups; ++j) {
            uint8_t* grp = t.bytes.data() + blk * t.block_bytes() + j * t.group_bytes();
            uint16_t* scales = reinterpret_cast<uint16_t*>(grp + 2 * t.plane_bytes());
            for (int p = 0; p < 2; ++p) {
                uint8_t* idx = grp + p * t.plane_bytes();
                uint16_t* sign = reinterpret_cast<uint16_t*>(idx + t.NP * 32);
                for (int w16 = 0; w16 < t.NSW * 32; ++w16) sign[w16] = 1;  // bit 0 set, every sign +
                for (int r = 0; r < 32; ++r) {
                    const int64_t row = 32 * blk + r;
                    if (row >= w.rows) {  // padding rows: the zero triple (index 13), scales 0
                        for (int q = 0; q < t.NP; ++q) idx[q * 32 + r] = 13 | 13 << 4;
                        continue;
                    }
                    tritplane_segment_digits(w, w.trits + row * w.row_bytes, j, p, u);
                    u[g] = u[g + 1] = 1;
                    // Word lane of row r: vector A (rows 0–7, 16–23) or B (8–15, 24–31), lane r % 8 + 8·(r ≥ 16).
                    const int vec = (r / 8) % 2, lane = r % 8 + 8 * (r / 16);
                    for (int tau = 0; tau < t.NT; tau += 2) {
                        int ix[2];
                        for (int h = 0; h < 2; ++h) {
                            const int tt = tau + h;
                            if (tt >= t.NT) {  // the unused high nibble: the zero triple
                                ix[h] = 13;
                                continue;
                            }
                            const int c = u[3 * tt] + 3 * u[3 * tt + 1] + 9 * u[3 * tt + 2];
                            ix[h] = c <= 13 ? c : 26 - c;
                            if (c > 13) sign[(tt / 15) * 32 + vec * 16 + lane] |= uint16_t(1u << (15 - tt % 15));
                        }
                        idx[(tau / 2) * 32 + r] = uint8_t(ix[0] | ix[1] << 4);
                    }
                    scales[p * 32 + r] = w.scales[row * 2 * w.ngroups + 2 * j + p];
                }
            }
        }
    }
    return t;
}

}  // namespace planeq::cpu
