// data.loader.sampler: subset (torch.utils.data.SubsetRandomSampler): a fixed list of dataset
// indices, written one by one (`indices: [3, 17]`) and/or as half-open ranges
// (`ranges: ["0:1000", "5000:"]`, Python slice syntax without a step), visited in a fresh random
// order each epoch, or in the listed order with shuffle: false.
#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>

#include "datasets/sampler.h"
#include "engine/ops/random.h"

namespace dl::data {
namespace {

using A = AttrSchema;

class SubsetSampler final : public Sampler {
 public:
  SubsetSampler(std::vector<int64_t> indices, bool shuffle) : indices_(std::move(indices)), shuffle_(shuffle) {}

  std::vector<int64_t> epoch_indices(uint64_t seed, int64_t epoch) const override {
    if (!shuffle_) return indices_;
    Generator gen(epoch_key(seed, epoch));
    const int64_t n = length();
    const Tensor perm = randperm(n, gen);  // i64 [n]: positions in the list
    const int64_t* p = perm.data<int64_t>();
    std::vector<int64_t> out(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) out[static_cast<size_t>(k)] = indices_[static_cast<size_t>(p[k])];
    return out;
  }
  int64_t length() const override { return static_cast<int64_t>(indices_.size()); }

 private:
  std::vector<int64_t> indices_;
  bool shuffle_;
};

// "START:STOP", either side may be empty (0 / the dataset size); nullopt when malformed.
struct Range {
  int64_t start = 0;
  std::optional<int64_t> stop;
};

std::optional<int64_t> parse_bound(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<Range> parse_range(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || text.find(':', colon + 1) != std::string::npos) return std::nullopt;
  const std::string_view s(text);
  const std::string_view a = s.substr(0, colon), b = s.substr(colon + 1);
  Range r;
  if (a.find_first_not_of(' ') != std::string_view::npos) {
    std::optional<int64_t> v = parse_bound(a);
    if (!v) return std::nullopt;
    r.start = *v;
  }
  if (b.find_first_not_of(' ') != std::string_view::npos) {
    r.stop = parse_bound(b);
    if (!r.stop || *r.stop <= r.start) return std::nullopt;
  }
  return r;
}

std::string check_ranges(const AttrValue& v) {
  for (const std::string& r : std::get<std::vector<std::string>>(v))
    if (!parse_range(r)) return "'" + r + "' is not a range";
  return "";
}

std::string indices_or_ranges(const AttrMap& a) {
  if (attr_ints(a, "indices").empty() && attr_strings(a, "ranges").empty())
    return "give indices and/or ranges (the subset is empty)";
  return "";
}

SamplerPtr make_subset(const AttrMap& a, const Dataset& dataset) {
  const int64_t n = dataset.size();
  const auto out_of_range = [&](const std::string& what) {
    return std::invalid_argument("sampler 'subset': " + what + " is out of range for the " + dataset.name() +
                                 " split of " + std::to_string(n) + " samples (valid indices 0.." +
                                 std::to_string(n - 1) + ")");
  };
  std::vector<int64_t> indices = attr_ints(a, "indices");
  for (size_t k = 0; k < indices.size(); ++k)
    if (indices[k] < 0 || indices[k] >= n)
      throw out_of_range("indices[" + std::to_string(k) + "] = " + std::to_string(indices[k]));
  for (const std::string& text : attr_strings(a, "ranges")) {
    const Range r = *parse_range(text);  // the schema's rule checked the syntax
    const int64_t stop = r.stop.value_or(n);
    if (r.start >= n || stop > n) throw out_of_range("range '" + text + "'");
    for (int64_t i = r.start; i < stop; ++i) indices.push_back(i);
  }
  return std::make_shared<const SubsetSampler>(std::move(indices), attr_bool(a, "shuffle"));
}

const RegisterSampler kSubset({
    "subset",
    "torch.utils.data.SubsetRandomSampler",
    "only the listed indices (and ranges), shuffled each epoch unless shuffle: false",
    {A::int_list("indices").def(std::vector<int64_t>{}).at_least(0).describe("dataset indices, in this order"),
     A::string_list("ranges")
         .def(std::vector<std::string>{})
         .check(check_ranges, "a list of 'START:STOP' ranges (half-open, STOP > START >= 0; either may be empty)")
         .describe("half-open index ranges appended after indices, e.g. ['0:1000', '5000:']"),
     A::boolean("shuffle", true).describe("a fresh random order each epoch (false: the listed order)")},
    indices_or_ranges,
    make_subset,
    "{type: subset, ranges: ['0:1000'], shuffle: true}",
});

}  // namespace
}  // namespace dl::data
