// LieQ — layer-wise information effectiveness (/shared/methods/LIEQ.md): diagnostics that say which
// blocks carry information the others do not, from a little calibration text.
// - Representational compactness RC = e^{−H(λ/Σλ)} of A = ZᵀZ/d_out, Z = the q/k/v projections of block
//   l's normalised input (rows centred and L2-normalised), trained minus random-init (N(0, σ²) weights,
//   σ = initializer_range, norms 1, fixed seeds) — the v2 score.
// - Top-k energy gain: E_k = Σ_{i≤k} λ_i/Σλ, trained minus random.
// - Perplexity drop ΔPPL_l from skipping block l (x_{l+1} = x_l), on calibration segments only (v1).
// v2 (default): score = RCdiff. v1: mean of the three, each min-max normalised over layers (ΔPPL in
// ln-space when its max/min exceeds 10³). Higher = more important = more bits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/model.hpp"

namespace planeq::alloc {

struct LieqOptions {
    bool v1 = false;                       // three diagnostics; false = v2 (RCdiff only)
    int64_t segments = 8, seg_len = 512;   // D_cal: 8 × 512 tokens (LIEQ.md §5)
    uint64_t seed = 0;                     // choice of the D_cal segments
    std::vector<uint64_t> init_seeds = {0, 1, 2};
    int64_t k = 8;                         // energy gain; k = d_h/4 is reported too
    int64_t ppl_segments = 32;             // ΔPPL data (v1): 32 × seg_len tokens
};

struct LieqLayer {
    double rc_trained = 0, rc_random = 0, rc_diff = 0;  // means over q, k, v (random: over seeds too)
    double gain = 0, gain_head = 0;                     // E_k gain at k and at d_h/4
    double dppl = 0;                                    // v1 only
    double score = 0;
};

struct LieqResult {
    std::vector<LieqLayer> layers;
    std::vector<int64_t> ranking;
    double ppl_full = 0;      // v1: calibration PPL of the unmodified model
    bool dppl_log = false;    // v1: ΔPPL was normalised in ln-space
    int64_t tokens = 0, skipped_rows = 0;
    double seconds = 0;
};

// Spectral functions of the eigenvalues of A (clamped at 0): RC = e^{−H}, and E_k.
double compactness(std::span<const double> eig);
double topk_energy(std::span<const double> eig_desc, int64_t k);

// Accumulates A = Σ ẑ ẑᵀ over token rows z (centred, L2-normalised; rows with norm < 1e-12 skipped) in fp64.
struct CompactnessAccumulator {
    explicit CompactnessAccumulator(int64_t dim = 0) : dim(dim), a(size_t(dim * dim), 0.0) {}
    int64_t dim = 0, rows = 0, skipped = 0;
    std::vector<double> a;
    void add(const float* z, int64_t n);
    std::vector<double> eigenvalues() const;  // of A/d_out, descending
};

// A model of the same configuration with HF-default random weights: linears and embeddings N(0, σ²),
// norms 1, no biases. Deterministic in (config, σ, seed).
std::unique_ptr<Model> random_init_model(const ModelConfig& c, double sigma, uint64_t seed);

using AllocProgress = std::function<void(int64_t done, int64_t total, const std::string& note)>;

// calib_ids: the calibration text, tokenized; bos ≥ 0 replaces each segment's first id (BOS models).
LieqResult lieq_scores(const Model& m, std::span<const int32_t> calib_ids, int32_t bos, const LieqOptions& opt,
                       const AllocProgress& progress = {});

}  // namespace planeq::alloc
