// losses.cpp
#include "diffusion/losses.h"

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "tensor/elementwise.h"

namespace ddpm {

// guide.md §8: KL of two Gaussians, the L_{t-1} terms.
Variable normal_kl(const Variable& mean1, const Variable& logvar1, const Variable& mean2, const Variable& logvar2) {
    Variable d = mean1 - mean2;
    return (logvar2 - logvar1 + exp(logvar1 - logvar2) + d * d * exp(-logvar2) - 1.0) * 0.5;
}

Variable standard_normal_cdf(const Variable& x) { return (erf(x * (1.0 / std::sqrt(2.0))) + 1.0) * 0.5; }

// guide.md §8: L_0: the decoder integrated over each pixel bin.
Variable discretized_gaussian_log_likelihood(const Tensor& x, const Variable& means, const Variable& log_scales) {
    const double half_bin = 1.0 / 255.0, floor = 1e-12, kInf = std::numeric_limits<double>::infinity();
    Variable centered = Variable(x) - means;
    Variable inv_stdv = exp(-log_scales);
    Variable cdf_plus = standard_normal_cdf(inv_stdv * (centered + half_bin));
    Variable cdf_min = standard_normal_cdf(inv_stdv * (centered - half_bin));
    Variable log_cdf_plus = log(clamp(cdf_plus, floor, kInf));                       // bin (-inf, x + 1/255]
    Variable log_one_minus_cdf_min = log(clamp(cdf_min * -1.0 + 1.0, floor, kInf));  // bin [x - 1/255, inf)
    Variable log_cdf_delta = log(clamp(cdf_plus - cdf_min, floor, kInf));
    const DType dt = x.dtype();
    Tensor low = lt(x, Tensor::scalar(-0.999, dt)), high = gt(x, Tensor::scalar(0.999, dt));
    return where(low, log_cdf_plus, where(high, log_one_minus_cdf_min, log_cdf_delta));
}

// guide.md §9: the mean over every axis but the first: one number per image (L_simple is a mean over pixels).
Variable mean_flat(const Variable& x) {
    Axes axes;
    for (int64_t a = 1; a < x.dim(); ++a) axes.push_back(a);
    return axes.empty() ? x : mean(x, axes);
}

}  // namespace ddpm
