// The 16-row block layout of the int-group GEMV (int_group_kernels.hpp, "Row blocks"): the repack from
// the stored row layout. Portable; runs once per weight at load.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/int_group_kernels.hpp"

namespace planeq::cpu {

IntBlocks int_group_to_blocks(const IntGroupView& w) {
    IntBlocks b;
    b.rows = w.rows, b.cols = w.cols, b.bits = w.bits, b.group = w.group, b.ngroups = w.ngroups;
    b.nblocks = (w.rows + 15) / 16;
    b.bytes.assign(size_t(b.nblocks * b.block_bytes()), 0);
    const int64_t g = w.group, quads = g / 4, rb = w.row_bytes();
    for (int64_t blk = 0; blk < b.nblocks; ++blk) {
        uint8_t* base = b.bytes.data() + blk * b.block_bytes();
        const int64_t nr = std::min<int64_t>(16, w.rows - 16 * blk);
        for (int64_t j = 0; j < w.ngroups; ++j) {
            uint8_t* codes = base + j * b.group_code_bytes();
            uint8_t* hi = codes + quads * 16;  // b = 3: the high-bit plane words after the 2-bit fields
            for (int64_t r = 0; r < nr; ++r) {
                const uint8_t* row = w.qweight + (16 * blk + r) * rb;
                for (int64_t q = 0; q < quads; ++q)
                    for (int i = 0; i < 4; ++i) {
                        const int code = int_group_code(row, w.cols, w.bits, j * g + 4 * q + i);
                        const int64_t lane = 4 * r + i;
                        if (w.bits == 4) {
                            codes[(q / 2) * 64 + lane] |= uint8_t(code << (4 * (q % 2)));
                        } else {
                            codes[(q / 4) * 64 + lane] |= uint8_t((code & 3) << (2 * (q % 4)));
                            if (w.bits == 3 && (code >> 2)) hi[q * 8 + lane / 8] |= uint8_t(1u << (lane % 8));
                        }
                    }
            }
            uint16_t* scales = reinterpret_cast<uint16_t*>(base + b.code_bytes() + j * 48);
            uint8_t* zeros = base + b.code_bytes() + j * 48 + 32;
            for (int64_t r = 0; r < nr; ++r) {
                std::memcpy(scales + r, w.scales + (16 * blk + r) * w.ngroups + j, 2);
                zeros[r] = w.zeros[(16 * blk + r) * w.ngroups + j];
            }
        }
    }
    return b;
}

}  // namespace planeq::cpu
