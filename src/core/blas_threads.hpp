// OpenBLAS single-threaded for a scope: its own threading partitions the work by its thread count, so its
// sums (and GPTQ's and BPDQ's output) moved with `-t` (seen on a Zen 3 EPYC without AVX-512;
// Quantize.GptqBeatsRtnAtTwoBitsAndIsDeterministic requires byte-identical tensors for any thread count).
// Inside an active OpenMP region the OpenMP build of OpenBLAS (scripts/install-deps.sh) already runs
// single-threaded, and the thread count is a global, so there it is left alone (no racing set/restore).
#pragma once

#include <omp.h>

extern "C" {
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace planeq {

class SingleThreadedBlas {
public:
    SingleThreadedBlas() : active_(!omp_in_parallel()), saved_(active_ ? openblas_get_num_threads() : 1) {
        if (active_) openblas_set_num_threads(1);
    }
    ~SingleThreadedBlas() {
        if (active_) openblas_set_num_threads(saved_);
    }
    SingleThreadedBlas(const SingleThreadedBlas&) = delete;
    SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

private:
    bool active_;
    int saved_;
};

}  // namespace planeq
