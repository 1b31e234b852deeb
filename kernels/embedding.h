// Kernel stubs of the embedding ops (engine/ops/embedding.h): row lookup, its weight gradient
// and max_norm renormalisation. The op layer checks every index against [0, V) before calling
// them, so kernels may index rows without bounds checks; tensors are contiguous, f32 or f64
// (indices i64), and outputs are allocated by the op layer.
//
// Determinism: the weight gradient buckets positions by index (a counting sort, stable), then
// each row of grad_weight is summed by one thread in position order, so repeated indices
// accumulate bit-identically at any thread count (no atomics, no races). The CUDA kernels
// (kernels/cuda/embedding.cu) sort with a stable radix sort instead and add each (row, column)
// in the same position order, so they give the same bits.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

// weight [V, D], indices [n] (i64, 0 <= i < V), out [n, D]: out[k] = weight[indices[k]].
using embedding_fwd_fn = void (*)(const Tensor& weight, const Tensor& indices, Tensor& out);
// gy [n, D], grad_weight [V, D] (written entirely): row v = sum of gy[k] over the positions k
// with indices[k] == v, in order of k; the padding_idx row (-1: none) stays zero.
using embedding_bwd_fn = void (*)(const Tensor& gy, const Tensor& indices, int64_t padding_idx,
                                  Tensor& grad_weight);
// In place (torch.embedding_renorm_): each distinct row v of `indices` whose norm_type-norm
// exceeds max_norm is scaled by max_norm / (norm + 1e-7).
using embedding_renorm_fn = void (*)(Tensor& weight, const Tensor& indices, double max_norm, double norm_type);

DL_DECLARE_STUB(embedding_fwd_stub, embedding_fwd_fn);
DL_DECLARE_STUB(embedding_bwd_stub, embedding_bwd_fn);
DL_DECLARE_STUB(embedding_renorm_stub, embedding_renorm_fn);

}  // namespace dl
