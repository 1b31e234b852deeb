// CUDA unary elementwise kernels (UnaryOp). Formulas mirror kernels/cpu/elementwise.cpp
// operation for operation, so CPU and CUDA agree to a few ulps (the CUDA math library is not
// correctly rounded, and nvcc may fuse a*b+c). f32/f64 get every op; i64 the integer ones;
// bool LogicalNot.
#include <type_traits>

#include "kernels/cuda/loop.cuh"
#include "kernels/elementwise.h"

namespace dl::cuda {
namespace {

template <class T>
constexpr T kSqrt1_2 = T(0.70710678118654752440);
template <class T>
constexpr T kSqrt2OverPi = T(0.79788456080286535588);

// NaN passes through (like torch.clamp); bounds compared in double as on the CPU.
__device__ __forceinline__ double clamp_d(double d, double lo, double hi) {
  if (d < lo) d = lo;
  if (d > hi) d = hi;
  return d;
}

// Functor with scalar parameters: a, b as the tensor type; lo, hi as double (Clamp).
#define DL_UNARY(Name, expr)                                              \
  template <class T>                                                      \
  struct Name {                                                           \
    T a, b;                                                               \
    double lo, hi;                                                        \
    __device__ __forceinline__ T operator()(T v) const { return (expr); } \
  };

DL_UNARY(NegOp, T(-v))
DL_UNARY(AbsOp, v < T(0) ? T(-v) : v)
DL_UNARY(SignOp, T((T(0) < v) - (v < T(0))))
DL_UNARY(ReluOp, v > T(0) ? v : T(0))
DL_UNARY(AddScalarOp, T(v + a))
DL_UNARY(MulScalarOp, T(v * a))
DL_UNARY(ClampOp, static_cast<T>(clamp_d(static_cast<double>(v), lo, hi)))
DL_UNARY(ExpOp, dm::exp(v))
DL_UNARY(LogOp, dm::log(v))
DL_UNARY(SqrtOp, dm::sqrt(v))
DL_UNARY(RsqrtOp, T(1) / dm::sqrt(v))
DL_UNARY(ReciprocalOp, T(1) / v)
DL_UNARY(SigmoidOp, T(1) / (T(1) + dm::exp(-v)))
DL_UNARY(TanhOp, dm::tanh(v))
DL_UNARY(LeakyReluOp, v > T(0) ? v : v * a)
DL_UNARY(EluOp, v > T(0) ? v : a * dm::expm1(v))
DL_UNARY(GeluOp, T(0.5) * v * (T(1) + dm::erf(v * kSqrt1_2<T>)))
DL_UNARY(GeluTanhOp,
         T(0.5) * v * (T(1) + dm::tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v))))
DL_UNARY(SoftplusOp, v * a > b ? v : dm::log1p(dm::exp(v * a)) / a)
DL_UNARY(SquareOp, v * v)
DL_UNARY(PowScalarOp, dm::pow(v, a))
#undef DL_UNARY

struct LogicalNotOp {
  __device__ __forceinline__ bool operator()(bool v) const { return !v; }
};

[[noreturn]] void unsupported(UnaryOp op, DType t) {
  throw std::invalid_argument("unary op " + std::to_string(static_cast<int>(op)) +
                              ": unsupported dtype " + dtype_name(t) + " on cuda");
}

template <template <class> class Op, class T>
void run(ScalarArgs s, const Tensor& x, Tensor& out) {
  launch_map1<T, T>(x, out, Op<T>{scalar_as<T>(s.a), scalar_as<T>(s.b), s.a, s.b});
}

template <class T>
void unary_typed(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  switch (op) {
    case UnaryOp::Neg: return run<NegOp, T>(s, x, out);
    case UnaryOp::Abs: return run<AbsOp, T>(s, x, out);
    case UnaryOp::Sign: return run<SignOp, T>(s, x, out);
    case UnaryOp::Relu: return run<ReluOp, T>(s, x, out);
    case UnaryOp::AddScalar: return run<AddScalarOp, T>(s, x, out);
    case UnaryOp::MulScalar: return run<MulScalarOp, T>(s, x, out);
    case UnaryOp::Clamp: return run<ClampOp, T>(s, x, out);
    default: break;
  }
  if constexpr (std::is_floating_point_v<T>) {
    switch (op) {
      case UnaryOp::Exp: return run<ExpOp, T>(s, x, out);
      case UnaryOp::Log: return run<LogOp, T>(s, x, out);
      case UnaryOp::Sqrt: return run<SqrtOp, T>(s, x, out);
      case UnaryOp::Rsqrt: return run<RsqrtOp, T>(s, x, out);
      case UnaryOp::Reciprocal: return run<ReciprocalOp, T>(s, x, out);
      case UnaryOp::Sigmoid: return run<SigmoidOp, T>(s, x, out);
      case UnaryOp::Tanh: return run<TanhOp, T>(s, x, out);
      case UnaryOp::LeakyRelu: return run<LeakyReluOp, T>(s, x, out);
      case UnaryOp::Elu: return run<EluOp, T>(s, x, out);
      case UnaryOp::Gelu: return run<GeluOp, T>(s, x, out);
      case UnaryOp::GeluTanh: return run<GeluTanhOp, T>(s, x, out);
      case UnaryOp::Softplus: return run<SoftplusOp, T>(s, x, out);
      case UnaryOp::PowScalar:
        if (s.a == 2.0) return run<SquareOp, T>(s, x, out);
        if (s.a == 0.5) return run<SqrtOp, T>(s, x, out);
        return run<PowScalarOp, T>(s, x, out);
      default: break;
    }
  }
  unsupported(op, x.dtype());
}

void cuda_unary(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  switch (x.dtype()) {
    case DType::F32: return unary_typed<float>(op, s, x, out);
    case DType::F64: return unary_typed<double>(op, s, x, out);
    case DType::I64: return unary_typed<int64_t>(op, s, x, out);
    case DType::Bool:
      if (op == UnaryOp::LogicalNot) return launch_map1<bool, bool>(x, out, LogicalNotOp{});
      break;
    default: break;
  }
  unsupported(op, x.dtype());
}

}  // namespace

DL_REGISTER_KERNEL(unary_stub, CUDA, cuda_unary);

}  // namespace dl::cuda
