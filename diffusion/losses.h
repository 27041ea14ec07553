// losses.h: the pieces of the variational bound, in nats (see vlb.h for bits/dim).
#pragma once

#include "autograd/variable.h"

namespace ddpm {

// KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) per element:
//   0.5 (-1 + logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^-logvar2).
Variable normal_kl(const Variable& mean1, const Variable& logvar1, const Variable& mean2, const Variable& logvar2);

// Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF (exact, through erf).
Variable standard_normal_cdf(const Variable& x);

// log p(x) per element for data x on the 256 levels k/127.5 - 1, under a Gaussian
// with `means` and log standard deviations `log_scales` discretised into bins of
// half-width 1/255: log(Phi(x + 1/255) - Phi(x - 1/255)) in standardised units, with
// the edge bins open (x = -1 takes all mass below, x = 1 all mass above) and each
// probability floored at 1e-12 before the log.
Variable discretized_gaussian_log_likelihood(const Tensor& x, const Variable& means, const Variable& log_scales);

// Mean over every axis but the first: (B, ...) -> (B).
Variable mean_flat(const Variable& x);

}  // namespace ddpm
