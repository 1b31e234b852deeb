#include "datasets/format.h"

#include <cmath>
#include <filesystem>
#include <numeric>
#include <stdexcept>

#include "datasets/sampler.h"
#include "engine/graph/named_registry.h"
#include "engine/ops/random.h"

namespace dl::data {
namespace {

NamedRegistry<FormatDef>& registry() {
  static NamedRegistry<FormatDef> r("data format");
  return r;
}

}  // namespace

RegisterFormat::RegisterFormat(FormatDef def) { registry().add(std::move(def)); }
const std::vector<FormatDef>& format_defs() { return registry().all(); }
const FormatDef* find_format_def(std::string_view name) { return registry().find(name); }
const FormatDef& format_def(std::string_view name) { return registry().get(name); }
std::vector<std::string> format_names() { return registry().names(); }

std::string FormatArgs::resolve(const std::string& path) const {
  if (path.empty() || root.empty() || path.front() == '/') return path;
  return (std::filesystem::path(root) / path).string();
}

const AttrMap* FormatArgs::split(const std::string& name) const {
  auto it = splits.find(name);
  return it == splits.end() ? nullptr : &it->second;
}

namespace {

// A seeded permutation of 0..n-1 for the random splits (its own key: not the loader's).
std::vector<int64_t> split_permutation(int64_t n, uint64_t seed) {
  Generator gen(epoch_key(seed ^ 0x53504c4954ULL /* "SPLIT" */, 0));
  Tensor perm = randperm(n, gen);
  const int64_t* p = perm.data<int64_t>();
  return std::vector<int64_t>(p, p + n);
}

int64_t fraction_count(double fraction, int64_t n) {
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(n)));
}

}  // namespace

Splits open_splits(const FormatDef& format, const FormatArgs& args, const SplitOptions& o) {
  for (const std::string& s : format.required_splits)
    if (!args.split(s))
      throw std::invalid_argument("data format '" + format.name + "' needs data." + s + " (" +
                                  (format.split_attrs.empty() ? std::string("a map") : "keys like '" + format.split_attrs[0].name + "'") + ")");
  if (o.val_size < 0) throw std::invalid_argument("data.val_size must be >= 0, got " + std::to_string(o.val_size));
  if (!(o.val_fraction >= 0 && o.val_fraction < 1) || !(o.test_fraction >= 0 && o.test_fraction < 1))
    throw std::invalid_argument("data.val_fraction and data.test_fraction must be in [0, 1)");
  Splits s = format.open(args);
  if (!s.train) throw std::logic_error("data format '" + format.name + "' opened no training split");
  const bool carve_val = o.val_size > 0 || o.val_fraction > 0;
  if (carve_val && s.val)
    throw std::invalid_argument("data.val is given and data." + std::string(o.val_size > 0 ? "val_size" : "val_fraction") +
                                " asks for another validation split: keep one");
  if (o.test_fraction > 0 && s.test)
    throw std::invalid_argument("data.test is given and data.test_fraction asks for another test split: keep one");
  if (o.val_size > 0 && (o.val_fraction > 0 || o.test_fraction > 0))
    throw std::invalid_argument("data.val_size (the last N samples) cannot be combined with data.val_fraction or "
                                "data.test_fraction (random subsets): use the fractions");
  const int64_t n = s.train->size();
  const std::string from = "the training split (" + std::to_string(n) + " samples)";
  if (o.val_size > 0) {
    if (o.val_size >= n)
      throw DataError("data.val_size " + std::to_string(o.val_size) + " leaves no training samples in " + from);
    std::vector<int64_t> head(static_cast<size_t>(n - o.val_size)), tail(static_cast<size_t>(o.val_size));
    std::iota(head.begin(), head.end(), int64_t(0));
    std::iota(tail.begin(), tail.end(), n - o.val_size);
    DatasetPtr base = s.train;
    s.val = subset(base, std::move(tail), "val");
    s.train = subset(base, std::move(head), "train");
    return s;
  }
  if (o.val_fraction > 0 || o.test_fraction > 0) {
    // torch.utils.data.random_split-like: test first, then val, the rest trains. Each subset
    // keeps the permutation's order sorted back, so sequential evaluation reads files in order.
    const std::vector<int64_t> perm = split_permutation(n, o.split_seed);
    const int64_t n_test = fraction_count(o.test_fraction, n), n_val = fraction_count(o.val_fraction, n);
    if ((o.test_fraction > 0 && n_test == 0) || (o.val_fraction > 0 && n_val == 0))
      throw DataError("data." + std::string(n_test == 0 && o.test_fraction > 0 ? "test_fraction" : "val_fraction") +
                      " selects no sample of " + from + "; raise it");
    if (n_test + n_val >= n)
      throw DataError("data.val_fraction + data.test_fraction leave no training samples in " + from);
    auto take = [&](int64_t begin, int64_t count) {
      std::vector<int64_t> v(perm.begin() + begin, perm.begin() + begin + count);
      std::sort(v.begin(), v.end());
      return v;
    };
    DatasetPtr base = s.train;
    if (n_test) s.test = subset(base, take(0, n_test), "test");
    if (n_val) s.val = subset(base, take(n_test, n_val), "val");
    s.train = subset(base, take(n_test + n_val, n - n_test - n_val), "train");
  }
  return s;
}

}  // namespace dl::data
