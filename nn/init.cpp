// init.cpp
#include "nn/init.h"

#include <cmath>

namespace ddpm {

Tensor Initializer::weight(const Shape& shape) {
    DDPM_CHECK(shape.size() >= 2, "init", "a weight needs (out, in, ...) axes, got " + shape_str(shape));
    const double field = static_cast<double>(shape_numel(shape) / (shape[0] * shape[1]));
    const double fan_in = shape[1] * field, fan_out = shape[0] * field;
    const double limit = scheme_ == InitScheme::DDPM ? std::sqrt(3.0 / ((fan_in + fan_out) / 2.0))
                                                     : 1.0 / std::sqrt(fan_in);
    Tensor w(shape, dtype_);
    fill_uniform(w, gen_, -limit, limit);
    return w;
}

Tensor Initializer::bias(int64_t n, int64_t fan_in) {
    if (scheme_ == InitScheme::DDPM) return zeros({n});
    const double limit = 1.0 / std::sqrt(static_cast<double>(fan_in));
    Tensor b({n}, dtype_);
    fill_uniform(b, gen_, -limit, limit);
    return b;
}

Tensor Initializer::normal(const Shape& shape, double std) {
    Tensor w(shape, dtype_);
    fill_normal(w, gen_, 0.0, std);
    return w;
}

}  // namespace ddpm
