// llama.cpp's CPU GEMV (ggml's MUL_MAT at n = 1) timed the way planeq_bench_kernels times ours: every
// multiplication reads a weight no cache holds. ggml's own `test-backend-ops perf` repeats one weight, and a
// 4096 × 14336 Q3_K weight (25 MB) stays largely in a 32 MB L3 between its runs, which a decode never sees.
// Here one graph multiplies one x by copies of the weight totalling ≥ 512 MiB, one after another, as a decode
// step walks its layers; the time per multiplication is the graph's over the copies (ggml's per-node barrier
// included, as our per-GEMV fork/join is). Between repetitions, a 256 MiB read-only sum samples the read
// bandwidth, so each repetition also reports its fraction of the read bandwidth next to it.
//
// Built and run by scripts/ggml-cold-gemv.sh against a ggml checkout; not part of the planeq build (ggml is not
// a Debian 12 package).
//
//   ggml_cold_gemv TYPE ROWS COLS [THREADS=2] [REPS=5]     e.g. ggml_cold_gemv q3_K 4096 14336
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void* a, const void* b) {
    const double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// Seconds to sum n doubles (a multiple of 4) with `threads` threads: planeq's bandwidth probe (core/bandwidth.cpp).
static double timed_read(const double* p, size_t n, int threads) {
    static volatile double sink;  // keeps the sums alive
    const double t0 = now_s();
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains, so the adds never limit a core
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s0, s1, s2, s3)
    for (size_t i = 0; i < n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    const double t = now_s() - t0;
    sink = s0 + s1 + s2 + s3;
    return t;
}

// A standard normal deviate from a fixed xorshift stream (Box–Muller): the same weights every run.
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform01(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static float normal(void) { return (float)(sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01())); }

int main(int argc, char** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s TYPE ROWS COLS [THREADS=2] [REPS=5]   (TYPE: a ggml type name, e.g. q3_K)\n", argv[0]);
        return 2;
    }
    enum ggml_type type = GGML_TYPE_COUNT;
    for (int t = 0; t < GGML_TYPE_COUNT; ++t)
        if (ggml_type_name((enum ggml_type)t) && strcmp(ggml_type_name((enum ggml_type)t), argv[1]) == 0) type = (enum ggml_type)t;
    const int64_t rows = atoll(argv[2]), cols = atoll(argv[3]);
    const int threads = argc > 4 ? atoi(argv[4]) : 2, reps = argc > 5 ? atoi(argv[5]) : 5;
    if (type == GGML_TYPE_COUNT || rows <= 0 || cols <= 0 || threads <= 0 || reps <= 0 || cols % ggml_blck_size(type) != 0) {
        fprintf(stderr, "%s: bad arguments (unknown type '%s', or COLS not a multiple of its block)\n", argv[0], argv[1]);
        return 2;
    }
    const size_t wbytes = ggml_row_size(type, cols) * (size_t)rows;
    const size_t copies = (((size_t)512 << 20) + wbytes - 1) / wbytes < 2 ? 2 : (((size_t)512 << 20) + wbytes - 1) / wbytes;

    struct ggml_init_params ip = {copies * (wbytes + 4096) + (size_t)(cols + copies * rows) * 4 + ((size_t)64 << 20), NULL, false};
    struct ggml_context* ctx = ggml_init(ip);
    if (!ctx) {
        fprintf(stderr, "%s: ggml_init failed (%zu bytes)\n", argv[0], ip.mem_size);
        return 1;
    }
    // One weight quantized from N(0, 0.02), copied: every copy is the same bytes at a different address.
    float* f = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; ++i) f[i] = 0.02f * normal();
    struct ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cols, 1);
    for (int64_t i = 0; i < cols; ++i) ((float*)x->data)[i] = normal();
    struct ggml_cgraph* gf = ggml_new_graph(ctx);
    const void* first = NULL;
    for (size_t c = 0; c < copies; ++c) {
        struct ggml_tensor* w = ggml_new_tensor_2d(ctx, type, cols, rows);
        if (c == 0) ggml_quantize_chunk(type, f, w->data, 0, rows, cols, NULL), first = w->data;
        else memcpy(w->data, first, wbytes);
        ggml_build_forward_expand(gf, ggml_mul_mat(ctx, w, x));
    }
    free(f);

    const size_t probe_n = ((size_t)256 << 20) / sizeof(double);
    double* probe = malloc(probe_n * sizeof(double));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < probe_n; ++i) probe[i] = (double)(i & 1023);

    ggml_graph_compute_with_ctx(ctx, gf, threads);  // warm-up: page mappings, the thread pool's first start
    double* us = malloc((size_t)reps * sizeof(double));
    double* frac = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; ++r) {
        const double read_gbs = (double)(probe_n * sizeof(double)) / timed_read(probe, probe_n, threads) / 1e9;
        const double t0 = now_s();
        ggml_graph_compute_with_ctx(ctx, gf, threads);
        const double per = (now_s() - t0) / (double)copies;
        us[r] = 1e6 * per;
        frac[r] = (double)wbytes / per / 1e9 / read_gbs;
    }
    qsort(us, (size_t)reps, sizeof(double), cmp_double);
    qsort(frac, (size_t)reps, sizeof(double), cmp_double);
    const double med = us[reps / 2];
    printf("ggml %s %lldx%lld, %d threads, %zu copies (%.1f MiB each, %.4f bpw): median %.0f us per GEMV (min %.0f, max %.0f), "
           "%.2f GB/s, read_frac %.3f\n",
           ggml_type_name(type), (long long)rows, (long long)cols, threads, copies, (double)wbytes / 1048576.0,
           8.0 * (double)wbytes / (double)(rows * cols), med, us[0], us[reps - 1], (double)wbytes / med / 1e3, frac[reps / 2]);
    free(us), free(frac), free(probe);
    ggml_free(ctx);
    return 0;
}
