// direct_conv.h: 3x3 convolutions (stride 1, padding 1) with a single output channel,
// by the direct sum on a zero-padded copy of each input plane.
//
// With P the plane x[c] inside a border of zeros ((H + 2) x (W + 2)),
//   out[o][y][x] = bias[o] + sum_c sum_{i,j < 3} w[o][c][i][j] P_c[y + i][x + j],
// and laid out along rows of W + 2 (the padded width), every tap (i, j) is one shift
// of the flat index, s = i (W + 2) + j: each output row is one loop of nine
// multiply-adds per element, whatever the border (guide.md §3). The columns x >= W
// of such a row are computed and dropped.
//
// Why: Winograd (winograd.h) shares its input transform among the output channels;
// with one there is nothing to share it with. The U-Net's last convolution on
// Fashion-MNIST, forward and both gradients, 2 threads, a Zen 5 (`bench_conv2d`, 3
// alternating rounds): 32 -> 1 channel at 28x28, batch 64, 0.97 ms against 2.21 ms by
// Winograd; 16 -> 1, batch 32, 0.27 against 0.53. With three (`cifar10`'s 128 -> 3 at
// 32x32) Winograd was the faster, 2.4 ms against 2.9.
#pragma once

#include <cstdint>

namespace ddpm {

// The shapes this file takes: a 3x3 kernel, stride 1, padding 1, one output channel.
inline bool direct_conv_applies(int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t OC) {
    return KH == 3 && KW == 3 && stride == 1 && pad == 1 && OC == 1;
}

// out (B,OC,H,W) = conv3x3(x (B,C,H,W), w (OC,C,3,3)) + bias (OC; with per_image_bias
// (B,OC); or null) + residual (B,OC,H,W, or null).
template <class T>
void direct_conv3x3_forward(const T* x, const T* w, const T* bias, T* out, int64_t B, int64_t C, int64_t H, int64_t W,
                            int64_t OC, bool per_image_bias = false, const T* residual = nullptr);

// dx (B,C,H,W) from dout (B,OC,H,W): the convolution of dout with the kernel flipped
// in space and its channel axes swapped.
template <class T>
void direct_conv3x3_input_grad(const T* dout, const T* w, T* dx, int64_t B, int64_t C, int64_t H, int64_t W,
                               int64_t OC);

// dw (OC,C,3,3) = sum over the batch of sum_{y,x} dout[o][y][x] P_c[y + i][x + j];
// dbias (OC, or null) = the sum of dout over the batch and the plane.
template <class T>
void direct_conv3x3_weight_grad(const T* x, const T* dout, T* dw, T* dbias, int64_t B, int64_t C, int64_t H, int64_t W,
                                int64_t OC);

}  // namespace ddpm
