// Embedding: argument checks (every index against [0, V) on the host before any kernel runs),
// kernel dispatch (kernels/embedding.h) and the weight gradient.
#include "engine/ops/embedding.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "kernels/embedding.h"

namespace dl {
namespace {

// "[1, 3]": the multi-index of flat position `k` in `shape`.
std::string position_str(int64_t k, const Shape& shape) {
  Shape at(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    at[d] = shape[d] > 0 ? k % shape[d] : 0;
    k = shape[d] > 0 ? k / shape[d] : 0;
  }
  return shape_str(at);
}

void check_weight(const Tensor& weight, const char* op) {
  if (!is_floating(weight.dtype()))
    throw std::invalid_argument(std::string(op) + ": weight must be a floating tensor, got " +
                                dtype_name(weight.dtype()));
  if (weight.dim() != 2)
    throw std::invalid_argument(std::string(op) + ": weight must be 2-d [num_embeddings, embedding_dim], got " +
                                shape_str(weight.shape()));
}

// The indices, contiguous and flat, after checking their dtype, device and every value.
Tensor checked_indices(const Tensor& indices, const Tensor& weight, const char* op) {
  if (indices.dtype() != DType::I64)
    throw std::invalid_argument(std::string(op) + ": indices must be int64 (torch.long), got " +
                                dtype_name(indices.dtype()) + " " + shape_str(indices.shape()));
  if (indices.device() != weight.device())
    throw std::invalid_argument(std::string(op) + ": indices are on " + indices.device().str() +
                                " but weight is on " + weight.device().str());
  Tensor flat = indices.contiguous().reshape({indices.numel()});
  const Tensor host = flat.cpu();  // a copy only for a device tensor: the check reads every value
  const int64_t* p = host.numel() > 0 ? host.data<int64_t>() : nullptr;
  const int64_t v = weight.size(0);
  for (int64_t k = 0; k < host.numel(); ++k)
    if (p[k] < 0 || p[k] >= v)
      throw std::invalid_argument(std::string(op) + ": index " + std::to_string(p[k]) + " at position " +
                                  position_str(k, indices.shape()) + " of indices " + shape_str(indices.shape()) +
                                  " is out of range for num_embeddings " + std::to_string(v) +
                                  " (valid indices: 0 to " + std::to_string(v - 1) + ")");
  return flat;
}

}  // namespace

int64_t resolve_padding_idx(std::optional<int64_t> padding_idx, int64_t num_embeddings, const char* op) {
  if (!padding_idx) return -1;
  const int64_t p = *padding_idx;
  if (p < -num_embeddings || p >= num_embeddings)
    throw std::invalid_argument(std::string(op) + ": padding_idx " + std::to_string(p) +
                                " must be within num_embeddings " + std::to_string(num_embeddings) + " (in [" +
                                std::to_string(-num_embeddings) + ", " + std::to_string(num_embeddings) + "))");
  return p < 0 ? p + num_embeddings : p;
}

namespace {

// embedding_renorm_ on checked, flat indices.
void renorm_rows(Tensor& weight, const Tensor& flat, double max_norm, double norm_type, const char* op) {
  if (!(max_norm > 0.0) || !(norm_type > 0.0))
    throw std::invalid_argument(std::string(op) + ": max_norm and norm_type must be positive, got max_norm=" +
                                std::to_string(max_norm) + ", norm_type=" + std::to_string(norm_type));
  if (!weight.is_contiguous())
    throw std::invalid_argument(std::string(op) + ": weight must be contiguous (max_norm renormalises it in place)");
  if (flat.numel() == 0 || weight.size(1) == 0) return;
  embedding_renorm_stub(weight.device())(weight, flat, max_norm, norm_type);
  weight.bump_version();
}

}  // namespace

void embedding_renorm_(Tensor& weight, const Tensor& indices, double max_norm, double norm_type) {
  const char* op = "embedding_renorm_";
  check_weight(weight, op);
  renorm_rows(weight, checked_indices(indices, weight, op), max_norm, norm_type, op);
}

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx,
                 std::optional<double> max_norm, double norm_type) {
  const char* op = "embedding";
  check_weight(weight, op);
  const int64_t v = weight.size(0), d = weight.size(1);
  const int64_t pad = resolve_padding_idx(padding_idx, v, op);
  Tensor flat = checked_indices(indices, weight, op);
  if (max_norm) {
    Tensor w = weight;  // the caller's weight: renormalised in place, as torch does
    renorm_rows(w, flat, *max_norm, norm_type, op);
  }
  Shape out_shape = indices.shape();
  out_shape.push_back(d);
  Tensor y = empty(out_shape, weight.options());
  Tensor wc = weight.detach().contiguous();
  if (y.numel() > 0) {
    Tensor y2 = y.view({flat.numel(), d});
    embedding_fwd_stub(weight.device())(wc, flat, y2);
  }
  if (any_requires_grad({weight}))
    record("EmbeddingBackward", y, {weight}, [flat, pad, v, d](const Tensor& g) -> TensorList {
      Tensor gw = empty({v, d}, g.options());
      if (gw.numel() > 0) embedding_bwd_stub(g.device())(g.contiguous().view({flat.numel(), d}), flat, pad, gw);
      return {gw};
    });
  return y;
}

}  // namespace dl
