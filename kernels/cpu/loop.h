// Strided N-operand loops for CPU kernels (a small TensorIterator).
//
// Operand 0 is the output; the others are broadcast to its shape (stride 0 on broadcast dims).
// Dimensions are coalesced where every operand allows it, and the flat index range is split
// into fixed-size chunks across OpenMP threads. Each element is written by exactly one thread,
// so elementwise results do not depend on the thread count.
#pragma once
#include <omp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::cpu {

constexpr int64_t kParallelGrain = 32768;  // elements per chunk worth a thread

template <int N>
struct LoopPlan {
  std::vector<int64_t> sizes;                    // innermost last, after coalescing
  std::array<std::vector<int64_t>, N> strides;   // bytes, per operand
  std::array<char*, N> base{};
  int64_t numel = 1;
};

// Byte strides of `t` viewed with shape `shape` (right-aligned broadcasting).
inline std::vector<int64_t> broadcast_byte_strides(const Tensor& t, const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 0);
  int64_t off = static_cast<int64_t>(shape.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.size(d) != 1) s[off + d] = t.stride(d) * static_cast<int64_t>(t.element_size());
  return s;
}

template <int N>
LoopPlan<N> make_plan(const Tensor& out, const std::array<const Tensor*, N - 1>& ins) {
  LoopPlan<N> p;
  const Shape& shape = out.shape();
  std::array<std::vector<int64_t>, N> st;
  st[0] = broadcast_byte_strides(out, shape);
  p.base[0] = static_cast<char*>(out.raw_data());
  for (int i = 1; i < N; ++i) {
    st[i] = broadcast_byte_strides(*ins[i - 1], shape);
    p.base[i] = static_cast<char*>(ins[i - 1]->raw_data());
  }
  p.numel = shape_numel(shape);
  // Drop size-1 dims, then merge dim d into d+1 when contiguous for all operands.
  std::vector<int64_t> sizes;
  std::array<std::vector<int64_t>, N> strides;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sizes.empty()) {
      bool merge = true;
      for (int i = 0; i < N; ++i)
        merge = merge && strides[i].back() == st[i][d] * shape[d];
      if (merge) {
        sizes.back() *= shape[d];
        for (int i = 0; i < N; ++i) strides[i].back() = st[i][d];
        continue;
      }
    }
    sizes.push_back(shape[d]);
    for (int i = 0; i < N; ++i) strides[i].push_back(st[i][d]);
  }
  if (sizes.empty()) {
    sizes.push_back(1);
    for (int i = 0; i < N; ++i) strides[i].push_back(0);
  }
  p.sizes = std::move(sizes);
  p.strides = std::move(strides);
  return p;
}

// Calls inner(ptrs, inner_strides, n) over runs of the innermost dimension.
template <int N, class Inner>
void run_plan(const LoopPlan<N>& p, Inner&& inner, int64_t grain = kParallelGrain) {
  if (p.numel == 0) return;
  const int nd = static_cast<int>(p.sizes.size());
  const int64_t inner_n = p.sizes[nd - 1];
  std::array<int64_t, N> inner_st;
  for (int i = 0; i < N; ++i) inner_st[i] = p.strides[i][nd - 1];
  const int64_t chunks = (p.numel + grain - 1) / grain;

  auto do_range = [&](int64_t begin, int64_t end) {
    // multi-index of `begin`
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % p.sizes[d];
      rem /= p.sizes[d];
    }
    std::array<char*, N> ptr;
    for (int i = 0; i < N; ++i) {
      ptr[i] = p.base[i];
      for (int d = 0; d < nd; ++d) ptr[i] += idx[d] * p.strides[i][d];
    }
    int64_t pos = begin;
    while (pos < end) {
      int64_t n = std::min(inner_n - idx[nd - 1], end - pos);
      inner(ptr.data(), inner_st.data(), n);
      pos += n;
      // advance multi-index by n along the innermost dim (carry outward)
      idx[nd - 1] += n;
      for (int i = 0; i < N; ++i) ptr[i] += n * inner_st[i];
      for (int d = nd - 1; d > 0 && idx[d] == p.sizes[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
        for (int i = 0; i < N; ++i)
          ptr[i] += p.strides[i][d - 1] - p.sizes[d] * p.strides[i][d];
      }
    }
  };

  if (chunks <= 1 || omp_in_parallel()) {
    do_range(0, p.numel);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c)
    do_range(c * grain, std::min(p.numel, (c + 1) * grain));
}

// Parallel for over [0, n) in fixed chunks of `grain` (no nesting).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks <= 1 || omp_in_parallel()) {
    f(int64_t(0), n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) f(c * grain, std::min(n, (c + 1) * grain));
}

}  // namespace dl::cpu
