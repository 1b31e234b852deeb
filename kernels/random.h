// Random fill stubs. Element i of `t` (row-major order) uses Philox counter `offset + i`,
// so a draw is independent of the thread count and identical on every device.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"
#include "kernels/host_device.h"

namespace dl {

enum class RandomKind { Uniform /*a = low, b = high*/, Normal /*a = mean, b = std*/ };
// t must be contiguous.
using random_fill_fn = void (*)(Tensor& t, RandomKind kind, double a, double b, uint64_t seed,
                                uint64_t offset);
DL_DECLARE_STUB(random_fill_stub, random_fill_fn);

// Shared by host and device code (kernels/host_device.h).
struct Philox4 { uint32_t v[4]; };

DL_HOST_DEVICE inline Philox4 philox4x32_10(uint64_t key, uint64_t counter) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
DL_HOST_DEVICE inline float uniform_float(uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
DL_HOST_DEVICE inline double uniform_double(uint32_t w0, uint32_t w1) {
  uint64_t x = (static_cast<uint64_t>(w0) << 32 | w1) >> 11;
  return static_cast<double>(x) * (1.0 / 9007199254740992.0);
}

}  // namespace dl
