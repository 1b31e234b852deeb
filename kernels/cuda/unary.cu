// CUDA unary elementwise kernels (UnaryOp). The formulas and the op -> functor dispatch are
// kernels/elementwise_ops.h's, shared with the CPU backend; CPU and CUDA agree to a few ulps
// (the CUDA math library is not correctly rounded, and nvcc may fuse a*b+c). f32/f64 get every
// op; i64 the integer ones; bool LogicalNot.
#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_ops.h"

namespace dl::cuda {
namespace {

void cuda_unary(UnaryOp op, ScalarArgs s, const Tensor& x, Tensor& out) {
  const bool ran = ew::dispatch_unary(op, s, x.dtype(), [&](auto in, auto f) {
    using T = decltype(in);
    launch_map1<decltype(f(T{})), T>(x, out, f);
  });
  if (!ran)
    throw std::invalid_argument("unary op " + std::to_string(static_cast<int>(op)) + ": unsupported dtype " +
                                dtype_name(x.dtype()) + " on cuda");
}

}  // namespace

DL_REGISTER_KERNEL(unary_stub, CUDA, f32_compute<cuda_unary>);

}  // namespace dl::cuda
