// Matrix products. CPU: oneDNN sgemm/dgemm (see kernels/gemm.h for determinism notes).
#pragma once
#include "engine/tensor/tensor.h"

namespace dl {

// torch.matmul semantics: 1-d x 1-d dot, 2-d mm, batched with broadcasting of batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor mm(const Tensor& a, const Tensor& b);  // [n,k] x [k,m]
// y = x W^T + b; x [..., in], weight [out, in], bias [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace dl
