// NSDS — Numerical and Structural Dual-Sensitivity, data-free layer scores (/shared/methods/NSDS.md).
// Reads weights only. Each block is split into five component types: QK and OV circuits per head (GQA
// mapping kv(h) = ⌊h/(n_h/n_kv)⌋), up, gate, down. Each gets a numerical score NV (excess kurtosis of its
// entries) and a structural score SE (99%-energy spectrum reweighted by role, over its effective rank);
// both are MAD-sigmoid normalised across layers, Soft-OR'd per layer (over the component types present),
// and fused: NSDS_l = 1 − √((1 − NV_l)(1 − SE_l)). Higher = more sensitive.
//
// The two bugs of the authors' code that the spec names are fixed here: the writers' weight α_i is the
// norm of P_Uᵀu_i per singular vector for down_proj too (the code takes it along the other axis), and
// Soft-OR averages the logs per layer (the code averages over the whole [components × layers] array,
// which gives one scalar for every layer).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "alloc/spectral.hpp"
#include "model/model.hpp"

namespace planeq::alloc {

enum Component { kQK = 0, kOV, kUp, kGate, kDown, kComponents };
const char* component_name(int c);  // "qk", "ov", "up", "gate", "down"

struct NsdsLayer {
    std::array<double, kComponents> raw_nv{}, raw_se{};  // raw scores (QK, OV: mean over heads)
    std::array<double, kComponents> s_nv{}, s_se{};  // after MAD-sigmoid across layers
    double nv = 0, se = 0, nsds = 0;                 // Soft-OR per layer, fused
};

struct NsdsResult {
    std::vector<NsdsLayer> layers;
    std::array<bool, kComponents> present{};  // component types the model has (and that have non-zero scores)
    int64_t k_unembed = 0;                    // k_U: energy rank of the unembedding
    std::vector<int64_t> ranking;             // layers by NSDS descending, ties: lower index first
    double seconds = 0;
    // Score of one component of one layer (module granularity; our extension: the component's own
    // s_NV and s_SE fused like step 7). q/k map to QK, v/o to OV.
    double component_score(int64_t layer, Component c) const;
};

// Roles' weights α_i (NSDS.md §4 step 3) and the structural score (step 4), exposed for tests.
double detector_alpha(const Eigen::Ref<const Eigen::VectorXd>& v);                                         // up, gate
double qk_alpha(const Eigen::Ref<const Eigen::VectorXd>& u, const Eigen::Ref<const Eigen::VectorXd>& v);  // QK
double writer_alpha(const MatrixD& p_u, const Eigen::Ref<const Eigen::VectorXd>& u);                      // down, OV
double structural_score(const std::vector<double>& s, const std::vector<double>& alpha);

NsdsResult nsds_scores(const Model& m);

}  // namespace planeq::alloc
