// Deterministic group reductions for CUDA reduction kernels (sum, var, softmax).
//
// A "group" of G threads (1, 32 = one warp, or 256 = the whole block) owns one row. Sums use a
// fixed butterfly over the warp (__shfl_xor_sync) and, for G = 256, the 8 warp results added
// in order from shared memory. Floating-point addition is commutative, so every lane ends
// with bit-identical results, and nothing depends on timing: no atomics anywhere.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dl::cuda {

constexpr int kBlockThreads = 256;

template <int G>
struct Group {
  static_assert(G == 1 || G == 32 || G == kBlockThreads, "group size");
  static constexpr int kRowsPerBlock = kBlockThreads / G;
  __device__ static int lane() { return G == 1 ? 0 : static_cast<int>(threadIdx.x % G); }
  __device__ static int64_t first_row() {
    return int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / G;
  }
  __device__ static int64_t row_step() { return int64_t(gridDim.x) * kRowsPerBlock; }
};

// Blocks for `rows` rows of a Group<G> kernel (grid-stride beyond the cap).
template <int G>
inline unsigned group_grid(int64_t rows) {
  constexpr int64_t per = kBlockThreads / G;
  const int64_t b = (rows + per - 1) / per;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

// Sum of v over the group; every lane gets the result. `sh` holds kBlockThreads/32 doubles
// (used by G = 256 only). All threads of the block must call it (G = 256).
template <int G>
__device__ __forceinline__ double group_sum(double v, double* sh) {
  if constexpr (G == 1) {
    return v;
  } else {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if constexpr (G == 32) {
      return v;
    } else {
      __syncthreads();  // earlier readers of sh are done
      if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
      __syncthreads();
      double t = sh[0];
#pragma unroll
      for (int w = 1; w < G / 32; ++w) t += sh[w];
      return t;
    }
  }
}

// Max of v over the group (NaN is ignored unless every value is NaN).
template <int G>
__device__ __forceinline__ double group_max(double v, double* sh) {
  if constexpr (G == 1) {
    return v;
  } else {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    if constexpr (G == 32) {
      return v;
    } else {
      __syncthreads();
      if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
      __syncthreads();
      double t = sh[0];
#pragma unroll
      for (int w = 1; w < G / 32; ++w) t = fmax(t, sh[w]);
      return t;
    }
  }
}

}  // namespace dl::cuda
