// CUDA binary elementwise kernels (BinaryOp): arithmetic, comparisons (-> bool) and the fused
// activation backwards. Formulas mirror kernels/cpu/elementwise.cpp. f32/f64 get every op;
// i64/u8 the integer ones; bool Eq/Ne/Mul(and)/Add(or).
#include <type_traits>

#include "kernels/cuda/loop.cuh"
#include "kernels/elementwise.h"

namespace dl::cuda {
namespace {

template <class T>
constexpr T kSqrt1_2 = T(0.70710678118654752440);
template <class T>
constexpr T kSqrt2OverPi = T(0.79788456080286535588);
template <class T>
constexpr T kInvSqrt2Pi = T(0.39894228040143267794);

// Functor of (u, v) with scalar parameters a, b (tensor type) and lo, hi (double).
#define DL_BINARY(Name, expr)                                                   \
  template <class T>                                                            \
  struct Name {                                                                 \
    T a, b;                                                                     \
    double lo, hi;                                                              \
    __device__ __forceinline__ T operator()(T u, T v) const { return (expr); }  \
  };

DL_BINARY(AddOp, T(u + v))
DL_BINARY(AddAlphaOp, T(u + a * v))
DL_BINARY(SubOp, T(u - v))
DL_BINARY(SubAlphaOp, T(u - a * v))
DL_BINARY(MulOp, T(u * v))
DL_BINARY(DivOp, u / v)
DL_BINARY(IntDivOp, v == T(0) ? T(0) : T(u / v))  // truncates toward zero like C (torch: trunc)
DL_BINARY(PowOp, dm::pow(u, v))
DL_BINARY(MaximumOp, (u != u || u > v) ? u : v)   // NaN propagates
DL_BINARY(MinimumOp, (u != u || u < v) ? u : v)
// (grad, saved) -> grad_input
DL_BINARY(ReluBackwardOp, v > T(0) ? u : T(0))
DL_BINARY(ClampBackwardOp, (static_cast<double>(v) >= lo && static_cast<double>(v) <= hi) ? u : T(0))
DL_BINARY(LeakyReluBackwardOp, v > T(0) ? u : u * a)
DL_BINARY(EluBackwardOp, v > T(0) ? u : u * a * dm::exp(v))
DL_BINARY(SigmoidBackwardOp, u * (T(1) - v) * v)
DL_BINARY(TanhBackwardOp, u * (T(1) - v * v))
#undef DL_BINARY

template <class T>
struct GeluBackwardOp {
  T a, b;
  double lo, hi;
  __device__ __forceinline__ T operator()(T g, T v) const {
    const T cdf = T(0.5) * (T(1) + dm::erf(v * kSqrt1_2<T>));
    const T pdf = kInvSqrt2Pi<T> * dm::exp(T(-0.5) * v * v);
    return g * (cdf + v * pdf);
  }
};

template <class T>
struct GeluTanhBackwardOp {
  T a, b;
  double lo, hi;
  __device__ __forceinline__ T operator()(T g, T v) const {
    const T kappa = T(0.044715);
    const T inner = kSqrt2OverPi<T> * (v + kappa * v * v * v);
    const T th = dm::tanh(inner);
    const T left = T(0.5) * v, right = T(1) + th;
    const T dleft = T(0.5) * right;
    const T dright = left * (T(1) - th * th) * kSqrt2OverPi<T> * (T(1) + T(3) * kappa * v * v);
    return g * (dleft + dright);
  }
};

template <class T>
struct SoftplusBackwardOp {
  T a, b;
  double lo, hi;
  __device__ __forceinline__ T operator()(T g, T v) const {
    const T z = dm::exp(v * a);
    return v * a > b ? g : g * z / (z + T(1));
  }
};

// All six comparisons in one functor: the branch is uniform across a launch.
template <class T>
struct CompareOp {
  BinaryOp op;
  __device__ __forceinline__ bool operator()(T u, T v) const {
    switch (op) {
      case BinaryOp::Eq: return u == v;
      case BinaryOp::Ne: return u != v;
      case BinaryOp::Lt: return u < v;
      case BinaryOp::Le: return u <= v;
      case BinaryOp::Gt: return u > v;
      default: return u >= v;  // Ge
    }
  }
};

struct AndOp {
  __device__ __forceinline__ bool operator()(bool u, bool v) const { return u && v; }
};
struct OrOp {
  __device__ __forceinline__ bool operator()(bool u, bool v) const { return u || v; }
};

[[noreturn]] void unsupported(BinaryOp op, DType t) {
  throw std::invalid_argument("binary op " + std::to_string(static_cast<int>(op)) +
                              ": unsupported dtype " + dtype_name(t) + " on cuda");
}

template <template <class> class Op, class T>
void run(ScalarArgs s, const Tensor& x, const Tensor& y, Tensor& out) {
  launch_map2<T, T, T>(x, y, out, Op<T>{scalar_as<T>(s.a), scalar_as<T>(s.b), s.a, s.b});
}

template <class T>
void binary_typed(BinaryOp op, ScalarArgs s, const Tensor& x, const Tensor& y, Tensor& out) {
  if (is_comparison(op)) return launch_map2<bool, T, T>(x, y, out, CompareOp<T>{op});
  switch (op) {
    case BinaryOp::Add:
      if (s.a == 1.0) return run<AddOp, T>(s, x, y, out);
      return run<AddAlphaOp, T>(s, x, y, out);
    case BinaryOp::Sub:
      if (s.a == 1.0) return run<SubOp, T>(s, x, y, out);
      return run<SubAlphaOp, T>(s, x, y, out);
    case BinaryOp::Mul: return run<MulOp, T>(s, x, y, out);
    case BinaryOp::Maximum: return run<MaximumOp, T>(s, x, y, out);
    case BinaryOp::Minimum: return run<MinimumOp, T>(s, x, y, out);
    case BinaryOp::ReluBackward: return run<ReluBackwardOp, T>(s, x, y, out);
    case BinaryOp::ClampBackward: return run<ClampBackwardOp, T>(s, x, y, out);
    default: break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case BinaryOp::Div: return run<DivOp, T>(s, x, y, out);
      case BinaryOp::Pow: return run<PowOp, T>(s, x, y, out);
      case BinaryOp::LeakyReluBackward: return run<LeakyReluBackwardOp, T>(s, x, y, out);
      case BinaryOp::EluBackward: return run<EluBackwardOp, T>(s, x, y, out);
      case BinaryOp::GeluBackward: return run<GeluBackwardOp, T>(s, x, y, out);
      case BinaryOp::GeluTanhBackward: return run<GeluTanhBackwardOp, T>(s, x, y, out);
      case BinaryOp::SigmoidBackward: return run<SigmoidBackwardOp, T>(s, x, y, out);
      case BinaryOp::TanhBackward: return run<TanhBackwardOp, T>(s, x, y, out);
      case BinaryOp::SoftplusBackward: return run<SoftplusBackwardOp, T>(s, x, y, out);
      default: break;
    }
  } else {
    if (op == BinaryOp::Div) return run<IntDivOp, T>(s, x, y, out);
  }
  unsupported(op, x.dtype());
}

void cuda_binary(BinaryOp op, ScalarArgs s, const Tensor& a, const Tensor& b, Tensor& out) {
  switch (a.dtype()) {
    case DType::F32: return binary_typed<float>(op, s, a, b, out);
    case DType::F64: return binary_typed<double>(op, s, a, b, out);
    case DType::I64: return binary_typed<int64_t>(op, s, a, b, out);
    case DType::U8: return binary_typed<uint8_t>(op, s, a, b, out);
    case DType::Bool:
      if (op == BinaryOp::Eq || op == BinaryOp::Ne)
        return launch_map2<bool, bool, bool>(a, b, out, CompareOp<bool>{op});
      if (op == BinaryOp::Mul) return launch_map2<bool, bool, bool>(a, b, out, AndOp{});
      if (op == BinaryOp::Add) return launch_map2<bool, bool, bool>(a, b, out, OrOp{});
      break;
    default: break;
  }
  unsupported(op, a.dtype());
}

}  // namespace

DL_REGISTER_KERNEL(binary_stub, CUDA, cuda_binary);

}  // namespace dl::cuda
