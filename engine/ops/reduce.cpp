// Reductions and softmax: shape rules, dispatch and derivatives.
#include "engine/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "kernels/reduce.h"

namespace dl {
namespace {

// Sorted, unique, wrapped dims; empty `dims` means all. A 0-dim tensor accepts dim 0 / -1.
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, std::max<int64_t>(ndim, 1));
    if (ndim > 0) out.push_back(w);
  }
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

// x as a contiguous [outer, reduce, inner] block with the (sorted) `dims` in the middle.
// The reduced dims are permuted next to each other when they are not already adjacent.
struct Blocked {
  Tensor src;  // contiguous
  int64_t outer = 1, reduce = 1, inner = 1;
};

Blocked to_blocked(const Tensor& x, const std::vector<int64_t>& dims) {
  const int64_t nd = x.dim();
  bool adjacent = true;
  for (size_t i = 1; i < dims.size(); ++i) adjacent = adjacent && dims[i] == dims[i - 1] + 1;
  Tensor src = x.detach();
  int64_t first = dims.empty() ? 0 : dims.front();
  if (!adjacent) {
    std::vector<int64_t> perm;
    for (int64_t i = 0; i < nd; ++i)
      if (std::find(dims.begin(), dims.end(), i) == dims.end()) perm.push_back(i);
    first = static_cast<int64_t>(perm.size());
    for (int64_t d : dims) perm.push_back(d);
    src = src.permute(perm);
  }
  Blocked b;
  b.src = src.contiguous();
  const int64_t last = first + static_cast<int64_t>(dims.size());
  for (int64_t i = 0; i < nd; ++i) {
    if (i < first) b.outer *= b.src.size(i);
    else if (i < last) b.reduce *= b.src.size(i);
    else b.inner *= b.src.size(i);
  }
  return b;
}

// Sum without autograd; out is [outer * inner].
Tensor sum_raw(const Tensor& x, const std::vector<int64_t>& dims) {
  Blocked b = to_blocked(x, dims);
  Tensor out = empty({b.outer * b.inner}, x.options());
  if (b.reduce == 0) {
    fill_(out, 0.0);
  } else if (b.outer * b.inner > 0) {
    sum_stub(x.device())(b.src, b.outer, b.reduce, b.inner, out);
  }
  return out;
}

int64_t count_of(const Shape& s, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= s[d];
  return n;
}

void check_floating(const Tensor& x, const char* op) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string(op) + ": expected a floating-point tensor, got " +
                                dtype_name(x.dtype()));
}

// ---- max / min / argmax / argmin along one dim --------------------------------

struct ArgResult {
  Tensor values, indices;  // shaped like x with `dim` reduced (keepdim applied)
};

ArgResult arg_reduce(ArgReduceOp op, const Tensor& x, int64_t dim_in, bool keepdim, bool want_values,
                     const char* name) {
  const int64_t nd = x.dim();
  const int64_t dim = wrap_dim(dim_in, std::max<int64_t>(nd, 1));
  Shape xs = x.shape();
  if (nd == 0) xs = {1};  // a 0-dim tensor reduces over its one element
  if (xs[dim] == 0)
    throw std::invalid_argument(std::string(name) + "(): expected reduction dim " + std::to_string(dim) +
                                " to have non-zero size (input shape " + shape_str(x.shape()) + ")");
  Shape out_shape = nd == 0 ? Shape{} : reduced_shape(xs, {dim}, keepdim);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < dim; ++i) outer *= xs[i];
  for (int64_t i = dim + 1; i < static_cast<int64_t>(xs.size()); ++i) inner *= xs[i];
  ArgResult r;
  r.indices = empty(out_shape, TensorOptions(DType::I64, x.device()));
  if (want_values) r.values = empty(out_shape, x.options());
  if (outer * inner > 0) {
    Tensor src = x.detach().contiguous();
    arg_reduce_stub(x.device())(op, src, outer, xs[dim], inner, r.values, r.indices);
  }
  return r;
}

// Gradient of a value-selecting reduction: g placed at `indices` along `dim`, zeros elsewhere.
// Built from engine ops (a one-hot mask over `dim`), so it runs on every device.
Tensor select_backward(const Tensor& g, const Tensor& indices, const Shape& in_shape, int64_t dim) {
  if (in_shape.empty()) return g.reshape({});
  Shape keep = in_shape;
  keep[dim] = 1;
  Tensor idx = indices.reshape(keep);
  Tensor gk = g.reshape(keep);
  Shape pos_shape(in_shape.size(), 1);
  pos_shape[dim] = in_shape[dim];
  Tensor pos = arange(in_shape[dim], TensorOptions(DType::I64, g.device())).reshape(pos_shape);
  Tensor mask = eq(pos, idx);  // in_shape, bool: one true per reduced line
  return where(mask, gk, zeros({}, g.options()));
}

std::pair<Tensor, Tensor> max_min_dim(ArgReduceOp op, const Tensor& x, int64_t dim_in, bool keepdim,
                                      const char* name) {
  ArgResult r = arg_reduce(op, x, dim_in, keepdim, true, name);
  if (any_requires_grad({x}) && is_floating(x.dtype())) {
    const int64_t dim = x.dim() == 0 ? 0 : wrap_dim(dim_in, x.dim());
    Shape in_shape = x.shape();
    record(op == ArgReduceOp::Max ? "MaxBackward1" : "MinBackward1", r.values, {x},
           [idx = r.indices, in_shape, dim](const Tensor& g) -> TensorList {
             return {select_backward(g, idx, in_shape, dim)};
           });
  }
  return {r.values, r.indices};
}

// max/min of all elements; the gradient is split evenly among all elements equal to the result
// (torch 1.13's evenly_distribute_backward; NaN results select the NaN elements).
Tensor max_min_all(ArgReduceOp op, const Tensor& x, const char* name) {
  if (x.numel() == 0)
    throw std::invalid_argument(std::string(name) +
                                "(): expected reduction dim to be specified for input.numel() == 0; "
                                "specify the reduction dim with the 'dim' argument");
  ArgResult r = arg_reduce(op, x.reshape({-1}), 0, false, true, name);
  Tensor out = r.values;
  if (any_requires_grad({x}) && is_floating(x.dtype())) {
    record(op == ArgReduceOp::Max ? "MaxBackward0" : "MinBackward0", out, {x},
           [xd = x.detach(), v = out.detach()](const Tensor& g) -> TensorList {
             const bool nan = std::isnan(v.item());
             Tensor mask = nan ? ne(xd, xd) : eq(xd, v);
             Tensor count = sum(mask.to(g.dtype()));
             return {where(mask, div(g, count), zeros({}, g.options()))};
           });
  }
  return out;
}

// ---- var / std ------------------------------------------------------------------

Tensor var_std(const Tensor& x_in, const std::vector<int64_t>& dims_in, int64_t correction, bool keepdim,
               bool take_sqrt) {
  const Tensor x = amp::autocast(amp::CastPolicy::F32, x_in);
  check_floating(x, take_sqrt ? "std" : "var");
  std::vector<int64_t> dims = normalize_dims(dims_in, x.dim());
  Shape out_shape = reduced_shape(x.shape(), dims, keepdim);
  Blocked b = to_blocked(x, dims);
  Tensor out = empty({b.outer * b.inner}, x.options());
  if (b.outer * b.inner > 0)
    var_stub(x.device())(b.src, b.outer, b.reduce, b.inner, correction, take_sqrt, out);
  out = out.reshape(out_shape);
  if (any_requires_grad({x})) {
    Shape keep = reduced_shape(x.shape(), dims, true);
    const double dof = static_cast<double>(count_of(x.shape(), dims) - correction);
    // var: dx = 2/dof * g * (x - mean);  std: the same with g / (2 std), 0 where std == 0.
    record(take_sqrt ? "StdBackward" : "VarBackward", out, {x},
           [xd = x.detach(), y = out.detach(), dims, keep, dof, take_sqrt](const Tensor& g) -> TensorList {
             Tensor gk = g.reshape(keep);
             if (take_sqrt) {
               Tensor yk = y.reshape(keep);
               gk = where(eq(yk, 0.0), zeros({}, g.options()), div(gk, mul(yk, 2.0)));
             }
             Tensor centered = sub(xd, mean(xd, dims, true));
             return {mul(mul(centered, gk), 2.0 / dof)};
           });
  }
  return out;
}

// ---- softmax --------------------------------------------------------------------

Tensor softmax_impl(const Tensor& x_in, int64_t dim_in, bool log) {
  const Tensor x = amp::autocast(amp::CastPolicy::F32, x_in);
  const char* name = log ? "log_softmax" : "softmax";
  check_floating(x, name);
  const int64_t nd = x.dim();
  const int64_t dim = wrap_dim(dim_in, std::max<int64_t>(nd, 1), name);
  int64_t outer = 1, size = 1, inner = 1;
  for (int64_t i = 0; i < nd; ++i) {
    if (i < dim) outer *= x.size(i);
    else if (i == dim) size = x.size(i);
    else inner *= x.size(i);
  }
  Tensor out = empty(x.shape(), x.options());
  if (x.numel() > 0)
    softmax_stub(x.device())(x.detach().contiguous(), outer, size, inner, log, out);
  if (any_requires_grad({x})) {
    record(log ? "LogSoftmaxBackward" : "SoftmaxBackward", out, {x},
           [y = out.detach(), outer, size, inner, log](const Tensor& g) -> TensorList {
             Tensor gx = empty(y.shape(), y.options());
             if (y.numel() > 0)
               softmax_backward_stub(y.device())(g.contiguous(), y, outer, size, inner, log, gx);
             return {gx};
           });
  }
  return out;
}

}  // namespace

// ---- sum / mean ---------------------------------------------------------------------

Tensor sum(const Tensor& x_in, const std::vector<int64_t>& dims_in, bool keepdim) {
  const Tensor x = amp::autocast(amp::CastPolicy::F32, x_in);
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
  const int64_t n = count_of(x.shape(), dims);
  return mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(n));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

// ---- max / min ------------------------------------------------------------------------

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(ArgReduceOp::Max, x, dim, keepdim, "max");
}
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return max_min_dim(ArgReduceOp::Min, x, dim, keepdim, "min");
}
Tensor max(const Tensor& x) { return max_min_all(ArgReduceOp::Max, x, "max"); }
Tensor min(const Tensor& x) { return max_min_all(ArgReduceOp::Min, x, "min"); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_reduce(ArgReduceOp::Max, x, dim, keepdim, false, "argmax").indices;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return arg_reduce(ArgReduceOp::Min, x, dim, keepdim, false, "argmin").indices;
}

// ---- var / std --------------------------------------------------------------------------

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return var_std(x, dims, correction, keepdim, false);
}
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  return var_std(x, dims, correction, keepdim, true);
}
Tensor var(const Tensor& x, int64_t correction) { return var_std(x, {}, correction, false, false); }
Tensor std(const Tensor& x, int64_t correction) { return var_std(x, {}, correction, false, true); }

// ---- softmax ---------------------------------------------------------------------------------

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

}  // namespace dl
