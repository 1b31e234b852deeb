// data.loader.sampler: sequential and random (torch.utils.data.SequentialSampler /
// RandomSampler), and the data-parallel shard hook shard_sampler (DistributedSampler's split).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "datasets/sampler.h"
#include "datasets/samplers/options.h"
#include "engine/ops/random.h"

namespace dl::data {
namespace {

// A uniform integer in [0, n), n >= 1, without modulo bias: draws below 2^64 mod n are
// rejected, so every residue is equally likely (the rejection rate is below n / 2^64).
int64_t uniform_below(Generator& gen, int64_t n) {
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t threshold = (0 - un) % un;  // 2^64 mod n
  for (;;) {
    const uint64_t r = gen.next_u64();
    if (r >= threshold) return static_cast<int64_t>(r % un);
  }
}

// RandomSampler with num_samples draws. Without replacement: whole permutations of 0..n-1
// back to back from the epoch's Generator, the last one cut short (torch's order of work), so
// the first n indices are random_sampler(n)'s. With replacement: uniform indices.
class RandomSampler final : public Sampler {
 public:
  RandomSampler(int64_t n, int64_t num_samples, bool replacement)
      : n_(n), num_samples_(num_samples), replacement_(replacement) {}

  std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const override {
    Generator gen(epoch_key(seed, epoch));
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(num_samples_));
    if (replacement_) {
      for (int64_t i = 0; i < num_samples_; ++i) out.push_back(uniform_below(gen, n_));
      return out;
    }
    while (static_cast<int64_t>(out.size()) < num_samples_) {
      const Tensor perm = randperm(n_, gen);  // i64 [n]
      const int64_t* p = perm.data<int64_t>();
      const int64_t take = std::min(n_, num_samples_ - static_cast<int64_t>(out.size()));
      out.insert(out.end(), p, p + take);
    }
    return out;
  }
  int64_t length() const override { return num_samples_; }

 private:
  int64_t n_;
  int64_t num_samples_;
  bool replacement_;
};

// DistributedSampler (shuffle=False over the base sampler's list): pad the list with its own
// head (repeated when the padding is longer than the list) to a multiple of world_size, then
// keep positions rank, rank + world_size, ...
class ShardSampler final : public Sampler {
 public:
  ShardSampler(SamplerPtr base, ShardSpec shard) : base_(std::move(base)), shard_(shard) {}

  std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const override {
    const std::vector<int64_t> all = base_->epoch_indices(seed, epoch);
    const int64_t n = static_cast<int64_t>(all.size());
    std::vector<int64_t> out;
    if (n == 0) return out;
    const int64_t per_rank = length();
    out.reserve(static_cast<size_t>(per_rank));
    // Position p of the padded list is all[p % n]: the head repeated as often as needed.
    for (int64_t k = 0; k < per_rank; ++k)
      out.push_back(all[static_cast<size_t>((shard_.rank + k * shard_.world_size) % n)]);
    return out;
  }
  // ceil(len(base) / world_size), DistributedSampler's num_samples without drop_last.
  int64_t length() const override { return (base_->length() + shard_.world_size - 1) / shard_.world_size; }

 private:
  SamplerPtr base_;
  ShardSpec shard_;
};

void require_samples(const Dataset& dataset, const char* sampler) {
  if (dataset.size() == 0)
    throw std::invalid_argument(std::string("sampler '") + sampler + "': the " + dataset.name() +
                                " split has no samples to draw from");
}

const RegisterSampler kSequential({
    "sequential",
    "torch.utils.data.SequentialSampler",
    "every index in order 0..N-1, the same each epoch (the default with shuffle: false)",
    {},
    nullptr,
    [](const AttrMap&, const Dataset& dataset) { return sequential_sampler(dataset.size()); },
    "{type: sequential}",
});

const RegisterSampler kRandom({
    "random",
    "torch.utils.data.RandomSampler",
    "a fresh random order each epoch (the default with shuffle: true); with replacement, "
    "num_samples uniform draws",
    {replacement_attr(false), num_samples_attr()},
    nullptr,
    [](const AttrMap& a, const Dataset& dataset) -> SamplerPtr {
      require_samples(dataset, "random");
      const int64_t n = dataset.size();
      const bool replacement = attr_bool(a, "replacement");
      const int64_t k = num_samples_of(a, dataset);
      if (!replacement && k == n) return random_sampler(n);  // the order the golden recipes use
      return std::make_shared<const RandomSampler>(n, k, replacement);
    },
    "{type: random, replacement: true, num_samples: 1000}",
});

}  // namespace

SamplerPtr shard_sampler(SamplerPtr base, ShardSpec shard) {
  if (!base) throw std::invalid_argument("shard_sampler: null base sampler");
  if (shard.world_size < 1)
    throw std::invalid_argument("shard_sampler: world_size must be >= 1, got " + std::to_string(shard.world_size));
  if (shard.rank < 0 || shard.rank >= shard.world_size)
    throw std::invalid_argument("shard_sampler: invalid rank " + std::to_string(shard.rank) +
                                ", rank should be in the interval [0, " + std::to_string(shard.world_size - 1) + "]");
  return std::make_shared<const ShardSampler>(std::move(base), shard);
}

}  // namespace dl::data
