// ops.h: differentiable ops on Variables.
//
// Each op is one function whose body computes the forward with a tensor/
// kernel and records, right beside it, the rule that maps the gradient of its
// result to gradients of its inputs. Broadcast inputs get their gradient summed
// back to their own shape (sum_to).
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "tensor/random.h"

namespace ddpm {

// Element-wise (ops_elementwise.cpp), with NumPy broadcasting for the binary ones.
Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable div(const Variable& a, const Variable& b);
Variable add_scalar(const Variable& x, double s);
Variable mul_scalar(const Variable& x, double s);
Variable pow(const Variable& x, double p);
Variable neg(const Variable& x);
Variable exp(const Variable& x);
Variable log(const Variable& x);
Variable sqrt(const Variable& x);
Variable tanh(const Variable& x);
Variable sigmoid(const Variable& x);
Variable silu(const Variable& x);
Variable abs(const Variable& x);
Variable erf(const Variable& x);
// min(max(x, lo), hi); the gradient passes where lo < x < hi.
Variable clamp(const Variable& x, double lo, double hi);
// cond is a 0/1 tensor (e.g. from gt()); no gradient flows into it.
Variable where(const Tensor& cond, const Variable& a, const Variable& b);

inline Variable operator+(const Variable& a, const Variable& b) { return add(a, b); }
inline Variable operator-(const Variable& a, const Variable& b) { return sub(a, b); }
inline Variable operator*(const Variable& a, const Variable& b) { return mul(a, b); }
inline Variable operator/(const Variable& a, const Variable& b) { return div(a, b); }
inline Variable operator-(const Variable& a) { return neg(a); }
inline Variable operator+(const Variable& a, double s) { return add_scalar(a, s); }
inline Variable operator-(const Variable& a, double s) { return add_scalar(a, -s); }
inline Variable operator*(const Variable& a, double s) { return mul_scalar(a, s); }
inline Variable operator*(double s, const Variable& a) { return mul_scalar(a, s); }
inline Variable operator+(double s, const Variable& a) { return add_scalar(a, s); }
inline Variable operator-(double s, const Variable& a) { return add_scalar(neg(a), s); }
inline Variable operator/(const Variable& a, double s) { return mul_scalar(a, 1.0 / s); }

// A Tensor beside a Variable is a constant: no gradient flows into it.
inline Variable operator+(const Variable& a, const Tensor& c) { return add(a, Variable(c)); }
inline Variable operator-(const Variable& a, const Tensor& c) { return sub(a, Variable(c)); }
inline Variable operator*(const Variable& a, const Tensor& c) { return mul(a, Variable(c)); }
inline Variable operator/(const Variable& a, const Tensor& c) { return div(a, Variable(c)); }
inline Variable operator*(const Tensor& c, const Variable& a) { return mul(Variable(c), a); }

// Reductions (ops_reduce.cpp); an empty axis list means every axis.
Variable sum(const Variable& x, const Axes& axes = {}, bool keepdim = false);
Variable mean(const Variable& x, const Axes& axes = {}, bool keepdim = false);
// The gradient of a max is shared equally among the elements that attain it.
Variable max(const Variable& x, const Axes& axes = {}, bool keepdim = false);
Variable softmax(const Variable& x, int64_t axis);
Variable log_softmax(const Variable& x, int64_t axis);

// Linear algebra (ops_linalg.cpp).
Variable matmul(const Variable& a, const Variable& b, bool trans_a = false, bool trans_b = false);
// bias is (OC), (B,OC) (one per image) or an undefined Variable; a defined
// residual (the output's shape) is added to the output as it is written.
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias, int64_t stride = 1,
                int64_t pad = 0, const Variable& residual = Variable());

// Scaled dot-product attention (tensor/attention.h): q, k, v (batch, d, N) ->
// (batch, d, N), out_i = sum_j softmax_j(<k_j, q_i> / sqrt(d)) v_j.
Variable attention(const Variable& q, const Variable& k, const Variable& v);

// Normalisation (ops_norm.cpp).
Variable group_norm(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups,
                    double eps = 1e-5);
// silu(group_norm(x)) in one fused kernel each way (the pair every U-Net block uses).
Variable group_norm_silu(const Variable& x, const Variable& gamma, const Variable& beta, int64_t groups,
                         double eps = 1e-5);

// Shapes and resampling (ops_shape.cpp).
Variable reshape(const Variable& x, const Shape& shape);
Variable slice(const Variable& x, int64_t begin, int64_t end);  // rows of axis 0, a view
Variable permute(const Variable& x, const std::vector<int64_t>& order);
Variable transpose(const Variable& x, int64_t a, int64_t b);
Variable concat(const VariableList& parts, int64_t axis);
Variable narrow(const Variable& x, int64_t axis, int64_t begin, int64_t length);
Variable upsample_nearest2x(const Variable& x);
// Identity unless training and p > 0.
Variable dropout(const Variable& x, double p, Generator& gen, bool training);

// Rows of a table picked by index (a lookup embedding, torch.nn.Embedding): table is (K, D),
// ids (B) holds integers in [0, K) stored as floats; returns (B, D) with row b = table[ids[b]].
// Backward adds row b of the gradient into row ids[b] of the table's gradient.
Variable embedding(const Variable& table, const Tensor& ids);

}  // namespace ddpm
