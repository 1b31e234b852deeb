// Elementwise ops: shape/dtype rules, kernel dispatch and derivatives.
#include "engine/ops/elementwise.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/reduce.h"
#include "kernels/elementwise.h"

namespace dl {
namespace {

int dtype_rank(DType t) {
  switch (t) {
    case DType::Bool: return 0;
    case DType::U8: return 1;
    case DType::I64: return 2;
    case DType::F16: case DType::BF16: return 3;
    case DType::F32: return 4;
    case DType::F64: return 5;
  }
  return 0;
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": expected tensors on the same device, got " +
                                a.device().str() + " and " + b.device().str());
}

int dtype_category(DType t) {  // bool < integral < floating
  if (t == DType::Bool) return 0;
  return is_floating(t) ? 2 : 1;
}

// Promotes a pair to one dtype (torch.result_type). A 0-dim tensor does not widen a
// dimensioned tensor of the same or a higher category: f32 tensor + f64 0-dim stays f32,
// u8 tensor + i64 0-dim stays u8; a 0-dim of a higher category wins: i64 tensor + f64 0-dim
// is f64.
DType promote(const Tensor& a, const Tensor& b) {
  if (a.dtype() == b.dtype()) return a.dtype();
  if ((a.dim() == 0) != (b.dim() == 0)) {
    const Tensor& dimensioned = a.dim() == 0 ? b : a;
    const Tensor& zero_dim = a.dim() == 0 ? a : b;
    return dtype_category(zero_dim.dtype()) <= dtype_category(dimensioned.dtype()) ? dimensioned.dtype()
                                                                                   : zero_dim.dtype();
  }
  return dtype_rank(a.dtype()) >= dtype_rank(b.dtype()) ? a.dtype() : b.dtype();
}

// Casts a pair to its promoted dtype. The casts are differentiable (float -> float), so each
// input's gradient comes back in that input's dtype, as in torch.
std::pair<Tensor, Tensor> promote_pair(const Tensor& a, const Tensor& b) {
  DType t = promote(a, b);
  return {a.dtype() == t ? a : a.to(t), b.dtype() == t ? b : b.to(t)};
}

bool integral_value(double v) { return std::isfinite(v) && std::nearbyint(v) == v; }

// Python-scalar semantics for the double overloads on integer/bool tensors: an integral value
// keeps the tensor's integer dtype (torch: `x + 2`), a fractional one computes in float32
// (torch: `x + 0.5`). Bool tensors compute as int64 (torch: `b + 2`).
Tensor scalar_op_input(const Tensor& x, double v) {
  if (is_floating(x.dtype())) return x;
  if (!integral_value(v)) return x.to(DType::F32);
  return x.dtype() == DType::Bool ? x.to(DType::I64) : x;
}

Tensor run_binary(BinaryOp op, const Tensor& a_in, const Tensor& b_in, ScalarArgs s = {}) {
  check_same_device(a_in, b_in, "binary op");
  DType t = promote(a_in, b_in);
  Tensor a = a_in.dtype() == t ? a_in : a_in.detach().to(t);
  Tensor b = b_in.dtype() == t ? b_in : b_in.detach().to(t);
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = empty(shape, TensorOptions(is_comparison(op) ? DType::Bool : t, a.device()));
  binary_stub(a.device())(op, s, a, b, out);
  return out;
}

Tensor run_unary(UnaryOp op, const Tensor& x, ScalarArgs s = {}) {
  Tensor out = empty(x.shape(), x.options());
  unary_stub(x.device())(op, s, x, out);
  return out;
}

Tensor scalar_like(double v, const Tensor& ref) {
  return scalar_tensor(v, TensorOptions(ref.dtype(), ref.device()));
}

// The other operand of a comparison with a double: in ref's dtype, unless that would change
// the value (a fractional value against an integer tensor, 2 against a bool tensor).
Tensor comparison_scalar(double v, const Tensor& ref) {
  if (!is_floating(ref.dtype()) && !integral_value(v))
    return scalar_tensor(v, TensorOptions(DType::F64, ref.device()));
  if (ref.dtype() == DType::Bool && v != 0.0 && v != 1.0)
    return scalar_tensor(v, TensorOptions(DType::I64, ref.device()));
  return scalar_like(v, ref);
}

// In-place ops write each element of self once: other must broadcast to self's shape, and
// self must not be an expanded view (elements sharing memory would be updated several times,
// by racing threads).
void check_inplace(const Tensor& self, const Tensor* other, const char* op) {
  if (other && broadcast_shapes(self.shape(), other->shape()) != self.shape())
    throw std::invalid_argument(std::string(op) + ": other of shape " + shape_str(other->shape()) +
                                " cannot be broadcast to self's shape " + shape_str(self.shape()));
  for (int64_t d = 0; d < self.dim(); ++d)
    if (self.stride(d) == 0 && self.size(d) > 1)
      throw std::invalid_argument(std::string(op) + ": self " + shape_str(self.shape()) +
                                  " is an expanded view (elements share memory); clone() it first");
}

// Activation y = f(x) whose backward is a fused kernel of (grad, saved).
Tensor activation(const char* name, UnaryOp fwd, BinaryOp bwd, const Tensor& x, ScalarArgs s,
                  bool save_output) {
  Tensor y = run_unary(fwd, x, s);
  if (any_requires_grad({x})) {
    Tensor saved = save_output ? y.detach() : x.detach();
    record(name, y, {x}, [bwd, s, saved](const Tensor& g) -> TensorList {
      return {run_binary(bwd, g, saved, s)};
    });
  }
  return y;
}

}  // namespace

// ---- arithmetic -----------------------------------------------------------
Tensor add(const Tensor& a_in, const Tensor& b_in, double alpha) {
  auto [a, b] = promote_pair(a_in, b_in);
  Tensor out = run_binary(BinaryOp::Add, a, b, {alpha, 0});
  if (any_requires_grad({a, b})) {
    Shape sa = a.shape(), sb = b.shape();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("AddBackward", out, {a, b}, [sa, sb, ga, gb, alpha](const Tensor& g) -> TensorList {
      return {ga ? sum_to(g, sa) : Tensor(),
              gb ? sum_to(alpha == 1.0 ? g : mul(g, alpha), sb) : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b, double alpha) { return add(a, b, -alpha); }

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote_pair(a_in, b_in);
  Tensor out = run_binary(BinaryOp::Mul, a, b);
  if (any_requires_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("MulBackward", out, {a, b},
           [ad = a.detach(), bd = b.detach(), ga, gb](const Tensor& g) -> TensorList {
             return {ga ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                     gb ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
           });
  }
  return out;
}

Tensor div(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote_pair(a_in, b_in);
  if (!is_floating(a.dtype())) {  // true division (torch.div, rounding_mode=None): float32
    a = a.to(DType::F32);
    b = b.to(DType::F32);
  }
  Tensor out = run_binary(BinaryOp::Div, a, b);
  if (any_requires_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("DivBackward", out, {a, b},
           [ad = a.detach(), bd = b.detach(), ga, gb](const Tensor& g) -> TensorList {
             Tensor gdb = div(g, bd);
             Tensor grad_b;
             if (gb) grad_b = sum_to(neg(mul(gdb, div(ad, bd))), bd.shape());
             return {ga ? sum_to(gdb, ad.shape()) : Tensor(), grad_b};
           });
  }
  return out;
}

Tensor add(const Tensor& a_in, double b) {
  Tensor a = scalar_op_input(a_in, b);
  Tensor out = run_unary(UnaryOp::AddScalar, a, {b, 0});
  if (any_requires_grad({a}))
    record("AddScalarBackward", out, {a}, [](const Tensor& g) -> TensorList { return {g}; });
  return out;
}

Tensor mul(const Tensor& a_in, double b) {
  Tensor a = scalar_op_input(a_in, b);
  Tensor out = run_unary(UnaryOp::MulScalar, a, {b, 0});
  if (any_requires_grad({a}))
    record("MulScalarBackward", out, {a}, [b](const Tensor& g) -> TensorList { return {mul(g, b)}; });
  return out;
}

Tensor pow(const Tensor& a_in, double e) {
  const Tensor a = amp::autocast(amp::CastPolicy::F32, a_in);
  Tensor out = run_unary(UnaryOp::PowScalar, a, {e, 0});
  if (any_requires_grad({a}))
    record("PowBackward0", out, {a}, [ad = a.detach(), e](const Tensor& g) -> TensorList {
      if (e == 0.0) return {zeros_like(g)};
      return {mul(g, mul(pow(ad, e - 1.0), e))};
    });
  return out;
}

Tensor pow(const Tensor& a_in, const Tensor& e_in) {
  auto [a, e] = promote_pair(a_in, e_in);
  Tensor out = run_binary(BinaryOp::Pow, a, e);
  if (any_requires_grad({a, e})) {
    bool ga = a.requires_grad(), ge_ = e.requires_grad();
    record("PowBackward1", out, {a, e},
           [ad = a.detach(), ed = e.detach(), od = out.detach(), ga, ge_](const Tensor& g) -> TensorList {
             Tensor grad_a, grad_e;
             if (ga) {
               Tensor d = mul(ed, pow(ad, sub(ed, scalar_like(1.0, ed))));
               d = where(eq(ed, 0.0), zeros_like(d), d);
               grad_a = sum_to(mul(g, d), ad.shape());
             }
             if (ge_) {
               // d/de a^e = a^e log a, defined as 0 where a == 0 and e >= 0 (torch); for
               // a == 0, e < 0 it stays inf * -inf = -inf.
               Tensor d = mul(od, log(ad));
               d = where(mul(eq(ad, 0.0), ge(ed, 0.0)), zeros_like(d), d);
               grad_e = sum_to(mul(g, d), ed.shape());
             }
             return {grad_a, grad_e};
           });
  }
  return out;
}

static Tensor min_max(BinaryOp op, const char* name, const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = promote_pair(a_in, b_in);
  Tensor out = run_binary(op, a, b);
  if (any_requires_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    bool is_max = op == BinaryOp::Maximum;
    record(name, out, {a, b}, [ad = a.detach(), bd = b.detach(), ga, gb, is_max](const Tensor& g) -> TensorList {
      // Ties split the gradient equally (torch >= 1.7).
      Tensor half = mul(g, 0.5);
      Tensor tie = eq(ad, bd);
      Tensor a_wins = is_max ? gt(ad, bd) : lt(ad, bd);
      Tensor b_wins = is_max ? lt(ad, bd) : gt(ad, bd);
      Tensor z = zeros_like(g);
      Tensor grad_a, grad_b;
      if (ga) grad_a = sum_to(where(tie, half, where(a_wins, g, z)), ad.shape());
      if (gb) grad_b = sum_to(where(tie, half, where(b_wins, g, z)), bd.shape());
      return {grad_a, grad_b};
    });
  }
  return out;
}

Tensor maximum(const Tensor& a, const Tensor& b) { return min_max(BinaryOp::Maximum, "MaximumBackward", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return min_max(BinaryOp::Minimum, "MinimumBackward", a, b); }

Tensor neg(const Tensor& x) {
  Tensor out = run_unary(UnaryOp::Neg, x);
  if (any_requires_grad({x}))
    record("NegBackward", out, {x}, [](const Tensor& g) -> TensorList { return {neg(g)}; });
  return out;
}

Tensor exp(const Tensor& x_in) {
  const Tensor x = amp::autocast(amp::CastPolicy::F32, x_in);
  Tensor out = run_unary(UnaryOp::Exp, x);
  if (any_requires_grad({x}))
    record("ExpBackward", out, {x}, [y = out.detach()](const Tensor& g) -> TensorList { return {mul(g, y)}; });
  return out;
}

Tensor log(const Tensor& x_in) {
  const Tensor x = amp::autocast(amp::CastPolicy::F32, x_in);
  Tensor out = run_unary(UnaryOp::Log, x);
  if (any_requires_grad({x}))
    record("LogBackward", out, {x}, [xd = x.detach()](const Tensor& g) -> TensorList { return {div(g, xd)}; });
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = run_unary(UnaryOp::Sqrt, x);
  if (any_requires_grad({x}))
    record("SqrtBackward", out, {x}, [y = out.detach()](const Tensor& g) -> TensorList {
      return {div(g, mul(y, 2.0))};
    });
  return out;
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = run_unary(UnaryOp::Rsqrt, x);
  if (any_requires_grad({x}))
    record("RsqrtBackward", out, {x}, [y = out.detach()](const Tensor& g) -> TensorList {
      return {mul(mul(g, pow(y, 3.0)), -0.5)};  // d/dx x^-1/2 = -1/2 y^3
    });
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = run_unary(UnaryOp::Abs, x);
  if (any_requires_grad({x}))
    record("AbsBackward", out, {x}, [xd = x.detach()](const Tensor& g) -> TensorList {
      return {mul(g, sign(xd))};
    });
  return out;
}

Tensor sign(const Tensor& x) { return run_unary(UnaryOp::Sign, x); }

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  const double inf = std::numeric_limits<double>::infinity();
  ScalarArgs s{min.value_or(-inf), max.value_or(inf)};
  Tensor out = run_unary(UnaryOp::Clamp, x, s);
  if (any_requires_grad({x}))
    record("ClampBackward", out, {x}, [xd = x.detach(), s](const Tensor& g) -> TensorList {
      return {run_binary(BinaryOp::ClampBackward, g, xd, s)};
    });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  cond.check_dtype(DType::Bool);
  check_same_device(a_in, b_in, "where");
  check_same_device(cond, a_in, "where");
  DType t = promote(a_in, b_in);
  Tensor a = a_in.dtype() == t ? a_in : a_in.to(t);
  Tensor b = b_in.dtype() == t ? b_in : b_in.to(t);
  Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape()));
  Tensor out = empty(shape, TensorOptions(t, a.device()));
  where_stub(a.device())(cond, a, b, out);
  if (any_requires_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    Shape sa = a.shape(), sb = b.shape();
    record("WhereBackward", out, {a, b}, [c = cond.detach(), ga, gb, sa, sb](const Tensor& g) -> TensorList {
      Tensor z = zeros({}, g.options());
      return {ga ? sum_to(where(c, g, z), sa) : Tensor(), gb ? sum_to(where(c, z, g), sb) : Tensor()};
    });
  }
  return out;
}

// ---- comparisons ----------------------------------------------------------
Tensor eq(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return run_binary(BinaryOp::Ge, a, b); }
Tensor eq(const Tensor& a, double b) { return eq(a, comparison_scalar(b, a)); }
Tensor ne(const Tensor& a, double b) { return ne(a, comparison_scalar(b, a)); }
Tensor lt(const Tensor& a, double b) { return lt(a, comparison_scalar(b, a)); }
Tensor le(const Tensor& a, double b) { return le(a, comparison_scalar(b, a)); }
Tensor gt(const Tensor& a, double b) { return gt(a, comparison_scalar(b, a)); }
Tensor ge(const Tensor& a, double b) { return ge(a, comparison_scalar(b, a)); }
Tensor logical_not(const Tensor& x) {
  Tensor b = x.dtype() == DType::Bool ? x : ne(x, 0.0);
  return run_unary(UnaryOp::LogicalNot, b);
}
bool isfinite_all(const Tensor& x) { return all_finite_stub(x.device())(x); }

// ---- activations ----------------------------------------------------------
Tensor relu(const Tensor& x) {
  return activation("ReluBackward", UnaryOp::Relu, BinaryOp::ReluBackward, x, {}, false);
}
Tensor leaky_relu(const Tensor& x, double slope) {
  return activation("LeakyReluBackward", UnaryOp::LeakyRelu, BinaryOp::LeakyReluBackward, x, {slope, 0}, false);
}
Tensor elu(const Tensor& x, double alpha) {
  return activation("EluBackward", UnaryOp::Elu, BinaryOp::EluBackward, x, {alpha, 0}, false);
}
Tensor gelu(const Tensor& x, const std::string& approximate) {
  if (approximate == "none")
    return activation("GeluBackward", UnaryOp::Gelu, BinaryOp::GeluBackward, x, {}, false);
  if (approximate == "tanh")
    return activation("GeluBackward", UnaryOp::GeluTanh, BinaryOp::GeluTanhBackward, x, {}, false);
  throw std::invalid_argument("gelu: approximate must be 'none' or 'tanh', got '" + approximate + "'");
}
Tensor sigmoid(const Tensor& x) {
  return activation("SigmoidBackward", UnaryOp::Sigmoid, BinaryOp::SigmoidBackward, x, {}, true);
}
Tensor tanh(const Tensor& x) {
  return activation("TanhBackward", UnaryOp::Tanh, BinaryOp::TanhBackward, x, {}, true);
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return activation("SoftplusBackward", UnaryOp::Softplus, BinaryOp::SoftplusBackward, x,
                    {beta, threshold}, false);
}

// ---- in-place -------------------------------------------------------------
void add_(Tensor& self, const Tensor& other, double alpha) {
  check_same_device(self, other, "add_");
  check_inplace(self, &other, "add_");
  Tensor o = other.dtype() == self.dtype() ? other : other.to(self.dtype());
  binary_stub(self.device())(BinaryOp::Add, {alpha, 0}, self, o, self);
  self.bump_version();
}
void mul_(Tensor& self, double value) {
  check_inplace(self, nullptr, "mul_");
  unary_stub(self.device())(UnaryOp::MulScalar, {value, 0}, self, self);
  self.bump_version();
}
void mul_(Tensor& self, const Tensor& other) {
  check_same_device(self, other, "mul_");
  check_inplace(self, &other, "mul_");
  Tensor o = other.dtype() == self.dtype() ? other : other.to(self.dtype());
  binary_stub(self.device())(BinaryOp::Mul, {}, self, o, self);
  self.bump_version();
}
void fill_(Tensor& self, double value) {
  fill_stub(self.device())(self, value);
  self.bump_version();
}
void zero_(Tensor& self) { fill_(self, 0.0); }

Tensor cast(const Tensor& x, DType dtype) { return x.to(dtype); }

}  // namespace dl
