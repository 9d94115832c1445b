#include "alloc/spectral.hpp"

#include <cblas.h>

#include <algorithm>

#include "alloc/stats.hpp"
#include "core/error.hpp"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work,
                        const int* lwork, int* iwork, const int* liwork, int* info);

namespace planeq::alloc {

Spectrum symmetric_eig(std::vector<double> a, int64_t n, bool want_vectors, bool clamp) {
    Spectrum sp;
    if (n == 0) return sp;
    const int nn = int(n);
    const char jobz = want_vectors ? 'V' : 'N';
    std::vector<double> w(static_cast<size_t>(n));
    int info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0;
    dsyevd_(&jobz, "U", &nn, a.data(), &nn, w.data(), &wq, &lwork, &iwq, &liwork, &info);
    if (info != 0) fail("internal: dsyevd workspace query failed (info " + std::to_string(info) + ")");
    lwork = int(wq);
    liwork = iwq;
    std::vector<double> work(size_t(std::max(1, lwork)));
    std::vector<int> iwork(size_t(std::max(1, liwork)));
    dsyevd_(&jobz, "U", &nn, a.data(), &nn, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
    if (info != 0) fail("internal: dsyevd did not converge (info " + std::to_string(info) + ")");
    // LAPACK returns ascending eigenvalues and column-major eigenvectors (column j ↔ w[j]): reverse both.
    sp.s2.resize(size_t(n));
    for (int64_t j = 0; j < n; ++j) {
        const double v = w[size_t(n - 1 - j)];
        sp.s2[size_t(j)] = clamp ? std::max(0.0, v) : v;
    }
    if (want_vectors) {
        sp.vectors.resize(n, n);
        for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < n; ++i) sp.vectors(i, j) = a[size_t((n - 1 - j) * n + i)];
    }
    return sp;
}

std::vector<double> gram(const float* w, int64_t rows, int64_t cols, bool of_columns) {
    std::vector<double> wd(w, w + rows * cols);
    const int64_t n = of_columns ? cols : rows, k = of_columns ? rows : cols;
    std::vector<double> g(size_t(n * n), 0.0);
    cblas_dsyrk(CblasRowMajor, CblasUpper, of_columns ? CblasTrans : CblasNoTrans, int(n), int(k), 1.0, wd.data(), int(cols), 0.0,
                g.data(), int(n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) g[size_t(i * n + j)] = g[size_t(j * n + i)];
    return g;
}

Spectrum right_singular(const float* w, int64_t rows, int64_t cols) { return symmetric_eig(gram(w, rows, cols, true), cols, true); }
Spectrum left_singular(const float* w, int64_t rows, int64_t cols) { return symmetric_eig(gram(w, rows, cols, false), rows, true); }

ThinSvd thin_svd_of_product(const MatrixD& a, const MatrixD& b) {
    const int64_t d = a.rows(), r = a.cols();
    Eigen::HouseholderQR<MatrixD> qa(a), qb(b);
    const MatrixD Qa = qa.householderQ() * MatrixD::Identity(d, r);
    const MatrixD Qb = qb.householderQ() * MatrixD::Identity(d, r);
    const MatrixD Ra = qa.matrixQR().topRows(r).triangularView<Eigen::Upper>();
    const MatrixD Rb = qb.matrixQR().topRows(r).triangularView<Eigen::Upper>();
    const MatrixD core = Ra * Rb.transpose();
    Eigen::JacobiSVD<MatrixD> svd(core, Eigen::ComputeFullU | Eigen::ComputeFullV);
    ThinSvd t;
    t.s.assign(svd.singularValues().data(), svd.singularValues().data() + r);  // Eigen sorts descending
    t.u = Qa * svd.matrixU();
    t.v = Qb * svd.matrixV();
    return t;
}

double product_kurtosis(const MatrixD& a, const MatrixD& b) {
    const int64_t d = a.rows(), r = a.cols(), db = b.rows();
    CentralMoments cm;
    double total = 0;
    for (int64_t k = 0; k < r; ++k) total += a.col(k).sum() * b.col(k).sum();
    cm.mean = total / (double(d) * double(db));
    // Row blocks of at most ~4 MiB of M: bounded memory at any d.
    const int64_t rb = std::max<int64_t>(1, std::min<int64_t>(d, (1 << 19) / std::max<int64_t>(1, db)));
    std::vector<double> blk(size_t(rb * db));
    const MatrixD at = a.transpose();  // r×d: row block i of A is contiguous columns of Aᵀ
    for (int64_t i0 = 0; i0 < d; i0 += rb) {
        const int64_t n = std::min(rb, d - i0);
        // Column-major blk (db×n) = B · (A[i0:i0+n, :])ᵀ: every entry of M's rows i0 … i0+n−1.
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, int(db), int(n), int(r), 1.0, b.data(), int(db), at.data() + i0 * r, int(r),
                    0.0, blk.data(), int(db));
        cm.add(blk.data(), n * db);
    }
    return cm.kurtosis();
}

}  // namespace planeq::alloc
