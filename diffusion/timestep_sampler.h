// timestep_sampler.h: how t is drawn for each training image.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "tensor/random.h"

namespace ddpm {

// Draws t with probabilities p_t and returns the importance weights 1 / (T p_t),
// so that mean(weights * loss) is an unbiased estimate of the uniform-t loss.
// guide.md §12: p_t proportional to the RMS of recent losses, weights 1 / (T p_t).
// Stratified: uniform p_t, but the batch's B draws u_b = frac(u_0 + b / B) share one
// random offset u_0, so each of B equal slices of [0, T) holds exactly one t (the
// low-discrepancy sampler of Kingma et al. 2021, VDM, appendix); each u_b alone is
// still uniform, so the loss stays unbiased, with less variance (guide.md §9).
class TimestepSampler {
public:
    enum class Kind { Uniform, Importance, Stratified };
    TimestepSampler(Kind kind, int64_t T);
    static Kind parse(const std::string& name);  // "uniform" | "importance" | "stratified"
    static const char* name(Kind kind);

    struct Draw {
        Tensor t, weights;  // (B) each
    };
    Draw sample(int64_t batch, Generator& gen, DType dtype) const;
    std::vector<double> probabilities() const;

    // Importance sampling (improved-diffusion's LossSecondMomentResampler): p_t is
    // proportional to sqrt(E[L_t^2]) over the last 10 losses seen at t, mixed with
    // 0.001 of the uniform; uniform until every t has 10 losses.
    void update(const Tensor& t, const Tensor& losses);

    nlohmann::json state() const;  // the loss history, for checkpoints
    void load_state(const nlohmann::json& j);

private:
    void probabilities_into(std::vector<double>& p) const;
    void reserve_history();

    Kind kind_;
    int64_t T_;
    static constexpr int kHistory = 10;
    std::vector<std::vector<double>> history_;  // per t, the last kHistory losses
    mutable std::vector<double> probs_, cdf_;   // sample()'s work space, kept between calls
};

}  // namespace ddpm
