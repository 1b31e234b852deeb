// Log-space sums of the CTC recursions (kernels/ctc.h), shared by the CPU kernel
// (kernels/cpu/ctc.cpp) and the CUDA kernel (kernels/cuda/ctc.cu) so both round alike.
#pragma once
#include <cmath>

#include "kernels/host_device.h"

namespace dl::ctc_detail {

// log(e^a + e^b + e^c) with -inf terms allowed (all -inf gives -inf).
template <class T>
DL_HOST_DEVICE T log_sum3(T a, T b, T c) {
  const T bc = b < c ? c : b;
  T m = a < bc ? bc : a;  // std::max(a, std::max(b, c))
  if (m == -INFINITY) m = 0;  // avoid -inf - -inf
  return std::log(std::exp(a - m) + std::exp(b - m) + std::exp(c - m)) + m;
}

// acc = log(e^acc + e^v), where acc == -inf means "nothing collected yet".
template <class T>
DL_HOST_DEVICE T log_add(T acc, T v) {
  if (acc == -INFINITY) return v;
  const T m = acc < v ? v : acc;  // std::max(acc, v)
  return std::log(std::exp(acc - m) + std::exp(v - m)) + m;
}

}  // namespace dl::ctc_detail
