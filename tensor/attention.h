// attention.h: scaled dot-product attention, forward and backward, one batch
// entry (an image's head) at a time so that its N x N attention stays in cache.
//
// Each entry has queries q, keys k and values v of d channels at N positions,
// stored (d, N) as a convolution leaves them. With s = 1/sqrt(d):
//   S^T = s k^T q                    (N keys x N queries: S^T[j][i] = s <k_j, q_i>)
//   P^T = softmax over j of each column of S^T   (query i's weights on the keys)
//   out = v P^T                      (d x N: out_i = sum_j P[i][j] v_j)
// Keeping S and P transposed (keys down, queries across) makes every product a
// plain one and the softmax a column-wise one, vectorised across queries.
//
// Done as three batched ops (matmul, softmax, matmul), the batch's S (and P)
// went through memory between them: 64 x 196 x 196 floats, 9.8 MB, for each of
// `small`'s attention layers.
#pragma once

#include "tensor/tensor.h"

namespace ddpm {

// q, k, v (batch, d, N) -> out (batch, d, N). With pt not null, *pt is set to P^T
// (batch, N, N), what the backward needs.
Tensor attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, Tensor* pt = nullptr);

// Given dout (batch, d, N) and the forward's P^T, with dP^T = v^T dout and
//   dS^T[j][i] = P^T[j][i] (dP^T[j][i] - sum_j' P^T[j'][i] dP^T[j'][i])   (softmax backward)
// the gradients are  dv = dout P,  dq = s k dS^T,  dk = s q dS.
struct AttentionGrads {
    Tensor dq, dk, dv;
};
AttentionGrads attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& pt);

// The same by plain loops in double, one query at a time: the tests' reference.
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v);

}  // namespace ddpm
