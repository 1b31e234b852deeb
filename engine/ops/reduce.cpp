// Reductions and softmax: shape rules, dispatch and derivatives.
#include "engine/ops/reduce.h"

#include <algorithm>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "kernels/reduce.h"

namespace dl {
namespace {

// Sorted, unique, wrapped dims; empty `dims` means all.
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, ndim));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end())
    throw std::invalid_argument("reduction: dim appears more than once");
  return out;
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    bool r = std::find(dims.begin(), dims.end(), i) != dims.end();
    if (!r) out.push_back(s[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Sum without autograd. Moves reduced dims next to each other ([outer, reduce, inner]) when
// they are not already contiguous in the layout.
Tensor sum_raw(const Tensor& x, const std::vector<int64_t>& dims) {
  const int64_t nd = x.dim();
  bool contiguous_block = true;
  for (size_t i = 1; i < dims.size(); ++i) contiguous_block = contiguous_block && dims[i] == dims[i - 1] + 1;
  Tensor src = x;
  int64_t first = dims.empty() ? 0 : dims.front();
  if (!contiguous_block) {
    std::vector<int64_t> perm;
    for (int64_t i = 0; i < nd; ++i)
      if (std::find(dims.begin(), dims.end(), i) == dims.end()) perm.push_back(i);
    first = static_cast<int64_t>(perm.size());
    for (int64_t d : dims) perm.push_back(d);
    src = x.permute(perm);
  }
  src = src.contiguous();
  int64_t outer = 1, reduce = 1, inner = 1;
  for (int64_t i = 0; i < first; ++i) outer *= src.size(i);
  for (size_t k = 0; k < dims.size(); ++k) reduce *= src.size(first + static_cast<int64_t>(k));
  for (int64_t i = first + static_cast<int64_t>(dims.size()); i < nd; ++i) inner *= src.size(i);
  Tensor out = empty({outer * inner}, x.options());
  if (reduce == 0) {
    fill_(out, 0.0);
  } else if (outer * inner > 0) {
    sum_stub(x.device())(src, outer, reduce, inner, out);
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  if (!is_floating(x.dtype())) return sum(x.to(DType::F64), dims_in, keepdim).to(DType::I64);
  std::vector<int64_t> dims = normalize_dims(dims_in, x.dim());
  Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Tensor out = sum_raw(x, dims).reshape(out_shape);
  out = out.detach();
  if (any_requires_grad({x})) {
    Shape in_shape = x.shape();
    Shape keep_shape = reduced_shape(in_shape, dims, true);
    record("SumBackward", out, {x}, [in_shape, keep_shape](const Tensor& g) -> TensorList {
      return {g.reshape(keep_shape).expand(in_shape)};
    });
  }
  return out;
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  std::vector<int64_t> dims = normalize_dims(dims_in, x.dim());
  int64_t n = 1;
  for (int64_t d : dims) n *= x.size(d);
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(n));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

}  // namespace dl
