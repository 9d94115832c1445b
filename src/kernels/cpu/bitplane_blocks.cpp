// The 16-row block layout of the bitplane GEMV (kernel (d) in bitplane_kernels.hpp): the repack from the
// stored row layout. Portable; runs once per weight at load.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/bitplane_kernels.hpp"

namespace planeq::cpu {

BitplaneBlocks bitplane_to_blocks(const BitplaneView& w) {
    BitplaneBlocks b;
    b.rows = w.rows, b.cols = w.cols, b.k = w.k, b.group = w.group, b.ngroups = w.ngroups;
    b.nblocks = (w.rows + 15) / 16;
    b.bytes.assign(size_t(b.nblocks * b.block_bytes()), 0);
    const int k = w.k;
    const int64_t rb = w.row_bytes(), quads = w.group / 4;
    for (int64_t blk = 0; blk < b.nblocks; ++blk) {
        const int64_t nr = std::min<int64_t>(16, w.rows - 16 * blk);
        for (int64_t j = 0; j < w.ngroups; ++j) {
            uint8_t* g = b.bytes.data() + blk * b.block_bytes() + j * b.group_bytes();
            for (int64_t q = 0; q < quads; ++q) {
                const int64_t col = j * w.group + 4 * q;  // a quad never straddles a 64-column chunk
                for (int m = 1; m <= k; ++m) {
                    uint64_t word = 0;
                    for (int64_t r = 0; r < nr; ++r) {
                        const uint8_t* row = w.planes + (16 * blk + r) * rb;
                        const uint64_t nib = (bitplane_mask(row, w.cols, k, col / 64, m) >> (col % 64)) & 0xF;
                        word |= nib << (4 * r);
                    }
                    if (b.slot_bytes()) {  // byte 4ρ + i of the step's vector, bit (q mod Q)·k + m − 1
                        const int64_t step = q / b.slot_quads(), bit = (q % b.slot_quads()) * k + m - 1;
                        uint8_t* v = g + step * 64;
                        for (int i = 0; i < 64; ++i) v[i] |= uint8_t(((word >> i) & 1) << bit);
                    } else {
                        std::memcpy(g + q * b.quad_bytes() + 8 * (m - 1), &word, 8);
                    }
                }
            }
            uint16_t coef[5 * 16] = {};
            for (int64_t r = 0; r < nr; ++r)
                for (int m = 0; m <= k; ++m) coef[m * 16 + r] = w.coefs[((16 * blk + r) * w.ngroups + j) * (k + 1) + m];
            std::memcpy(g + quads * b.quad_bytes(), coef, size_t((k + 1) * 32));
        }
    }
    return b;
}

}  // namespace planeq::cpu
