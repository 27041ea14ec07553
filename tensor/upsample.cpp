// upsample.cpp: one task per (image, channel) plane.
#include "tensor/upsample.h"

#include "tensor/parallel.h"

namespace ddpm {

Tensor upsample_nearest2x(const Tensor& x) {
    DDPM_CHECK(x.dim() == 4, "upsample_nearest2x", "input " + x.describe() + " is not (B,C,H,W)");
    const int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
    Tensor y({x.size(0), x.size(1), 2 * H, 2 * W}, x.dtype());
    dispatch(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = y.data<T>();
        parallel_for(P, std::max<int64_t>(1, kGrainElementwise / (4 * H * W)), [&](int64_t p) {
            const T* src = px + p * H * W;
            T* dst = py + p * 4 * H * W;
            for (int64_t h = 0; h < H; ++h) {
                T* r0 = dst + (2 * h) * 2 * W;
                for (int64_t w = 0; w < W; ++w) r0[2 * w] = r0[2 * w + 1] = src[h * W + w];
                std::copy(r0, r0 + 2 * W, r0 + 2 * W);
            }
        });
    });
    return y;
}

Tensor upsample_nearest2x_backward(const Tensor& dy) {
    DDPM_CHECK(dy.dim() == 4 && dy.size(2) % 2 == 0 && dy.size(3) % 2 == 0, "upsample_nearest2x_backward",
          "dy " + dy.describe() + " is not (B,C,2H,2W)");
    const int64_t P = dy.size(0) * dy.size(1), H = dy.size(2) / 2, W = dy.size(3) / 2;
    Tensor dx({dy.size(0), dy.size(1), H, W}, dy.dtype());
    dispatch(dy.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pd = dy.data<T>();
        T* px = dx.data<T>();
        parallel_for(P, std::max<int64_t>(1, kGrainElementwise / (4 * H * W)), [&](int64_t p) {
            const T* src = pd + p * 4 * H * W;
            T* dst = px + p * H * W;
            for (int64_t h = 0; h < H; ++h) {
                const T* r0 = src + (2 * h) * 2 * W;
                const T* r1 = r0 + 2 * W;
                for (int64_t w = 0; w < W; ++w)
                    dst[h * W + w] = r0[2 * w] + r0[2 * w + 1] + r1[2 * w] + r1[2 * w + 1];
            }
        });
    });
    return dx;
}

}  // namespace ddpm
