// dropout.cpp
#include "tensor/dropout.h"

#include <fmt/format.h>

#include "tensor/parallel.h"
#include "tensor/random.h"

namespace ddpm {

DropoutOut dropout_forward(const Tensor& x, double p, Generator& gen) {
    if (!(p >= 0.0 && p < 1.0)) fail("dropout", fmt::format("p = {} is not in [0, 1)", p));
    Tensor mask = rand(x.shape(), gen, x.dtype());
    Tensor out(x.shape(), x.dtype());
    const double keep = 1.0 / (1.0 - p);
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* m = mask.data<T>();
        const T* px = x.data<T>();
        T* po = out.data<T>();
        const T threshold = static_cast<T>(p), scale = static_cast<T>(keep);
        // The mask (0 or 1/(1-p), kept for backward) and the output in one parallel pass.
        parallel_range(mask.numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
#pragma omp simd
            for (int64_t i = lo; i < hi; ++i) {
                m[i] = m[i] >= threshold ? scale : T(0);
                po[i] = px[i] * m[i];
            }
        });
    });
    return {out, mask};
}

}  // namespace ddpm
