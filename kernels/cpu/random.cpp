#include <cmath>

#include "kernels/cpu/loop.h"
#include "kernels/random.h"

namespace dl::cpu {
namespace {

template <class T>
void fill_impl(Tensor& t, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  T* p = t.data<T>();
  parallel_for(t.numel(), 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      Philox4 r = philox4x32_10(seed, offset + static_cast<uint64_t>(i));
      if (kind == RandomKind::Uniform) {
        double u = std::is_same_v<T, float> ? uniform_float(r.v[0]) : uniform_double(r.v[0], r.v[1]);
        p[i] = static_cast<T>(a + (b - a) * u);
      } else {
        // Box-Muller; u1 in (0, 1] so log is finite.
        double u1 = 1.0 - uniform_double(r.v[0], r.v[1]);
        double u2 = uniform_double(r.v[2], r.v[3]);
        double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        p[i] = static_cast<T>(a + b * z);
      }
    }
  });
}

void cpu_random_fill(Tensor& t, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset) {
  DL_DISPATCH_FLOAT(t.dtype(), "random", [&] { fill_impl<scalar_t>(t, kind, a, b, seed, offset); });
}

}  // namespace

DL_REGISTER_KERNEL(random_fill_stub, CPU, cpu_random_fill);

}  // namespace dl::cpu
