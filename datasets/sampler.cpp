#include "datasets/sampler.h"

#include <numeric>
#include <stdexcept>

#include "engine/graph/named_registry.h"
#include "engine/ops/random.h"

namespace dl::data {
namespace {

NamedRegistry<SamplerDef>& registry() {
  static NamedRegistry<SamplerDef> r("sampler");
  return r;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class SequentialSampler final : public Sampler {
 public:
  explicit SequentialSampler(int64_t n) : n_(n) {}
  std::vector<int64_t> epoch_indices(uint64_t, int64_t) const override {
    std::vector<int64_t> v(static_cast<size_t>(n_));
    std::iota(v.begin(), v.end(), int64_t(0));
    return v;
  }
  int64_t length() const override { return n_; }

 private:
  int64_t n_;
};

class PermutationSampler final : public Sampler {
 public:
  explicit PermutationSampler(int64_t n) : n_(n) {}
  std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const override {
    Generator gen(epoch_key(seed, epoch));
    Tensor perm = randperm(n_, gen);  // i64 [n]
    const int64_t* p = perm.data<int64_t>();
    return std::vector<int64_t>(p, p + n_);
  }
  int64_t length() const override { return n_; }

 private:
  int64_t n_;
};

}  // namespace

// The key the first DataLoader called shuffle_key: recipes' batches depend on it.
uint64_t epoch_key(uint64_t seed, int64_t epoch) {
  return splitmix64(splitmix64(seed ^ 0x5348554646'4c4500ULL /* "SHUFFLE" */) + static_cast<uint64_t>(epoch));
}

RegisterSampler::RegisterSampler(SamplerDef def) { registry().add(std::move(def)); }
const std::vector<SamplerDef>& sampler_defs() { return registry().all(); }
const SamplerDef* find_sampler_def(std::string_view name) { return registry().find(name); }
const SamplerDef& sampler_def(std::string_view name) { return registry().get(name); }

SamplerPtr make_sampler(std::string_view name, const AttrMap& attrs, const Dataset& dataset) {
  const SamplerDef& def = sampler_def(name);
  AttrMap a = attrs;
  std::string problem = resolve_attrs(def.attrs, a, "option", def.rule);
  if (!problem.empty()) throw std::invalid_argument("sampler '" + def.name + "': " + problem);
  return def.make(a, dataset);
}

SamplerPtr sequential_sampler(int64_t n) {
  if (n < 0) throw std::invalid_argument("sequential_sampler: negative size");
  return std::make_shared<const SequentialSampler>(n);
}

SamplerPtr random_sampler(int64_t n) {
  if (n < 0) throw std::invalid_argument("random_sampler: negative size");
  return std::make_shared<const PermutationSampler>(n);
}

}  // namespace dl::data
