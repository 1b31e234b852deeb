// Elementwise launch machinery for CUDA kernels (the device twin of kernels/cpu/loop.h).
//
// Operand 0 is the output; inputs are broadcast to its shape (stride 0 on broadcast dims).
// On the host, dims of size 1 are dropped and neighbours merged where every operand allows it
// (as kernels/cpu/loop.h does). If the result is one dense run for every operand, a contiguous
// kernel indexes plain arrays; otherwise sizes and byte strides (innermost first, at most
// kMaxDims dims) travel by value in an OffsetCalc, like PyTorch's OffsetCalculator, and each
// element's offsets are computed from its linear index.
//
// Each thread handles kUnroll elements: it loads all of them, then computes and stores, so
// the loads of one thread are in flight together. Every output element is written by exactly
// one thread: results are deterministic.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/tensor/tensor.h"
#include "kernels/cuda/runtime.h"
#include "kernels/elementwise_ops.h"

namespace dl::cuda {

// An op's double scalar argument (ScalarArgs) as the kernel's T (kernels/elementwise_ops.h).
using ew::scalar_as;

constexpr int kMaxDims = 10;
constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr int64_t kTile = int64_t(kThreads) * kUnroll;

// Byte offsets of N operands for a linear (row-major) element index.
template <int N>
struct OffsetCalc {
  int ndim = 1;
  bool idx32 = true;             // numel < 2^32: 32-bit divisions (much cheaper)
  int64_t sizes[kMaxDims] = {};  // innermost first
  int64_t strides[kMaxDims][N] = {};  // bytes

  __device__ __forceinline__ void get(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (idx32) {
      uint32_t rem = static_cast<uint32_t>(linear);
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        uint32_t i = rem;
        if (d < ndim - 1) {  // the outermost index needs no division
          const uint32_t sz = static_cast<uint32_t>(sizes[d]);
          const uint32_t q = rem / sz;
          i = rem - q * sz;
          rem = q;
        }
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(i) * strides[d][k];
      }
    } else {
      int64_t rem = linear;
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        int64_t i = rem;
        if (d < ndim - 1) {
          const int64_t q = rem / sizes[d];
          i = rem - q * sizes[d];
          rem = q;
        }
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += i * strides[d][k];
      }
    }
  }
};

template <int N>
struct Ptrs {
  char* p[N];
};

// Host-side plan for N operands (operand 0 = output).
template <int N>
struct ElementwisePlan {
  Ptrs<N> base{};
  OffsetCalc<N> calc;
  int64_t numel = 0;
  bool contiguous = false;
  int device = 0;
};

// Byte strides of `t` viewed with `shape` (right-aligned broadcasting).
inline std::vector<int64_t> broadcast_byte_strides(const Tensor& t, const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 0);
  const int64_t off = static_cast<int64_t>(shape.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) != 1) s[off + d] = t.stride(d) * static_cast<int64_t>(t.element_size());
  return s;
}

template <int N>
ElementwisePlan<N> make_plan(const Tensor& out, const std::array<const Tensor*, N - 1>& ins) {
  ElementwisePlan<N> p;
  const Shape& shape = out.shape();
  p.numel = shape_numel(shape);
  p.device = out.device().index;
  std::array<std::vector<int64_t>, N> st;
  std::array<int64_t, N> esize;
  st[0] = broadcast_byte_strides(out, shape);
  p.base.p[0] = static_cast<char*>(out.raw_data());
  esize[0] = static_cast<int64_t>(out.element_size());
  for (int k = 1; k < N; ++k) {
    const Tensor& t = *ins[k - 1];
    if (t.device() != out.device())
      throw std::invalid_argument("cuda kernel: operand on " + t.device().str() + ", output on " +
                                  out.device().str());
    st[k] = broadcast_byte_strides(t, shape);
    p.base.p[k] = static_cast<char*>(t.raw_data());
    esize[k] = static_cast<int64_t>(t.element_size());
  }
  // Outermost first: drop size-1 dims, merge d into the previous one when dense for all.
  std::vector<int64_t> sizes;
  std::vector<std::array<int64_t, N>> strides;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sizes.empty()) {
      bool merge = true;
      for (int k = 0; k < N; ++k) merge = merge && strides.back()[k] == st[k][d] * shape[d];
      if (merge) {
        sizes.back() *= shape[d];
        for (int k = 0; k < N; ++k) strides.back()[k] = st[k][d];
        continue;
      }
    }
    sizes.push_back(shape[d]);
    std::array<int64_t, N> s{};
    for (int k = 0; k < N; ++k) s[k] = st[k][d];
    strides.push_back(s);
  }
  if (sizes.empty()) {  // a single element
    sizes.push_back(1);
    strides.push_back(std::array<int64_t, N>{});
  }
  const int nd = static_cast<int>(sizes.size());
  if (nd > kMaxDims)
    throw std::invalid_argument("cuda elementwise: " + std::to_string(nd) +
                                " non-mergeable dims (at most " + std::to_string(kMaxDims) +
                                " are supported); make an operand contiguous first");
  p.contiguous = nd == 1;
  for (int k = 0; k < N && p.contiguous; ++k)
    p.contiguous = sizes[0] == 1 || strides[0][k] == esize[k];
  p.calc.ndim = nd;
  p.calc.idx32 = p.numel < (int64_t(1) << 32);
  for (int d = 0; d < nd; ++d) {  // reverse: innermost first
    p.calc.sizes[d] = sizes[nd - 1 - d];
    for (int k = 0; k < N; ++k) p.calc.strides[d][k] = strides[nd - 1 - d][k];
  }
  return p;
}

inline unsigned grid_for(int64_t n, int64_t per_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, int64_t(1) << 30)));
}

// ---- generic kernels ---------------------------------------------------------------------
// map1: out = f(a). map2: out = f(a, b). Tile of kTile elements per block and grid-stride
// loop over tiles.

template <class Tout, class Ta, class F>
__global__ void map1_contig_kernel(Tout* out, const Ta* a, int64_t n, F f) {
  for (int64_t base = int64_t(blockIdx.x) * kTile + threadIdx.x; base < n;
       base += int64_t(gridDim.x) * kTile) {
    Ta va[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) va[u] = a[i];
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) out[i] = f(va[u]);
    }
  }
}

template <class Tout, class Ta, class F>
__global__ void map1_strided_kernel(Ptrs<2> p, OffsetCalc<2> calc, int64_t n, F f) {
  for (int64_t base = int64_t(blockIdx.x) * kTile + threadIdx.x; base < n;
       base += int64_t(gridDim.x) * kTile) {
    Ta va[kUnroll];
    int64_t oo[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) {
        int64_t off[2];
        calc.get(i, off);
        oo[u] = off[0];
        va[u] = *reinterpret_cast<const Ta*>(p.p[1] + off[1]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) *reinterpret_cast<Tout*>(p.p[0] + oo[u]) = f(va[u]);
    }
  }
}

template <class Tout, class Ta, class Tb, class F>
__global__ void map2_contig_kernel(Tout* out, const Ta* a, const Tb* b, int64_t n, F f) {
  for (int64_t base = int64_t(blockIdx.x) * kTile + threadIdx.x; base < n;
       base += int64_t(gridDim.x) * kTile) {
    Ta va[kUnroll];
    Tb vb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) {
        va[u] = a[i];
        vb[u] = b[i];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) out[i] = f(va[u], vb[u]);
    }
  }
}

template <class Tout, class Ta, class Tb, class F>
__global__ void map2_strided_kernel(Ptrs<3> p, OffsetCalc<3> calc, int64_t n, F f) {
  for (int64_t base = int64_t(blockIdx.x) * kTile + threadIdx.x; base < n;
       base += int64_t(gridDim.x) * kTile) {
    Ta va[kUnroll];
    Tb vb[kUnroll];
    int64_t oo[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) {
        int64_t off[3];
        calc.get(i, off);
        oo[u] = off[0];
        va[u] = *reinterpret_cast<const Ta*>(p.p[1] + off[1]);
        vb[u] = *reinterpret_cast<const Tb*>(p.p[2] + off[2]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = base + int64_t(u) * kThreads;
      if (i < n) *reinterpret_cast<Tout*>(p.p[0] + oo[u]) = f(va[u], vb[u]);
    }
  }
}

// out = f(a) with a broadcast to out. Types must match the tensors' dtypes.
template <class Tout, class Ta, class F>
void launch_map1(const Tensor& a, Tensor& out, F f) {
  auto plan = make_plan<2>(out, {&a});
  if (plan.numel == 0) return;
  DeviceGuard guard(plan.device);
  cudaStream_t s = stream(plan.device);
  const unsigned grid = grid_for(plan.numel, kTile);
  if (plan.contiguous) {
    map1_contig_kernel<Tout, Ta, F><<<grid, kThreads, 0, s>>>(
        reinterpret_cast<Tout*>(plan.base.p[0]), reinterpret_cast<const Ta*>(plan.base.p[1]),
        plan.numel, f);
  } else {
    map1_strided_kernel<Tout, Ta, F><<<grid, kThreads, 0, s>>>(plan.base, plan.calc, plan.numel, f);
  }
  DL_CUDA_CHECK_LAUNCH();
}

// out = f(a, b) with a and b broadcast to out.
template <class Tout, class Ta, class Tb, class F>
void launch_map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  auto plan = make_plan<3>(out, {&a, &b});
  if (plan.numel == 0) return;
  DeviceGuard guard(plan.device);
  cudaStream_t s = stream(plan.device);
  const unsigned grid = grid_for(plan.numel, kTile);
  if (plan.contiguous) {
    map2_contig_kernel<Tout, Ta, Tb, F><<<grid, kThreads, 0, s>>>(
        reinterpret_cast<Tout*>(plan.base.p[0]), reinterpret_cast<const Ta*>(plan.base.p[1]),
        reinterpret_cast<const Tb*>(plan.base.p[2]), plan.numel, f);
  } else {
    map2_strided_kernel<Tout, Ta, Tb, F><<<grid, kThreads, 0, s>>>(plan.base, plan.calc, plan.numel, f);
  }
  DL_CUDA_CHECK_LAUNCH();
}

// ---- device math: one name for float and double (float uses the f-suffixed functions) ----
namespace dm {
__device__ __forceinline__ float exp(float x) { return ::expf(x); }
__device__ __forceinline__ double exp(double x) { return ::exp(x); }
__device__ __forceinline__ float log(float x) { return ::logf(x); }
__device__ __forceinline__ double log(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt(float x) { return ::sqrtf(x); }
__device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float tanh(float x) { return ::tanhf(x); }
__device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
__device__ __forceinline__ float expm1(float x) { return ::expm1f(x); }
__device__ __forceinline__ double expm1(double x) { return ::expm1(x); }
__device__ __forceinline__ float log1p(float x) { return ::log1pf(x); }
__device__ __forceinline__ double log1p(double x) { return ::log1p(x); }
__device__ __forceinline__ float erf(float x) { return ::erff(x); }
__device__ __forceinline__ double erf(double x) { return ::erf(x); }
__device__ __forceinline__ float pow(float x, float y) { return ::powf(x, y); }
__device__ __forceinline__ double pow(double x, double y) { return ::pow(x, y); }
__device__ __forceinline__ bool isfinite(float x) { return ::isfinite(x); }
__device__ __forceinline__ bool isfinite(double x) { return ::isfinite(x); }
}  // namespace dm

}  // namespace dl::cuda
