// gradcheck.h: gradients from backward() against central differences, in float64.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace ddpm {

struct GradcheckOptions {
    double eps = 1e-6;           // step of the central difference
    uint64_t seed = 1234;        // for the projection g and the element subset
    int64_t max_elements = -1;   // per input; -1 checks every element, else a random subset
};

// Per input: the worst |analytic - numeric| over the checked elements, and that
// error relative to the largest numeric gradient magnitude of the input
// (a norm-wise relative error, which does not blow up on near-zero entries).
struct GradcheckResult {
    std::vector<double> max_abs_error;
    std::vector<double> max_rel_error;
    std::vector<int64_t> checked;
    double worst_rel() const;
    std::string report() const;  // one line per input
};

// Checks f at `inputs` (float64) through the scalar L = sum(f(x) * g) with a
// fixed random g, so that sign and transpose errors cannot cancel the way they
// can in sum(f(x)). f must be deterministic (reseed any generator it uses).
using GradcheckFn = std::function<Variable(const std::vector<Variable>&)>;
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt = {});

// The same for a computation f() that reads `leaves` itself (a module's
// parameters and its input): each leaf is perturbed in place and restored.
// The leaves' gradients are overwritten.
GradcheckResult gradcheck_leaves(const std::function<Variable()>& f, const std::vector<Variable>& leaves,
                                 const GradcheckOptions& opt = {});

}  // namespace ddpm
