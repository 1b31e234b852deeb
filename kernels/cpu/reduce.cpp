#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/reduce.h"

namespace dl::cpu {
namespace {

template <class T>
using acc_t = double;

constexpr int64_t kBlock = 4096;

template <class T>
double sum_contiguous(const T* p, int64_t n) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += static_cast<double>(p[i + l]);
  double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) s += static_cast<double>(p[i]);
  return s;
}

template <class T>
void sum_impl(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out) {
  const T* src = x.data<T>();
  T* dst = out.data<T>();
  if (inner == 1) {
    if (outer == 1) {
      // One output: fixed blocks, summed in order.
      int64_t nblocks = (reduce + kBlock - 1) / kBlock;
      std::vector<double> partial(static_cast<size_t>(std::max<int64_t>(nblocks, 1)), 0.0);
      parallel_for(nblocks, 4, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          int64_t s = b * kBlock;
          partial[b] = sum_contiguous(src + s, std::min(kBlock, reduce - s));
        }
      });
      double total = 0;
      for (double v : partial) total += v;
      dst[0] = static_cast<T>(total);
      return;
    }
    parallel_for(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(reduce, 1)),
                 [&](int64_t o0, int64_t o1) {
                   for (int64_t o = o0; o < o1; ++o)
                     dst[o] = static_cast<T>(sum_contiguous(src + o * reduce, reduce));
                 });
    return;
  }
  // Column sums: for each (o, i) accumulate over r in order; vectorised across i.
  const int64_t grain = std::max<int64_t>(64, kParallelGrain / std::max<int64_t>(reduce, 1));
  for (int64_t o = 0; o < outer; ++o) {
    const T* base = src + o * reduce * inner;
    T* obase = dst + o * inner;
    parallel_for(inner, grain, [&](int64_t i0, int64_t i1) {
      std::vector<double> acc(static_cast<size_t>(i1 - i0), 0.0);
      for (int64_t r = 0; r < reduce; ++r) {
        const T* row = base + r * inner;
        for (int64_t i = i0; i < i1; ++i) acc[i - i0] += static_cast<double>(row[i]);
      }
      for (int64_t i = i0; i < i1; ++i) obase[i] = static_cast<T>(acc[i - i0]);
    });
  }
}

void cpu_sum(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out) {
  DL_DISPATCH_FLOAT(x.dtype(), "sum", [&] { sum_impl<scalar_t>(x, outer, reduce, inner, out); });
}

}  // namespace

DL_REGISTER_KERNEL(sum_stub, CPU, cpu_sum);

}  // namespace dl::cpu
