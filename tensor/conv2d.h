// conv2d.h: 2-D convolution (cross-correlation, as in PyTorch) as im2col + GEMM.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// x is (B,C,H,W), weight is (OC,C,KH,KW), bias is (OC), (B,OC) (a bias per
// image: the U-Net's timestep embedding, added with no pass of its own) or
// undefined; returns (B,OC,OH,OW) with OH = (H + 2*pad - KH) / stride + 1,
// plus `residual` (that shape) if defined: a residual connection added as the
// output is written.
Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t pad,
                      const Tensor& residual = Tensor());

// Gradients of conv2d_forward given dout (B,OC,OH,OW); only the requested ones
// are computed (the others are left undefined).
struct Conv2dGrads {
    Tensor dx, dweight, dbias;
};
Conv2dGrads conv2d_backward(const Tensor& dout, const Tensor& x, const Tensor& weight, int64_t stride,
                            int64_t pad, bool need_dx, bool need_dweight, bool need_dbias);

// Seven nested loops, no BLAS: the reference the tests hold the fast path to.
// Every 3x3 convolution with stride 1 and padding 1 takes the Winograd path
// (winograd.h), every other one im2col + GEMM; both are held to these.
Tensor conv2d_reference(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
                        int64_t pad);
// All three gradients by the same loops, summed in double.
Conv2dGrads conv2d_backward_reference(const Tensor& dout, const Tensor& x, const Tensor& weight, int64_t stride,
                                      int64_t pad);

}  // namespace ddpm
