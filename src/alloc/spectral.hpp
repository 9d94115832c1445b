// Spectra the scorers need, without ever forming a full SVD of a large matrix (NSDS.md §5):
// - Gram matrices through BLAS syrk and symmetric eigen-decompositions through LAPACK dsyevd (fp64),
//   which give the singular values and one side's singular vectors of a tall or wide matrix;
// - the exact thin SVD of a low-rank product M = A Bᵀ (A, B: d×r, r ≪ d) from two QR factorizations and
//   an r×r core SVD — the head circuits W_Qᵀ W_K and W_O W_V.
// Call from one thread per matrix (the callers parallelize over matrices): BLAS/LAPACK run single-threaded
// inside, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

namespace planeq::alloc {

using MatrixD = Eigen::MatrixXd;  // column-major

struct Spectrum {
    std::vector<double> s2;  // squared singular values (= eigenvalues of the Gram matrix), descending, ≥ 0
    MatrixD vectors;         // matching singular vectors as columns (empty when not asked for)
};

// Eigen-decomposition of a symmetric n×n matrix (either storage order: it is symmetric), eigenvalues
// descending; negative round-off clamped to 0 when clamp is set.
Spectrum symmetric_eig(std::vector<double> a, int64_t n, bool want_vectors, bool clamp = true);

// Gram matrix of a row-major rows×cols f32 matrix W in fp64: WᵀW (cols×cols) when of_columns, else WWᵀ.
std::vector<double> gram(const float* w, int64_t rows, int64_t cols, bool of_columns);

// Singular values and the right (input-side) singular vectors of W (rows×cols): spectrum of WᵀW.
Spectrum right_singular(const float* w, int64_t rows, int64_t cols);
// Singular values and the left (output-side) singular vectors of W: spectrum of WWᵀ.
Spectrum left_singular(const float* w, int64_t rows, int64_t cols);

// Exact thin SVD of M = A Bᵀ, A and B d×r: M = U diag(s) Vᵀ with U = Q_a Ũ, V = Q_b Ṽ from A = Q_a R_a,
// B = Q_b R_b and the core SVD R_a R_bᵀ = Ũ S Ṽᵀ. s descending, r values.
struct ThinSvd {
    std::vector<double> s;
    MatrixD u, v;  // d×r
};
ThinSvd thin_svd_of_product(const MatrixD& a, const MatrixD& b);

// Excess kurtosis of the d×d entries of M = A Bᵀ without storing M: the mean in closed form
// (Σ_ij M_ij = Σ_k (Σ_i A_ik)(Σ_j B_jk)), then m2 and m4 over row blocks formed by GEMM.
double product_kurtosis(const MatrixD& a, const MatrixD& b);

}  // namespace planeq::alloc
