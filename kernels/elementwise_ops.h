// Every elementwise formula once, for every backend: the functors of UnaryOp and BinaryOp
// (kernels/elementwise.h) as host/device code, and the op -> functor dispatch. The CPU backend
// (kernels/cpu/elementwise.cpp) runs them in its vectorising loops, the CUDA backend
// (kernels/cuda/unary.cu, binary.cu) in its launch helpers, so the two cannot drift apart:
//
//   ew::dispatch_unary(op, s, x.dtype(), [&](auto in, auto f) {
//     using T = decltype(in);                 // element type of x
//     using O = decltype(f(T{}));             // element type of out (bool for LogicalNot)
//     map1<T, O>(x, out, f);                  // CPU: kernels/cpu/loop.h; CUDA: launch_map1<T, O>
//   });                                       // false: the op has no kernel for that dtype
//
// Dtypes: f32/f64 get every op; i64 (and u8 for binary ops) the integer ones; bool LogicalNot,
// Eq/Ne, Mul (and), Add (or). Scalars a, b arrive as the element type; Clamp's bounds lo, hi as
// double (NaN passes through clamp, like torch.clamp). The math functions are the C library's
// on the host and CUDA's on the device: results agree to a few ulps, not bit for bit.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/elementwise.h"
#include "kernels/host_device.h"

#define DL_HD DL_HOST_DEVICE inline

namespace dl::ew {

namespace math {
#if defined(__CUDA_ARCH__)
#define DL_EW_MATH1(name, fname)                            \
  DL_HD float name(float x) { return ::fname(x); }          \
  DL_HD double name(double x) { return ::name(x); }
#define DL_EW_MATH2(name, fname)                                      \
  DL_HD float name(float x, float y) { return ::fname(x, y); }        \
  DL_HD double name(double x, double y) { return ::name(x, y); }
#else
#define DL_EW_MATH1(name, fname)                            \
  DL_HD float name(float x) { return std::name(x); }        \
  DL_HD double name(double x) { return std::name(x); }
#define DL_EW_MATH2(name, fname)                                      \
  DL_HD float name(float x, float y) { return std::name(x, y); }      \
  DL_HD double name(double x, double y) { return std::name(x, y); }
#endif
DL_EW_MATH1(exp, expf)
DL_EW_MATH1(log, logf)
DL_EW_MATH1(sqrt, sqrtf)
DL_EW_MATH1(tanh, tanhf)
DL_EW_MATH1(expm1, expm1f)
DL_EW_MATH1(log1p, log1pf)
DL_EW_MATH1(erf, erff)
DL_EW_MATH2(pow, powf)
#undef DL_EW_MATH1
#undef DL_EW_MATH2
}  // namespace math

template <class T>
constexpr T kSqrt1_2 = T(0.70710678118654752440);
template <class T>
constexpr T kSqrt2OverPi = T(0.79788456080286535588);  // sqrt(2/pi)
template <class T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);   // 1/sqrt(2*pi)

// A double scalar as the element type (an integer type gets 0 for values it cannot hold,
// instead of the undefined behaviour of the cast).
template <class T>
DL_HD T scalar_as(double v) {
  if constexpr (std::is_integral_v<T>)
    if (!(v > -9.2e18 && v < 9.2e18)) return T(0);
  return static_cast<T>(v);
}

// Functors with scalar parameters: a, b as the element type; lo, hi as double.
template <class T>
struct Params {
  T sa, sb;          // ScalarArgs a, b as T
  double slo, shi;   // ScalarArgs a, b as double
};

#define DL_EW_UNARY(Name, expr)                                  \
  template <class T>                                             \
  struct Name : Params<T> {                                      \
    DL_HD T operator()(T v) const {                              \
      [[maybe_unused]] const T a = this->sa, b = this->sb;       \
      [[maybe_unused]] const double lo = this->slo, hi = this->shi; \
      return (expr);                                             \
    }                                                            \
  };
#define DL_EW_BINARY(Name, expr)                                 \
  template <class T>                                             \
  struct Name : Params<T> {                                      \
    DL_HD T operator()(T u, T v) const {                         \
      [[maybe_unused]] const T a = this->sa, b = this->sb;       \
      [[maybe_unused]] const double lo = this->slo, hi = this->shi; \
      return (expr);                                             \
    }                                                            \
  };

DL_HD double clamp_d(double d, double lo, double hi) {
  if (d < lo) d = lo;
  if (d > hi) d = hi;
  return d;
}

// ---- unary -------------------------------------------------------------------------------
DL_EW_UNARY(NegOp, T(-v))
DL_EW_UNARY(AbsOp, v < T(0) ? T(-v) : v)
DL_EW_UNARY(SignOp, T((T(0) < v) - (v < T(0))))
DL_EW_UNARY(ReluOp, v > T(0) ? v : T(0))
DL_EW_UNARY(AddScalarOp, T(v + a))
DL_EW_UNARY(MulScalarOp, T(v * a))
DL_EW_UNARY(ClampOp, static_cast<T>(clamp_d(static_cast<double>(v), lo, hi)))
DL_EW_UNARY(ExpOp, math::exp(v))
DL_EW_UNARY(LogOp, math::log(v))
DL_EW_UNARY(SqrtOp, math::sqrt(v))
DL_EW_UNARY(RsqrtOp, T(1) / math::sqrt(v))
DL_EW_UNARY(ReciprocalOp, T(1) / v)
DL_EW_UNARY(SigmoidOp, T(1) / (T(1) + math::exp(-v)))
DL_EW_UNARY(TanhOp, math::tanh(v))
DL_EW_UNARY(LeakyReluOp, v > T(0) ? v : v * a)
DL_EW_UNARY(EluOp, v > T(0) ? v : a * math::expm1(v))
DL_EW_UNARY(GeluOp, T(0.5) * v * (T(1) + math::erf(v * kSqrt1_2<T>)))
DL_EW_UNARY(GeluTanhOp, T(0.5) * v * (T(1) + math::tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v))))
DL_EW_UNARY(SoftplusOp, v * a > b ? v : math::log1p(math::exp(v * a)) / a)
DL_EW_UNARY(SquareOp, v * v)
DL_EW_UNARY(PowScalarOp, math::pow(v, a))

struct LogicalNotOp {
  DL_HD bool operator()(bool v) const { return !v; }
};

// ---- binary ------------------------------------------------------------------------------
DL_EW_BINARY(AddOp, T(u + v))
DL_EW_BINARY(AddAlphaOp, T(u + a * v))
DL_EW_BINARY(SubOp, T(u - v))
DL_EW_BINARY(SubAlphaOp, T(u - a * v))
DL_EW_BINARY(MulOp, T(u * v))
DL_EW_BINARY(DivOp, u / v)
DL_EW_BINARY(IntDivOp, v == T(0) ? T(0) : T(u / v))  // truncates toward zero like C (torch: trunc)
DL_EW_BINARY(PowOp, math::pow(u, v))
DL_EW_BINARY(MaximumOp, (u != u || u > v) ? u : v)  // NaN propagates
DL_EW_BINARY(MinimumOp, (u != u || u < v) ? u : v)
// Fused activation backwards: (grad, saved) -> grad_input.
DL_EW_BINARY(ReluBackwardOp, v > T(0) ? u : T(0))
DL_EW_BINARY(ClampBackwardOp, (static_cast<double>(v) >= lo && static_cast<double>(v) <= hi) ? u : T(0))
DL_EW_BINARY(LeakyReluBackwardOp, v > T(0) ? u : u * a)
DL_EW_BINARY(EluBackwardOp, v > T(0) ? u : u * a * math::exp(v))
DL_EW_BINARY(SigmoidBackwardOp, u * (T(1) - v) * v)
DL_EW_BINARY(TanhBackwardOp, u * (T(1) - v * v))

template <class T>
struct GeluBackwardOp : Params<T> {
  DL_HD T operator()(T g, T v) const {
    const T cdf = T(0.5) * (T(1) + math::erf(v * kSqrt1_2<T>));
    const T pdf = kInvSqrt2Pi<T> * math::exp(T(-0.5) * v * v);
    return g * (cdf + v * pdf);
  }
};

template <class T>
struct GeluTanhBackwardOp : Params<T> {
  DL_HD T operator()(T g, T v) const {
    const T kappa = T(0.044715);
    const T inner = kSqrt2OverPi<T> * (v + kappa * v * v * v);
    const T th = math::tanh(inner);
    const T left = T(0.5) * v, right = T(1) + th;
    const T dleft = T(0.5) * right;
    const T dright = left * (T(1) - th * th) * kSqrt2OverPi<T> * (T(1) + T(3) * kappa * v * v);
    return g * (dleft + dright);
  }
};

template <class T>
struct SoftplusBackwardOp : Params<T> {
  DL_HD T operator()(T g, T v) const {
    const T z = math::exp(v * this->sa);
    return v * this->sa > this->sb ? g : g * z / (z + T(1));
  }
};

// Comparisons -> bool, one functor each (a loop over one comparison vectorises on the CPU).
#define DL_EW_COMPARE(Name, cmp)                                \
  template <class T>                                            \
  struct Name {                                                 \
    DL_HD bool operator()(T u, T v) const { return u cmp v; }   \
  };
DL_EW_COMPARE(EqOp, ==)
DL_EW_COMPARE(NeOp, !=)
DL_EW_COMPARE(LtOp, <)
DL_EW_COMPARE(LeOp, <=)
DL_EW_COMPARE(GtOp, >)
DL_EW_COMPARE(GeOp, >=)
#undef DL_EW_COMPARE
#undef DL_EW_UNARY
#undef DL_EW_BINARY

struct AndOp {
  DL_HD bool operator()(bool u, bool v) const { return u && v; }
};
struct OrOp {
  DL_HD bool operator()(bool u, bool v) const { return u || v; }
};

// ---- op -> functor -----------------------------------------------------------------------
template <template <class> class Op, class T>
Op<T> make(ScalarArgs s) {
  Op<T> f;
  f.sa = scalar_as<T>(s.a);
  f.sb = scalar_as<T>(s.b);
  f.slo = s.a;
  f.shi = s.b;
  return f;
}

// Calls launch(T{}, functor) for element type T; false when `op` has no T version.
template <class T, class Launch>
bool dispatch_unary_typed(UnaryOp op, ScalarArgs s, Launch&& launch) {
  if constexpr (std::is_same_v<T, bool>) {
    if (op != UnaryOp::LogicalNot) return false;
    launch(T{}, LogicalNotOp{});
    return true;
  } else {
    switch (op) {
      case UnaryOp::Neg: launch(T{}, make<NegOp, T>(s)); return true;
      case UnaryOp::Abs: launch(T{}, make<AbsOp, T>(s)); return true;
      case UnaryOp::Sign: launch(T{}, make<SignOp, T>(s)); return true;
      case UnaryOp::Relu: launch(T{}, make<ReluOp, T>(s)); return true;
      case UnaryOp::AddScalar: launch(T{}, make<AddScalarOp, T>(s)); return true;
      case UnaryOp::MulScalar: launch(T{}, make<MulScalarOp, T>(s)); return true;
      case UnaryOp::Clamp: launch(T{}, make<ClampOp, T>(s)); return true;
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case UnaryOp::Exp: launch(T{}, make<ExpOp, T>(s)); return true;
        case UnaryOp::Log: launch(T{}, make<LogOp, T>(s)); return true;
        case UnaryOp::Sqrt: launch(T{}, make<SqrtOp, T>(s)); return true;
        case UnaryOp::Rsqrt: launch(T{}, make<RsqrtOp, T>(s)); return true;
        case UnaryOp::Reciprocal: launch(T{}, make<ReciprocalOp, T>(s)); return true;
        case UnaryOp::Sigmoid: launch(T{}, make<SigmoidOp, T>(s)); return true;
        case UnaryOp::Tanh: launch(T{}, make<TanhOp, T>(s)); return true;
        case UnaryOp::LeakyRelu: launch(T{}, make<LeakyReluOp, T>(s)); return true;
        case UnaryOp::Elu: launch(T{}, make<EluOp, T>(s)); return true;
        case UnaryOp::Gelu: launch(T{}, make<GeluOp, T>(s)); return true;
        case UnaryOp::GeluTanh: launch(T{}, make<GeluTanhOp, T>(s)); return true;
        case UnaryOp::Softplus: launch(T{}, make<SoftplusOp, T>(s)); return true;
        case UnaryOp::PowScalar:
          if (s.a == 2.0) launch(T{}, make<SquareOp, T>(s));
          else if (s.a == 0.5) launch(T{}, make<SqrtOp, T>(s));
          else launch(T{}, make<PowScalarOp, T>(s));
          return true;
        default: break;
      }
    }
    return false;
  }
}

template <class Launch>
bool dispatch_unary(UnaryOp op, ScalarArgs s, DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::F32: return dispatch_unary_typed<float>(op, s, launch);
    case DType::F64: return dispatch_unary_typed<double>(op, s, launch);
    case DType::I64: return dispatch_unary_typed<int64_t>(op, s, launch);
    case DType::Bool: return dispatch_unary_typed<bool>(op, s, launch);
    default: return false;
  }
}

template <class T, class Launch>
bool dispatch_compare(BinaryOp op, Launch&& launch) {
  switch (op) {
    case BinaryOp::Eq: launch(T{}, EqOp<T>{}); return true;
    case BinaryOp::Ne: launch(T{}, NeOp<T>{}); return true;
    case BinaryOp::Lt: launch(T{}, LtOp<T>{}); return true;
    case BinaryOp::Le: launch(T{}, LeOp<T>{}); return true;
    case BinaryOp::Gt: launch(T{}, GtOp<T>{}); return true;
    case BinaryOp::Ge: launch(T{}, GeOp<T>{}); return true;
    default: return false;
  }
}

template <class T, class Launch>
bool dispatch_binary_typed(BinaryOp op, ScalarArgs s, Launch&& launch) {
  if constexpr (std::is_same_v<T, bool>) {
    if (op == BinaryOp::Eq || op == BinaryOp::Ne) return dispatch_compare<bool>(op, launch);
    if (op == BinaryOp::Mul) { launch(T{}, AndOp{}); return true; }
    if (op == BinaryOp::Add) { launch(T{}, OrOp{}); return true; }
    return false;
  } else {
    if (is_comparison(op)) return dispatch_compare<T>(op, launch);
    switch (op) {
      case BinaryOp::Add:
        if (s.a == 1.0) launch(T{}, make<AddOp, T>(s));
        else launch(T{}, make<AddAlphaOp, T>(s));
        return true;
      case BinaryOp::Sub:
        if (s.a == 1.0) launch(T{}, make<SubOp, T>(s));
        else launch(T{}, make<SubAlphaOp, T>(s));
        return true;
      case BinaryOp::Mul: launch(T{}, make<MulOp, T>(s)); return true;
      case BinaryOp::Maximum: launch(T{}, make<MaximumOp, T>(s)); return true;
      case BinaryOp::Minimum: launch(T{}, make<MinimumOp, T>(s)); return true;
      case BinaryOp::ReluBackward: launch(T{}, make<ReluBackwardOp, T>(s)); return true;
      case BinaryOp::ClampBackward: launch(T{}, make<ClampBackwardOp, T>(s)); return true;
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case BinaryOp::Div: launch(T{}, make<DivOp, T>(s)); return true;
        case BinaryOp::Pow: launch(T{}, make<PowOp, T>(s)); return true;
        case BinaryOp::LeakyReluBackward: launch(T{}, make<LeakyReluBackwardOp, T>(s)); return true;
        case BinaryOp::EluBackward: launch(T{}, make<EluBackwardOp, T>(s)); return true;
        case BinaryOp::GeluBackward: launch(T{}, make<GeluBackwardOp, T>(s)); return true;
        case BinaryOp::GeluTanhBackward: launch(T{}, make<GeluTanhBackwardOp, T>(s)); return true;
        case BinaryOp::SigmoidBackward: launch(T{}, make<SigmoidBackwardOp, T>(s)); return true;
        case BinaryOp::TanhBackward: launch(T{}, make<TanhBackwardOp, T>(s)); return true;
        case BinaryOp::SoftplusBackward: launch(T{}, make<SoftplusBackwardOp, T>(s)); return true;
        default: return false;
      }
    } else {
      if (op == BinaryOp::Div) { launch(T{}, make<IntDivOp, T>(s)); return true; }
      return false;
    }
  }
}

template <class Launch>
bool dispatch_binary(BinaryOp op, ScalarArgs s, DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::F32: return dispatch_binary_typed<float>(op, s, launch);
    case DType::F64: return dispatch_binary_typed<double>(op, s, launch);
    case DType::I64: return dispatch_binary_typed<int64_t>(op, s, launch);
    case DType::U8: return dispatch_binary_typed<uint8_t>(op, s, launch);
    case DType::Bool: return dispatch_binary_typed<bool>(op, s, launch);
    default: return false;
  }
}

}  // namespace dl::ew
