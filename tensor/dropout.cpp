// dropout.cpp
#include "tensor/dropout.h"

#include <fmt/format.h>

#include "tensor/elementwise.h"

namespace ddpm {

DropoutOut dropout_forward(const Tensor& x, double p, Generator& gen) {
    if (!(p >= 0.0 && p < 1.0)) fail("dropout", fmt::format("p = {} is not in [0, 1)", p));
    Tensor mask = rand(x.shape(), gen, x.dtype());
    const double keep = 1.0 / (1.0 - p);
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* m = mask.data<T>();
        for (int64_t i = 0; i < mask.numel(); ++i) m[i] = m[i] >= p ? static_cast<T>(keep) : T(0);
    });
    return {mul(x, mask), mask};
}

}  // namespace ddpm
