// winograd.h: 3x3 convolutions (stride 1, padding 1) by Winograd's minimal
// filtering F(4x4, 3x3), forward and both gradients.
//
// A 4x4 output tile needs a 6x6 input patch d. With the constant matrices
// B (6x6), G (6x3) and A (6x4) of Lavin & Gray (2016),
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A,
// which costs 36 multiplications per channel pair instead of the 144 of the
// direct sum. Over a batch, the element-wise product at each of the 36
// positions xi of the 6x6 grid becomes one matrix product over channels:
//   M[xi] (OC x tiles) = U[xi] (OC x C) V[xi] (C x tiles),
// so the work is still done by GEMMs, on a quarter of the arithmetic.
#pragma once

#include <cstdint>

namespace ddpm {

// The shapes this file handles: a 3x3 kernel, stride 1, padding 1. With very
// few input channels (the U-Net's first convolution) the input transform costs
// more than it saves, and im2col + GEMM is faster (measured: 1 -> 32 channels at
// 28x28, 0.3 ms against 2.0 ms); a single output channel is still faster here.
inline bool winograd_applies(int64_t KH, int64_t KW, int64_t stride, int64_t pad, int64_t C) {
    return KH == 3 && KW == 3 && stride == 1 && pad == 1 && C >= 4;
}

// While a KernelTransformCache is alive, the Winograd convolutions keep each
// weight's transformed kernels U (36 values for its 9: four times the weight's
// bytes) and use them again on the next call with the same weight, rather than
// transform it every time: for sampling and evaluation, which run the same
// weights through hundreds of forwards. (`cifar10`, batch 16, 2 threads, a Zen 5:
// the transforms were 8% of a forward, writing 0.5 GB; `small` 1.6%.) Kept
// transforms are found by the weight's address and shape, so the promise is the
// owner's: a weight used while one is alive is neither changed nor freed before
// the last one ends, and none ends during a convolution on another thread. Scopes
// may nest; the kept transforms are dropped when the last one ends.
class KernelTransformCache {
public:
    KernelTransformCache();
    ~KernelTransformCache();
    KernelTransformCache(const KernelTransformCache&) = delete;
    KernelTransformCache& operator=(const KernelTransformCache&) = delete;
};

// The kernel transforms made so far by all convolutions, kept or not (for tests).
int64_t winograd_kernel_transforms();

// The tiles per block of a forward on `threads` threads: the N of its GEMMs
// M[xi] = U[xi] V[xi] (OC x C times C x N). Exposed for the benchmarks.
int64_t winograd_block_tiles(int64_t B, int64_t C, int64_t H, int64_t W, int64_t OC, int threads);

// out (B,OC,H,W) = conv3x3(x (B,C,H,W), w (OC,C,3,3)) + bias (OC, or null;
// with per_image_bias (B,OC): one bias per image and output channel)
// + residual (B,OC,H,W, or null), added as each output tile is written.
// How a Winograd convolution shares its work among threads: by blocks of
// tiles, each thread transforming and multiplying its own (the weight gradient
// adding into its own slice of dU); or by xi, all threads on one large block at
// a time, the transforms shared by lane groups and the products by xi (for wide
// layers, whose U or dU is several times a core's L2 and would otherwise cross
// memory for every small block); or by channels, for a wide layer of few tiles: V
// made once for all tiles, then each thread takes pieces of the output channels,
// making their rows of U (or adding up their rows of dU), products and output tiles
// (or rows of dw), so U and dU are never written out (the weight gradient goes by xi
// instead where its tiles take more than one block). Auto picks by those sizes.
enum class WinogradPlan { Auto, ByBlocks, ByXi, ByChannels };

template <class T>
void winograd_conv3x3_forward(const T* x, const T* w, const T* bias, T* out, int64_t B, int64_t C, int64_t H,
                              int64_t W, int64_t OC, bool per_image_bias = false, const T* residual = nullptr,
                              WinogradPlan plan = WinogradPlan::Auto);

// dx (B,C,H,W) from dout (B,OC,H,W): the same convolution of dout with the
// kernel flipped in space and its two channel axes swapped.
template <class T>
void winograd_conv3x3_input_grad(const T* dout, const T* w, T* dx, int64_t B, int64_t C, int64_t H, int64_t W,
                                 int64_t OC, WinogradPlan plan = WinogradPlan::Auto);

// dw (OC,C,3,3) = sum over the batch of dout (B,OC,H,W) correlated with x (B,C,H,W),
// accumulated in the Winograd domain: dU[xi] = dM[xi] V[xi]^T, dw = G^T dU G.
// dbias (OC, or null) = the sum of dout over the batch and the plane.
template <class T>
void winograd_conv3x3_weight_grad(const T* x, const T* dout, T* dw, T* dbias, int64_t B, int64_t C, int64_t H,
                                  int64_t W, int64_t OC, WinogradPlan plan = WinogradPlan::Auto);

}  // namespace ddpm
