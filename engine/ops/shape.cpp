#include "engine/ops/shape.h"

#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"

namespace dl {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw std::invalid_argument("cat: expected a non-empty list of tensors");
  const Tensor& first = tensors[0];
  dim = wrap_dim(dim, first.dim(), "cat: dim");
  Shape shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (t.dim() != first.dim() || t.device() != first.device() || t.dtype() != first.dtype())
      throw std::invalid_argument("cat: tensor " + std::to_string(i) + " " + t.str() +
                                  " does not match tensor 0 " + first.str());
    for (int64_t d = 0; d < t.dim(); ++d)
      if (d != dim && t.size(d) != shape[d])
        throw std::invalid_argument("cat: sizes must match except in dim " + std::to_string(dim) +
                                    ": " + shape_str(first.shape()) + " vs " + shape_str(t.shape()));
    total += t.size(dim);
  }
  shape[dim] = total;
  Tensor out = empty(shape, first.options());
  std::vector<int64_t> sizes;
  {
    NoGradGuard ng;
    int64_t pos = 0;
    for (const Tensor& t : tensors) {
      Tensor dst = out.narrow(dim, pos, t.size(dim));
      dst.copy_(t);
      pos += t.size(dim);
      sizes.push_back(t.size(dim));
    }
  }
  if (any_requires_grad(tensors)) {
    record("CatBackward", out, tensors, [dim, sizes](const Tensor& g) -> TensorList {
      TensorList grads;
      int64_t pos = 0;
      for (int64_t s : sizes) {
        grads.push_back(g.narrow(dim, pos, s));
        pos += s;
      }
      return grads;
    });
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  if (tensors.empty()) throw std::invalid_argument("stack: expected a non-empty list of tensors");
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack: dim");
  std::vector<Tensor> parts;
  for (const Tensor& t : tensors) {
    if (t.shape() != tensors[0].shape())
      throw std::invalid_argument("stack: all tensors must have the same shape: " +
                                  shape_str(tensors[0].shape()) + " vs " + shape_str(t.shape()));
    parts.push_back(t.unsqueeze(dim));
  }
  return cat(parts, dim);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices) {
  indices.check_dtype(DType::I64);
  if (indices.dim() > 1)
    throw std::invalid_argument("index_select: indices must be 0-d or 1-d, got " + shape_str(indices.shape()));
  if (x.dim() == 0) throw std::invalid_argument("index_select: input must have at least 1 dim");
  dim = wrap_dim(dim, x.dim());
  std::vector<int64_t> idx = indices.to_vector<int64_t>();
  for (int64_t& i : idx) {
    if (i < -x.size(dim) || i >= x.size(dim))
      throw std::out_of_range("index_select: index " + std::to_string(i) + " out of range for size " +
                              std::to_string(x.size(dim)));
    if (i < 0) i += x.size(dim);
  }
  Shape out_shape = x.shape();
  out_shape[dim] = static_cast<int64_t>(idx.size());
  Tensor out = empty(out_shape, x.options());
  {
    NoGradGuard ng;
    for (size_t k = 0; k < idx.size(); ++k) {
      Tensor dst = out.narrow(dim, static_cast<int64_t>(k), 1);
      dst.copy_(x.narrow(dim, idx[k], 1));
    }
  }
  // One node for the whole gather: grad_x[idx[k]] += g[k] in index order (repeated indices
  // accumulate deterministically), without a full-size temporary per index.
  if (any_requires_grad({x}))
    record("IndexSelectBackward", out, {x}, [idx, dim, shape = x.shape()](const Tensor& g) -> TensorList {
      Tensor gx = zeros(shape, g.options());
      for (size_t k = 0; k < idx.size(); ++k) {
        Tensor dst = gx.narrow(dim, idx[k], 1);
        add_(dst, g.narrow(dim, static_cast<int64_t>(k), 1));
      }
      return {gx};
    });
  return out;
}

Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype) {
  labels.check_dtype(DType::I64);
  std::vector<int64_t> l = labels.to_vector<int64_t>();
  std::vector<double> v(l.size() * static_cast<size_t>(num_classes), 0.0);
  for (size_t i = 0; i < l.size(); ++i) {
    if (l[i] < 0 || l[i] >= num_classes)
      throw std::out_of_range("one_hot: class " + std::to_string(l[i]) + " out of range [0, " +
                              std::to_string(num_classes) + ")");
    v[i * num_classes + l[i]] = 1.0;
  }
  Shape s = labels.shape();
  s.push_back(num_classes);
  return from_vector(v, s, TensorOptions(DType::F64, Device::cpu())).to(dtype).to(labels.device());
}

}  // namespace dl
