// elementwise.h: element-wise ops with NumPy broadcasting.
//
// Shapes are aligned on the right; a dimension of size 1 (or a missing one)
// stretches to match the other operand: [64,32,28,28] + [1,32,1,1] is a
// per-channel bias. The result always has the dtype of the inputs, which must agree.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// The broadcast shape of a and b, or a TensorError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
// Comparisons give 1 or 0 in the dtype of the inputs.
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
// where(cond, a, b)[i] = cond[i] != 0 ? a[i] : b[i], all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

Tensor add_scalar(const Tensor& x, double s);
Tensor mul_scalar(const Tensor& x, double s);
Tensor pow_scalar(const Tensor& x, double p);  // x^p
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);  // 1 / (1 + e^-x)
Tensor silu(const Tensor& x);     // x * sigmoid(x)
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);     // -1, 0 or 1
Tensor erf(const Tensor& x);      // (2/sqrt(pi)) int_0^x e^{-s^2} ds
Tensor clamp(const Tensor& x, double lo, double hi);

// d/dx silu(x) * dy = dy * s * (1 + x (1 - s)), s = sigmoid(x).
Tensor silu_backward(const Tensor& x, const Tensor& dy);

// x copied out to `shape`, which x broadcasts to.
Tensor expand(const Tensor& x, const Shape& shape);

// Arithmetic operators, so that a formula on tensors reads as written
// (no autograd here: those are in autograd/ops.h). Scalars apply to every element.
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add_scalar(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return add_scalar(neg(a), s); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul_scalar(a, 1.0 / s); }

// In place: dst += src (src broadcasts to dst), dst += alpha * src (same numel), dst *= s.
void add_(Tensor& dst, const Tensor& src);
void axpy_(Tensor& dst, double alpha, const Tensor& src);
void scale_(Tensor& dst, double s);

}  // namespace ddpm
