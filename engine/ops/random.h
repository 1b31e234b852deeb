// Random numbers: a seedable counter-based generator (Philox-4x32-10) per device.
// The state is (seed, offset): element i of a draw uses counter offset + i, so results do not
// depend on the thread count, CPU and CUDA produce the same stream, and the state is two
// integers to checkpoint.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves `n` counters (each yields 4 x 32 random bits) and returns the first.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }
  // Serialisable state: 16 bytes (seed, offset), little-endian.
  std::vector<uint8_t> get_state() const;
  void set_state(const std::vector<uint8_t>& state);  // throws on a wrong size

  uint64_t next_u64();       // host-side draw (for shuffling etc.)
  double next_double();      // [0, 1)

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

// The default generator of a device (seeded with manual_seed).
Generator& default_generator(Device d = Device::cpu());
void manual_seed(uint64_t seed);  // seeds every device's default generator

// Philox-4x32-10: 4 random 32-bit words for (key, counter). Same on CPU and CUDA.
struct PhiloxOut { uint32_t v[4]; };
PhiloxOut philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

// In place, no grad.
void uniform_(Tensor& t, double low, double high, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
Tensor rand(const Shape& shape, Generator& gen, TensorOptions opt = {});
Tensor randn(const Shape& shape, Generator& gen, TensorOptions opt = {});
// Elementwise Bernoulli(p) as the dtype of p (0/1).
Tensor bernoulli(const Tensor& p, Generator& gen);
Tensor bernoulli(const Shape& shape, double p, Generator& gen, TensorOptions opt = {});
// Random permutation of 0..n-1 (i64, on cpu). Deterministic for a generator state.
Tensor randperm(int64_t n, Generator& gen);

}  // namespace dl
