// Samplers (torch.utils.data.Sampler): the order in which an epoch visits a dataset's indices.
//
//   data:
//     loader:
//       sampler: {type: weighted_random, balanced: true}   # or random, sequential, subset
//
// A sampler is a pure function of (seed, epoch): epoch_indices() builds the whole epoch's list
// from a Generator seeded with epoch_key(seed, epoch). So a checkpoint stores only {epoch,
// batch_in_epoch, seed} and resuming needs no replay of earlier epochs.
// The shard hook (data-parallel): ShardSpec{rank, world_size} keeps every world_size-th index
// of the epoch's list starting at rank, after padding the list with its own head to a multiple
// of world_size (torch.utils.data.DistributedSampler's semantics).
//
// Adding a sampler = a class deriving from Sampler and one RegisterSampler (datasets/samplers.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/dataset.h"
#include "engine/graph/attr_schema.h"

namespace dl::data {

// The Generator seed an epoch's sampler draws from. A key of its own, so the shuffle stream
// does not overlap the stream a model initialised from Generator(seed) draws from; the random
// sampler's permutation is randperm(N, Generator(epoch_key(seed, epoch))) (unchanged from the
// first DataLoader: the golden recipes' batches do not move).
uint64_t epoch_key(uint64_t seed, int64_t epoch);

class Sampler {
 public:
  virtual ~Sampler() = default;
  // The dataset indices epoch `epoch` visits, in order (may repeat with replacement).
  virtual std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const = 0;
  // How many indices an epoch yields (len(sampler)).
  virtual int64_t length() const = 0;
};

using SamplerPtr = std::shared_ptr<const Sampler>;

struct SamplerDef {
  std::string name;        // data.loader.sampler.type
  std::string torch_name;  // "torch.utils.data.WeightedRandomSampler"
  std::string doc;
  std::vector<AttrSchema> attrs;
  std::function<std::string(const AttrMap&)> rule;
  // Builds the sampler over `dataset` (class counts for `balanced` come from class_of()).
  // std::invalid_argument / DataError naming the option for what does not fit the dataset
  // (weights of the wrong length, an index out of range).
  std::function<SamplerPtr(const AttrMap& attrs, const Dataset& dataset)> make;
  std::string example;  // YAML flow map
};

struct RegisterSampler {
  explicit RegisterSampler(SamplerDef def);
};

const std::vector<SamplerDef>& sampler_defs();
const SamplerDef* find_sampler_def(std::string_view name);
const SamplerDef& sampler_def(std::string_view name);
SamplerPtr make_sampler(std::string_view name, const AttrMap& attrs, const Dataset& dataset);

// sequential: 0..n-1; random: a fresh permutation per epoch (the default with shuffle: true).
SamplerPtr sequential_sampler(int64_t n);
SamplerPtr random_sampler(int64_t n);

// Data-parallel sharding (DistributedSampler): rank's share of `base`'s epoch list.
struct ShardSpec {
  int64_t rank = 0;
  int64_t world_size = 1;
};
SamplerPtr shard_sampler(SamplerPtr base, ShardSpec shard);

}  // namespace dl::data
