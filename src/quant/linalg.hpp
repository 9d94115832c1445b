// Dense symmetric linear algebra for Hessian-based methods, through LAPACK (OpenBLAS's, single-threaded for bits that do not depend on `-t`: core/blas_threads.hpp).
// Matrices are row-major C×C doubles; for symmetric matrices row- and column-major coincide.
#pragma once

#include <cstdint>
#include <vector>

namespace planeq {

// In place: A = Uᵀ U (U upper triangular, row-major; the strict lower part is zeroed). False if A is
// not positive definite.
bool cholesky_upper(std::vector<double>& a, int64_t n);

// In place: A ← A⁻¹ given A's upper Cholesky factor U from cholesky_upper (full symmetric result).
void inverse_from_cholesky(std::vector<double>& u, int64_t n);

}  // namespace planeq
