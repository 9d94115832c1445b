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
    t.NT = TritTriples::triples(w.group);
    t.NP = TritTriples::index_vectors(w.group);
    t.NS = TritTriples::sign_vectors(w.group);
    t.nblocks = (w.rows + 31) / 32;
    t.bytes.assign(size_t(t.nblocks * t.block_bytes()), 0);
    const int g = w.group, last = t.NT - 1, zero_last = g % 3 == 2 ? 4 : 1;  // the unsigned code of zero trits
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < t.nblocks; ++blk) {
        uint8_t u[256 + 2];  // a segment's digits u = t + 1, then two padding digits (t = 0) for the last triple
        for (int64_t j = 0; j < t.ngroups; ++j) {
            uint8_t* grp = t.bytes.data() + blk * t.block_bytes() + j * t.group_bytes();
            uint16_t* scales = reinterpret_cast<uint16_t*>(grp + 2 * t.plane_bytes());
            for (int p = 0; p < 2; ++p) {
                uint8_t* idx = grp + p * t.plane_bytes();
                uint8_t* sign = idx + t.NP * 32;
                for (int q = 0; q < t.NS * 32; ++q) sign[q] = 1;  // bit 0 set, every sign +
                for (int r = 0; r < 32; ++r) {
                    const int64_t row = 32 * blk + r;
                    const bool real = row < w.rows;  // padding rows: zero triples, scales 0
                    if (real) {
                        tritplane_segment_digits(w, w.trits + row * w.row_bytes, j, p, u);
                        u[g] = u[g + 1] = 1;
                    }
                    for (int tau = 0; tau < t.NT; tau += 2) {
                        int ix[2];
                        for (int h = 0; h < 2; ++h) {
                            const int tt = tau + h;
                            if (tt > last) ix[h] = 13;  // the unused high nibble: the zero triple
                            else if (tt == last) ix[h] = real ? (g % 3 == 2 ? u[3 * tt] + 3 * u[3 * tt + 1] : u[3 * tt]) : zero_last;
                            else if (!real) ix[h] = 13;
                            else {
                                const int c = u[3 * tt] + 3 * u[3 * tt + 1] + 9 * u[3 * tt + 2];
                                ix[h] = c <= 13 ? c : 26 - c;
                                if (c > 13) sign[(tt / 7) * 32 + r] |= uint8_t(0x80u >> (tt % 7));
                            }
                        }
                        idx[(tau / 2) * 32 + r] = uint8_t(ix[0] | ix[1] << 4);
                    }
                    scales[p * 32 + r] = real ? w.scales[row * 2 * w.ngroups + 2 * j + p] : 0;
                }
            }
        }
    }
    return t;
}

}  // namespace planeq::cpu
