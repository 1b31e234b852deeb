// Helpers shared by the CUDA kernels that mirror a CPU kernel (loss.cu, dropout.cu, embedding.cu,
// optim.cu, layer_norm.cu), bit for bit where they can:
//
//   dispatch_float(t, "adam_step", [&](auto tag) { using T = decltype(tag); ... });
//     runs the body for float32 / float64 and throws a clear error for any other dtype.
//   rn::add(a, b), rn::sub, rn::mul, rn::div
//     IEEE round-to-nearest operations nvcc never contracts into an FMA. Our CPU kernels are
//     built without FMA (x86-64 baseline, no -march), so a device formula written with these
//     rounds exactly like the CPU's `a * b + c` (two roundings) instead of once; plain `/` and
//     sqrt are already correctly rounded in CUDA (no -use_fast_math).
//   with_group_size(len, [&](auto g) { constexpr int G = decltype(g)::value; k<G><<<group_grid<G>(rows), ...>>>(); });
//     picks the Group<G> of reduce.cuh for rows of `len` elements, as reduce.cu does: one thread
//     per row below 32 elements, one warp up to 1024, else the whole block.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "engine/tensor/tensor.h"
#include "kernels/cuda/reduce.cuh"

namespace dl::cuda {

template <class F>
void dispatch_float(DType t, const char* what, F&& f) {
  if (t == DType::F32) return f(float{});
  if (t == DType::F64) return f(double{});
  throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) +
                              " on cuda (expected float32 or float64)");
}

template <class F>
void with_group_size(int64_t len, F&& f) {
  if (len < 32) f(std::integral_constant<int, 1>{});
  else if (len <= 1024) f(std::integral_constant<int, 32>{});
  else f(std::integral_constant<int, kBlockThreads>{});
}

namespace rn {
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div(double a, double b) { return __ddiv_rn(a, b); }
}  // namespace rn

}  // namespace dl::cuda
