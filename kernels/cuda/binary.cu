// CUDA binary elementwise kernels (BinaryOp): arithmetic, comparisons (-> bool) and the fused
// activation backwards. The formulas and the op -> functor dispatch are
// kernels/elementwise_ops.h's, shared with the CPU backend. f32/f64 get every op; i64/u8 the
// integer ones; bool Eq/Ne/Mul(and)/Add(or).
#include "kernels/cuda/loop.cuh"
#include "kernels/f32_compute.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_ops.h"

namespace dl::cuda {
namespace {

void cuda_binary(BinaryOp op, ScalarArgs s, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool ran = ew::dispatch_binary(op, s, a.dtype(), [&](auto in, auto f) {
    using T = decltype(in);
    launch_map2<decltype(f(T{}, T{})), T, T>(a, b, out, f);
  });
  if (!ran)
    throw std::invalid_argument("binary op " + std::to_string(static_cast<int>(op)) + ": unsupported dtype " +
                                dtype_name(a.dtype()) + " on cuda");
}

}  // namespace

DL_REGISTER_KERNEL(binary_stub, CUDA, f32_compute<cuda_binary>);

}  // namespace dl::cuda
