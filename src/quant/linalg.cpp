#include "quant/linalg.hpp"

#include "core/blas_threads.hpp"
#include "core/error.hpp"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
}

namespace planeq {

// LAPACK is column-major: its lower triangle is our row-major upper triangle, so 'L' here yields the
// row-major upper factor U with A = Uᵀ U.
bool cholesky_upper(std::vector<double>& a, int64_t n) {
    const int nn = int(n);
    int info = 0;
    {
        const SingleThreadedBlas one;
        dpotrf_("L", &nn, a.data(), &nn, &info);
    }
    if (info < 0) fail("internal: dpotrf argument " + std::to_string(-info) + " invalid");
    if (info > 0) return false;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) a[size_t(i * n + j)] = 0.0;
    return true;
}

void inverse_from_cholesky(std::vector<double>& u, int64_t n) {
    const int nn = int(n);
    int info = 0;
    {
        const SingleThreadedBlas one;
        dpotri_("L", &nn, u.data(), &nn, &info);
    }
    if (info != 0) fail("internal: dpotri failed (info " + std::to_string(info) + ")");
    for (int64_t i = 0; i < n; ++i)  // mirror the row-major upper triangle into the lower one
        for (int64_t j = 0; j < i; ++j) u[size_t(i * n + j)] = u[size_t(j * n + i)];
}

}  // namespace planeq
