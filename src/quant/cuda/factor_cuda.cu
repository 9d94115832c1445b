// Step 0 of GPTQ and BPDQ on the device (quant/gptq.cpp: dead columns, column_permutation, the permuted
// transposed working copy, damped_inverse_cholesky), the lazy-block trailing GEMM, and the small utilities
// of quant_cuda.hpp.
#include <cmath>
#include <string>

#include "quant/cuda/quant_common.cuh"

namespace planeq::cuda {

namespace detail {
void* device_alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess)
        fail("CUDA: cannot allocate " + std::to_string(bytes) + " bytes on the device (" + cudaGetErrorString(e) + ")");
    return p;
}
void device_free(void* p) { cudaFree(p); }
void copy_to_device(void* d, const void* h, size_t bytes) {
    if (bytes) QCK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* h, const void* d, size_t bytes) {
    if (bytes) QCK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
}  // namespace detail

void synchronize() { QCK(cudaDeviceSynchronize()); }

namespace {
__device__ __forceinline__ uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
__global__ void fill_normal_kernel(float* d, size_t n, uint64_t seed, float stddev) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        const uint64_t h = mix64(seed * 0x100000001b3ull ^ mix64(i));
        const float u1 = (float(uint32_t(h >> 40)) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
        const float u2 = float(uint32_t(h & 0xffffffu)) * (1.0f / 16777216.0f);
        d[i] = stddev * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    }
}
}  // namespace

void fill_normal(float* d, size_t n, uint64_t seed, float stddev) {
    fill_normal_kernel<<<2048, 256>>>(d, n, seed, stddev);
    quant::check_launch("fill_normal");
}

namespace quant {

cublasHandle_t blas() {
    thread_local cublasHandle_t h = [] {
        cublasHandle_t x;
        QCB(cublasCreate(&x));
        QCB(cublasSetMathMode(x, CUBLAS_DEFAULT_MATH));
        return x;
    }();
    return h;
}

cusolverDnHandle_t solver() {
    thread_local cusolverDnHandle_t h = [] {
        cusolverDnHandle_t x;
        QCS(cusolverDnCreate(&x));
        return x;
    }();
    return h;
}

namespace {

// diag[i] = H[i][i]
__global__ void diag_kernel(const double* H, int64_t C, double* diag) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < C) diag[i] = H[i * C + i];
}

// Wt[t][r] = dead[c] ? 0 : W[r][c], c = perm[t]. One block row of 32 positions × 32 rows through shared
// memory, so both the read (along c) and the write (along r) are coalesced where perm keeps runs.
__global__ void permute_transpose_kernel(const float* W, int64_t R, int64_t C, const int64_t* perm, const char* dead, float* Wt) {
    __shared__ float tile[32][33];
    const int64_t t0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {  // i: row within the tile, threadIdx.x: position
        const int64_t r = r0 + i, t = t0 + threadIdx.x;
        if (r < R && t < C) {
            const int64_t c = perm[t];
            tile[i][threadIdx.x] = dead[c] ? 0.0f : W[r * C + c];
        }
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {  // i: position within the tile, threadIdx.x: row
        const int64_t t = t0 + i, r = r0 + threadIdx.x;
        if (r < R && t < C) Wt[t * R + r] = tile[threadIdx.x][i];
    }
}

// Hp[i][j] = Hd[perm[i]][perm[j]], Hd = H with zero diagonals set to 1 (dead columns).
__global__ void permute_hessian_kernel(const double* H, int64_t C, const int64_t* perm, double* Hp) {
    const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, i = blockIdx.y;
    if (j >= C) return;
    const int64_t pi = perm[i], pj = perm[j];
    double h = H[pi * C + pj];
    if (pi == pj && h == 0.0) h = 1.0;
    Hp[i * C + j] = h;
}

__global__ void count_nonfinite_kernel(const double* A, size_t n, unsigned* count) {
    unsigned local = 0;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
        local += isfinite(A[i]) ? 0u : 1u;
    if (local) atomicAdd(count, local);
}

__global__ void add_diag_kernel(double* A, int64_t n, double v) {
    const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (i < n) A[i * n + i] += v;
}

// Row-major: zero the strict lower triangle (zero = true) or copy the upper into it (mirror).
__global__ void lower_kernel(double* A, int64_t n, bool zero) {
    const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, i = blockIdx.y;
    if (j < i) A[i * n + j] = zero ? 0.0 : A[j * n + i];
}

__global__ void to_f32_kernel(const double* a, size_t n, float* out) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) out[i] = float(a[i]);
}

// LAPACK and cuSOLVER are column-major: their lower triangle is our row-major upper one, as in quant/linalg.cpp.
struct Factorizer {
    int64_t n;
    DeviceArray<double> work;
    DeviceArray<int> info;
    explicit Factorizer(int64_t n_) : n(n_), info(1) {
        int l1 = 0, l2 = 0;
        QCS(cusolverDnDpotrf_bufferSize(solver(), CUBLAS_FILL_MODE_LOWER, int(n), nullptr, int(n), &l1));
        QCS(cusolverDnDpotri_bufferSize(solver(), CUBLAS_FILL_MODE_LOWER, int(n), nullptr, int(n), &l2));
        work.resize(size_t(std::max(std::max(l1, l2), 1)));
    }
    int status() {
        int h = 0;
        info.download(&h, 1);
        return h;
    }
    bool cholesky_upper(double* a) {  // quant/linalg.cpp cholesky_upper
        QCS(cusolverDnDpotrf(solver(), CUBLAS_FILL_MODE_LOWER, int(n), a, int(n), work.data(), int(work.size()), info.data()));
        const int st = status();
        if (st < 0) fail("internal: cusolverDnDpotrf argument " + std::to_string(-st) + " invalid");
        if (st > 0) return false;
        lower_kernel<<<dim3(blocks_for(n, 256), unsigned(n)), 256>>>(a, n, true);
        check_launch("zero lower");
        return true;
    }
    void inverse_from_cholesky(double* u) {  // quant/linalg.cpp inverse_from_cholesky
        QCS(cusolverDnDpotri(solver(), CUBLAS_FILL_MODE_LOWER, int(n), u, int(n), work.data(), int(work.size()), info.data()));
        const int st = status();
        if (st != 0) fail("internal: cusolverDnDpotri failed (info " + std::to_string(st) + ")");
        lower_kernel<<<dim3(blocks_for(n, 256), unsigned(n)), 256>>>(u, n, false);
        check_launch("mirror");
    }
};

}  // namespace

PreparedLayer prepare_layer(const float* dW, int64_t R, int64_t C, const double* dH, int64_t group, ColumnOrder order, bool factor,
                            double damp, bool keep_f64, std::vector<std::string>& log, const std::string& what) {
    PreparedLayer P;
    // Dead inputs (H_ii = 0): weights zeroed, diagonal set to 1 (quant/gptq.cpp).
    std::vector<double> diag(static_cast<size_t>(C), 1.0);
    P.dead.assign(size_t(C), 0);
    if (dH) {
        DeviceArray<double> dd{size_t(C)};
        diag_kernel<<<blocks_for(C, 256), 256>>>(dH, C, dd.data());
        check_launch("diag");
        dd.download(diag.data(), size_t(C));
        for (int64_t i = 0; i < C; ++i)
            if (diag[size_t(i)] == 0.0) diag[size_t(i)] = 1.0, P.dead[size_t(i)] = 1;
    }
    P.perm = column_permutation(diag, group, order);
    P.dperm.resize(size_t(C));
    P.dperm.upload(P.perm.data(), size_t(C));
    DeviceArray<char> ddead{size_t(C)};
    ddead.upload(P.dead.data(), size_t(C));
    P.Wt.resize(size_t(C * R));
    permute_transpose_kernel<<<dim3(blocks_for(C, 32), blocks_for(R, 32)), dim3(32, 8)>>>(dW, R, C, P.dperm.data(), ddead.data(), P.Wt.data());
    check_launch("permute W");
    if (!factor) return P;
    if (!dH) fail("internal: this configuration needs a Hessian");

    // damped_inverse_cholesky on the permuted Hessian: mean and max of its diagonal in the CPU's order.
    DeviceArray<double> Hp(size_t(C * C));
    permute_hessian_kernel<<<dim3(blocks_for(C, 256), unsigned(C)), 256>>>(dH, C, P.dperm.data(), Hp.data());
    check_launch("permute H");
    double mean_diag = 0, max_diag = 0;
    for (int64_t i = 0; i < C; ++i) {
        const double h = diag[size_t(P.perm[size_t(i)])];
        mean_diag += h;
        max_diag = std::max(max_diag, std::abs(h));
    }
    mean_diag /= double(C);
    {
        DeviceArray<unsigned> bad(1);
        QCK(cudaMemset(bad.data(), 0, sizeof(unsigned)));
        count_nonfinite_kernel<<<1024, 256>>>(Hp.data(), size_t(C * C), bad.data());
        check_launch("finite check");
        unsigned nb = 0;
        bad.download(&nb, 1);
        if (nb) fail(what + ": the Hessian has non-finite entries (activations overflowed?)");
    }
    Factorizer F(C);
    P.Ud.resize(size_t(C * C));
    double* U = P.Ud.data();
    auto attempt = [&](double rel, double floor) {
        QCK(cudaMemcpy(U, Hp.data(), size_t(C * C) * sizeof(double), cudaMemcpyDeviceToDevice));
        add_diag_kernel<<<blocks_for(C, 256), 256>>>(U, C, rel * mean_diag + floor);
        check_launch("damp");
        if (!F.cholesky_upper(U)) return false;
        F.inverse_from_cholesky(U);
        return F.cholesky_upper(U);
    };
    bool ok = false;
    double rel = damp;
    for (int k = 0; k <= 10 && !ok; ++k, rel += 0.01) {
        if (attempt(rel, 0.0)) {
            ok = true;
            P.damp_used = rel;
            break;
        }
        log.push_back(what + ": Cholesky failed at damping " + std::to_string(rel) + ", retrying");
    }
    if (!ok) {
        rel -= 0.01;
        for (int k = 0; k < 3 && !ok; ++k) {
            const double floor = 1e-6 * max_diag * std::pow(10.0, k);
            if (attempt(rel, floor)) {
                log.push_back(what + ": succeeded with diagonal floor " + std::to_string(floor));
                ok = true;
                P.damp_used = rel;
            }
        }
    }
    if (!ok) fail(what + ": the Hessian is not positive definite even with damping " + std::to_string(rel) + " and a diagonal floor");
    P.U.resize(size_t(C * C));
    to_f32_kernel<<<2048, 256>>>(U, size_t(C * C), P.U.data());
    check_launch("U to f32");
    if (!keep_f64) P.Ud = DeviceArray<double>();
    return P;
}

void trailing_update(float* Wt, const float* negerr, const float* U, int64_t R, int64_t C, int64_t i1, int64_t i2) {
    if (i2 >= C) return;
    // Column-major view: Wt is R × C (ld R), negerr R × B (ld R); U[i][j] is element (j, i) of a C × C
    // column-major matrix, so U[i1 + b][i2 + j] = op(B)(b, j) with op = T, B at U + i1·C + i2 (ld C).
    const float one = 1.0f;
    QCB(cublasSgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_T, int(R), int(C - i2), int(i2 - i1), &one, negerr, int(R), U + i1 * C + i2, int(C), &one,
                    Wt + i2 * R, int(R)));
}

}  // namespace quant
}  // namespace planeq::cuda
