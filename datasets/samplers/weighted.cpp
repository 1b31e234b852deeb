// data.loader.sampler: weighted_random (torch.utils.data.WeightedRandomSampler): each epoch
// draws num_samples indices with probability proportional to a weight per sample, either
// given (`weights`) or 1 / (samples of the sample's class) (`balanced: true`, so every class is
// drawn equally often: the usual cure for an imbalanced training set).
#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>

#include "datasets/sampler.h"
#include "datasets/samplers/options.h"
#include "engine/ops/random.h"

namespace dl::data {
namespace {

using A = AttrSchema;

// torch.multinomial(weights, num_samples, replacement) semantics on the epoch's Generator.
class WeightedRandomSampler final : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, int64_t num_samples, bool replacement)
      : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement) {
    cumulative_.reserve(weights_.size());
    double total = 0;
    for (double w : weights_) cumulative_.push_back(total += w);
  }

  std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const override {
    Generator gen(epoch_key(seed, epoch));
    return replacement_ ? with_replacement(gen) : without_replacement(gen);
  }
  int64_t length() const override { return num_samples_; }

 private:
  // Independent draws: u uniform in [0, total), the first index whose running sum exceeds u.
  // A zero weight adds nothing to the running sum, so its index is never the first to exceed.
  std::vector<int64_t> with_replacement(Generator& gen) const {
    const double total = cumulative_.back();
    std::vector<int64_t> out(static_cast<size_t>(num_samples_));
    for (int64_t& idx : out) {
      const double u = gen.next_double() * total;
      auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
      // u rounded up to total, or onto the end of a run of zero weights: the last positive one.
      if (it == cumulative_.end()) --it;
      while (weights_[static_cast<size_t>(it - cumulative_.begin())] == 0) --it;
      idx = it - cumulative_.begin();
    }
    return out;
  }

  // Successive draws without replacement (what torch.multinomial computes with its exponential
  // trick): index i gets the key w_i / E_i, E_i ~ Exp(1); the num_samples largest keys in
  // descending order are a weighted sample without replacement, drawn in order.
  std::vector<int64_t> without_replacement(Generator& gen) const {
    std::vector<std::pair<double, int64_t>> keys;
    keys.reserve(weights_.size());
    for (size_t i = 0; i < weights_.size(); ++i) {
      const double e = -std::log1p(-gen.next_double());  // Exp(1); next_double() < 1
      if (weights_[i] > 0) keys.emplace_back(weights_[i] / e, static_cast<int64_t>(i));
    }
    std::partial_sort(keys.begin(), keys.begin() + num_samples_, keys.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    std::vector<int64_t> out(static_cast<size_t>(num_samples_));
    for (int64_t k = 0; k < num_samples_; ++k) out[static_cast<size_t>(k)] = keys[static_cast<size_t>(k)].second;
    return out;
  }

  std::vector<double> weights_;
  std::vector<double> cumulative_;
  int64_t num_samples_;
  bool replacement_;
};

// 1 / count(class of i) for every sample i (Dataset::class_of, no decoding).
std::vector<double> balanced_weights(const Dataset& dataset) {
  const int64_t n = dataset.size();
  std::vector<int64_t> cls(static_cast<size_t>(n));
  std::map<int64_t, int64_t> count;
  for (int64_t i = 0; i < n; ++i) {
    std::optional<int64_t> c = dataset.class_of(i);
    if (!c)
      throw std::invalid_argument("sampler 'weighted_random': balanced: true needs class targets, but the " +
                                  dataset.name() + " split's target is " +
                                  target_kind_name(dataset.info().target_kind) + " (give explicit weights instead)");
    cls[static_cast<size_t>(i)] = *c;
    ++count[*c];
  }
  std::vector<double> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    w[static_cast<size_t>(i)] = 1.0 / static_cast<double>(count[cls[static_cast<size_t>(i)]]);
  return w;
}

std::string weights_or_balanced(const AttrMap& a) {
  const bool balanced = attr_bool(a, "balanced");
  const bool listed = !attr_floats(a, "weights").empty();
  if (balanced && listed) return "give either weights or balanced: true, not both";
  if (!balanced && !listed) return "give weights (one per sample) or balanced: true";
  return "";
}

SamplerPtr make_weighted(const AttrMap& a, const Dataset& dataset) {
  const int64_t n = dataset.size();
  std::vector<double> w = attr_bool(a, "balanced") ? balanced_weights(dataset) : attr_floats(a, "weights");
  const auto bad = [](const std::string& what) { return std::invalid_argument("sampler 'weighted_random': " + what); };
  if (static_cast<int64_t>(w.size()) != n)
    throw bad("weights has " + std::to_string(w.size()) + " entries but the " + dataset.name() + " split has " +
              std::to_string(n) + " samples (one weight per sample)");
  int64_t positive = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (!std::isfinite(w[i]) || w[i] < 0)
      throw bad("weights[" + std::to_string(i) + "] = " + format_double(w[i]) + ": weights must be finite and >= 0");
    positive += w[i] > 0;
  }
  if (positive == 0) throw bad("the weights sum to 0 (at least one must be > 0)");
  const int64_t k = num_samples_of(a, dataset);
  const bool replacement = attr_bool(a, "replacement");
  if (!replacement && k > positive)
    throw bad("num_samples " + std::to_string(k) + " without replacement exceeds the " + std::to_string(positive) +
              " samples of non-zero weight (use replacement: true or fewer num_samples)");
  return std::make_shared<const WeightedRandomSampler>(std::move(w), k, replacement);
}

const RegisterSampler kWeighted({
    "weighted_random",
    "torch.utils.data.WeightedRandomSampler",
    "num_samples indices drawn with probability proportional to a per-sample weight; "
    "balanced: true weighs each sample by 1 / its class's count, so classes come out equally often",
    {A::float_list("weights")
         .def(std::vector<double>{})
         .at_least(0)
         .describe("one weight per sample, need not sum to 1"),
     A::boolean("balanced", false).describe("weights = 1 / class frequency (class targets only)"), num_samples_attr(),
     replacement_attr(true)},
    weights_or_balanced,
    make_weighted,
    "{type: weighted_random, balanced: true}",
});

}  // namespace
}  // namespace dl::data
