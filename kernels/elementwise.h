// Elementwise kernel stubs (see engine/dispatch.h). Shapes: `out` is allocated by the caller
// with the broadcast shape; inputs are broadcast to it (strides may be 0, any layout).
// Inputs of binary/unary ops share one dtype (the op layer promotes); `out` has that dtype,
// except comparisons, whose `out` is bool.
#pragma once
#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Relu, Sigmoid, Tanh,
  LeakyRelu,   // a = negative_slope
  Elu,         // a = alpha
  Gelu, GeluTanh,
  Softplus,    // a = beta, b = threshold
  Clamp,       // a = min, b = max (use +-inf for none)
  PowScalar,   // a = exponent
  AddScalar,   // a
  MulScalar,   // a
  Reciprocal,
  LogicalNot,  // bool -> bool
};

enum class BinaryOp {
  Add,  // a + alpha * b (alpha = s.a)
  Sub,  // a - alpha * b
  Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,  // -> bool
  // Fused activation backwards: (grad, saved) -> grad_input. `saved` is the op's input x
  // unless noted.
  ReluBackward, LeakyReluBackward /*a*/, EluBackward /*a; saved = x*/, GeluBackward,
  GeluTanhBackward, SigmoidBackward /*saved = y*/, TanhBackward /*saved = y*/,
  SoftplusBackward /*a, b*/, ClampBackward /*a, b*/,
};

struct ScalarArgs {
  double a = 0.0;
  double b = 0.0;
};

inline bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

using unary_fn = void (*)(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out);
using binary_fn = void (*)(BinaryOp op, ScalarArgs s, const Tensor& a, const Tensor& b, Tensor& out);
using where_fn = void (*)(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
// dst = src with broadcasting and dtype conversion; same device.
using copy_fn = void (*)(const Tensor& src, Tensor& dst);
using fill_fn = void (*)(Tensor& dst, double value);
// Returns true when every element is finite (float dtypes).
using all_finite_fn = bool (*)(const Tensor& x);

DL_DECLARE_STUB(unary_stub, unary_fn);
DL_DECLARE_STUB(binary_stub, binary_fn);
DL_DECLARE_STUB(where_stub, where_fn);
DL_DECLARE_STUB(copy_stub, copy_fn);
DL_DECLARE_STUB(fill_stub, fill_fn);
DL_DECLARE_STUB(all_finite_stub, all_finite_fn);

}  // namespace dl
