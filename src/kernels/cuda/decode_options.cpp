// The decode path's switches (cuda_gemv.hpp: DecodeOptions): defaults on, each turned off by its environment
// variable = 0 at first use (PLANEQ_PDL, PLANEQ_GEMV_I8, PLANEQ_L2PF), or set by the caller (benchmark A/B, tests).
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_gemv.hpp"

namespace planeq::cuda {

namespace {
bool env_on(const char* name) {
    const char* v = std::getenv(name);
    return !(v && std::strcmp(v, "0") == 0);
}
DecodeOptions& current() {
    static DecodeOptions o{env_on("PLANEQ_PDL"), env_on("PLANEQ_GEMV_I8"), env_on("PLANEQ_L2PF")};
    return o;
}
}  // namespace

DecodeOptions decode_options() { return current(); }
void set_decode_options(const DecodeOptions& o) { current() = o; }

}  // namespace planeq::cuda
