// The decode path's switches (cuda_gemv.hpp: DecodeOptions): the defaults there, overridden at first use by the
// environment (PLANEQ_PDL, PLANEQ_GEMV_I8, PLANEQ_L2PF, PLANEQ_FUSE_PREP, PLANEQ_GEMV_BW, PLANEQ_BW_PAIR, PLANEQ_BW_L2, PLANEQ_BW_NORM, PLANEQ_BW_ACT8, PLANEQ_BW_DOWN_I8 = 0 / 1, PLANEQ_I8_WARPS = 4 / 8,
// PLANEQ_I8_STAGES = 0 / 4, PLANEQ_BW_ROWS = 1 / 2 / 4, PLANEQ_BW_SPLIT = 1 / 2 / 4 / 8) or by the caller
// (benchmark A/B, tests).
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_gemv.hpp"

namespace planeq::cuda {

namespace {
bool env_flag(const char* name, bool dflt) {
    const char* v = std::getenv(name);
    return v ? std::strcmp(v, "0") != 0 : dflt;
}
DecodeOptions& current() {
    static DecodeOptions o = [] {
        DecodeOptions d;
        d.pdl = env_flag("PLANEQ_PDL", d.pdl);
        d.int8 = env_flag("PLANEQ_GEMV_I8", d.int8);
        d.l2_prefetch = env_flag("PLANEQ_L2PF", d.l2_prefetch);
        d.fuse_prep = env_flag("PLANEQ_FUSE_PREP", d.fuse_prep);
        d.bw = env_flag("PLANEQ_GEMV_BW", d.bw);
        d.bw_l2 = env_flag("PLANEQ_BW_L2", d.bw_l2);
        d.bw_pair = env_flag("PLANEQ_BW_PAIR", d.bw_pair);
        d.bw_norm = env_flag("PLANEQ_BW_NORM", d.bw_norm);
        d.bw_act8 = env_flag("PLANEQ_BW_ACT8", d.bw_act8);
        d.bw_down_i8 = env_flag("PLANEQ_BW_DOWN_I8", d.bw_down_i8);
        if (const char* r = std::getenv("PLANEQ_BW_ROWS")) d.bw_rows = std::atoi(r);
        if (const char* r = std::getenv("PLANEQ_BW_SPLIT")) d.bw_split = std::atoi(r);
        if (const char* w = std::getenv("PLANEQ_I8_WARPS")) d.i8_warps = std::atoi(w);
        if (const char* w = std::getenv("PLANEQ_I8_STAGES")) d.i8_stages = std::atoi(w);
        return d;
    }();
    return o;
}
}  // namespace

DecodeOptions decode_options() { return current(); }
void set_decode_options(const DecodeOptions& o) { current() = o; }

}  // namespace planeq::cuda
