#include "engine/ops/random.h"

#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "kernels/random.h"

namespace dl {

std::vector<uint8_t> Generator::get_state() const {
  std::vector<uint8_t> s(16);
  for (int i = 0; i < 8; ++i) {
    s[i] = static_cast<uint8_t>(seed_ >> (8 * i));
    s[8 + i] = static_cast<uint8_t>(offset_ >> (8 * i));
  }
  return s;
}

void Generator::set_state(const std::vector<uint8_t>& s) {
  if (s.size() != 16)
    throw std::invalid_argument("Generator::set_state: expected 16 bytes, got " + std::to_string(s.size()));
  seed_ = offset_ = 0;
  for (int i = 0; i < 8; ++i) {
    seed_ |= static_cast<uint64_t>(s[i]) << (8 * i);
    offset_ |= static_cast<uint64_t>(s[8 + i]) << (8 * i);
  }
}

uint64_t Generator::next_u64() {
  Philox4 r = philox4x32_10(seed_, advance(1));
  return static_cast<uint64_t>(r.v[0]) << 32 | r.v[1];
}

double Generator::next_double() {
  Philox4 r = philox4x32_10(seed_, advance(1));
  return uniform_double(r.v[0], r.v[1]);
}

PhiloxOut philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  (void)counter_hi;
  Philox4 r = philox4x32_10(key, counter_lo);
  return {{r.v[0], r.v[1], r.v[2], r.v[3]}};
}

Generator& default_generator(Device d) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, Generator> gens;
  std::lock_guard<std::mutex> lock(mu);
  return gens[{static_cast<int>(d.type), d.index}];
}

void manual_seed(uint64_t seed) {
  default_generator(Device::cpu()).manual_seed(seed);
  for (int i = 0; i < cuda_device_count(); ++i) default_generator(Device::cuda(i)).manual_seed(seed);
}

static void random_fill(Tensor& t, RandomKind kind, double a, double b, Generator& gen) {
  Tensor target = t.is_contiguous() ? t : empty(t.shape(), t.options());
  uint64_t offset = gen.advance(static_cast<uint64_t>(t.numel()));
  random_fill_stub(t.device())(target, kind, a, b, gen.seed(), offset);
  if (!target.same(t)) t.copy_(target);
  t.bump_version();
}

void uniform_(Tensor& t, double low, double high, Generator& gen) { random_fill(t, RandomKind::Uniform, low, high, gen); }
void normal_(Tensor& t, double mean, double std, Generator& gen) { random_fill(t, RandomKind::Normal, mean, std, gen); }

Tensor rand(const Shape& shape, Generator& gen, TensorOptions opt) {
  Tensor t = empty(shape, opt.with_requires_grad(false));
  uniform_(t, 0.0, 1.0, gen);
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor randn(const Shape& shape, Generator& gen, TensorOptions opt) {
  Tensor t = empty(shape, opt.with_requires_grad(false));
  normal_(t, 0.0, 1.0, gen);
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor bernoulli(const Tensor& p, Generator& gen) {
  NoGradGuard ng;
  Tensor u = rand(p.shape(), gen, p.options());
  return lt(u, p.detach()).to(p.dtype());
}

Tensor bernoulli(const Shape& shape, double p, Generator& gen, TensorOptions opt) {
  NoGradGuard ng;
  Tensor u = rand(shape, gen, opt.with_dtype(is_floating(opt.dtype) ? opt.dtype : DType::F32));
  return lt(u, p).to(opt.dtype);
}

Tensor randperm(int64_t n, Generator& gen) {
  if (n < 0) throw std::invalid_argument("randperm: n must be non-negative");
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(v[i], v[j]);
  }
  return from_vector(v, {n});
}

}  // namespace dl
