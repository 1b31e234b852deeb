// Batch norm's view of its input, shared by the CPU (kernels/cpu/norm.cpp) and CUDA
// (kernels/cuda/batch_norm.cu) kernels: x [n, c, ...] as [n, c, s], s = the product of the dims
// after 1 (1 for [N, C] input, see kernels/nn.h).
#pragma once
#include <cstdint>

#include "engine/tensor/tensor.h"

namespace dl {

struct NCS {
  int64_t n, c, s;
};

inline NCS ncs_of(const Tensor& x) {
  NCS d{x.size(0), x.size(1), 1};
  for (int64_t i = 2; i < x.dim(); ++i) d.s *= x.size(i);
  return d;
}

}  // namespace dl
