// Samplers (datasets/samplers/*.cpp): the registry entries, determinism per (seed, epoch), the
// distributions they draw from (uniform, weighted with and without replacement, balanced), the
// option errors, and the shard hook against torch's DistributedSampler (tests/fixtures/samplers.txt
// from gen_samplers.py).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "tests/support/fixtures.h"

using namespace dl;
using namespace dl::data;

namespace {

using Indices = std::vector<int64_t>;

// n samples of 1x1 pixels with the given labels.
std::shared_ptr<const ImageDataset> labelled(const Indices& labels, int64_t num_classes) {
  const auto n = static_cast<int64_t>(labels.size());
  return std::make_shared<const ImageDataset>(zeros({n, 1, 1, 1}, DType::U8), from_vector(labels, {n}), num_classes,
                                              "train");
}

std::shared_ptr<const ImageDataset> plain(int64_t n) { return labelled(Indices(static_cast<size_t>(n), 0), 1); }

// A dataset whose targets are not classes (balanced sampling cannot apply).
class RegressionSet final : public Dataset {
 public:
  explicit RegressionSet(int64_t n) : Dataset("train"), n_(n) { info_.target_kind = TargetKind::regression; }
  int64_t size() const override { return n_; }
  Sample get(int64_t) const override { return Sample(); }
  const DatasetInfo& info() const override { return info_; }
  std::optional<int64_t> class_of(int64_t) const override { return std::nullopt; }

 private:
  int64_t n_;
  DatasetInfo info_;
};

Indices iota(int64_t n) {
  Indices v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t(0));
  return v;
}

bool is_permutation_of_iota(Indices v) {
  std::sort(v.begin(), v.end());
  return v == iota(static_cast<int64_t>(v.size()));
}

std::vector<double> frequencies(const Indices& draws, int64_t n) {
  std::vector<double> f(static_cast<size_t>(n), 0.0);
  for (int64_t i : draws) f[static_cast<size_t>(i)] += 1.0 / static_cast<double>(draws.size());
  return f;
}

// Every epoch's list of `sampler` concatenated over epochs [0, epochs).
Indices draws(const Sampler& sampler, int64_t epochs, uint64_t seed = 7) {
  Indices all;
  for (int64_t e = 0; e < epochs; ++e) {
    Indices v = sampler.epoch_indices(seed, e);
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

std::string error_of(const std::string& name, const AttrMap& attrs, const Dataset& d) {
  try {
    make_sampler(name, attrs, d);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("samplers: every registration is documented and builds from its defaults", "[samplers]") {
  std::set<std::string> names;
  for (const SamplerDef& def : sampler_defs()) {
    names.insert(def.name);
    INFO(def.name);
    CHECK(!def.doc.empty());
    CHECK(def.torch_name.rfind("torch.utils.data.", 0) == 0);
    CHECK(def.example.find("type: " + def.name) != std::string::npos);
    for (const AttrSchema& a : def.attrs) CHECK(!a.doc.empty());
  }
  for (const char* n : {"sequential", "random", "weighted_random", "subset"}) CHECK(names.count(n) == 1);
  CHECK(sampler_def("torch.utils.data.WeightedRandomSampler").name == "weighted_random");  // by torch name too
  auto d = plain(5);
  CHECK(make_sampler("sequential", {}, *d)->epoch_indices(3, 1) == iota(5));
  CHECK(make_sampler("random", {}, *d)->length() == 5);
}

TEST_CASE("samplers: random without replacement is random_sampler's permutation, per seed and epoch", "[samplers]") {
  auto d = plain(50);
  SamplerPtr s = make_sampler("random", {}, *d);
  SamplerPtr base = random_sampler(50);
  for (uint64_t seed : {0ull, 42ull})
    for (int64_t epoch : {0, 1, 5}) {
      const Indices v = s->epoch_indices(seed, epoch);
      CHECK(v == base->epoch_indices(seed, epoch));
      CHECK(v == make_sampler("random", {}, *d)->epoch_indices(seed, epoch));  // a fresh sampler: same list
      CHECK(is_permutation_of_iota(v));
    }
  CHECK(s->epoch_indices(42, 0) != s->epoch_indices(42, 1));
  CHECK(s->epoch_indices(42, 0) != s->epoch_indices(43, 0));

  // num_samples beyond the size: whole permutations back to back (torch's order of work), the
  // first one the same as the default's.
  SamplerPtr longer = make_sampler("random", {{"num_samples", int64_t{2 * 50 + 7}}}, *d);
  REQUIRE(longer->length() == 107);
  const Indices v = longer->epoch_indices(42, 3);
  REQUIRE(v.size() == 107);
  CHECK(Indices(v.begin(), v.begin() + 50) == base->epoch_indices(42, 3));
  CHECK(is_permutation_of_iota(Indices(v.begin() + 50, v.begin() + 100)));
  CHECK(std::set<int64_t>(v.begin() + 100, v.end()).size() == 7);
  SamplerPtr shorter = make_sampler("random", {{"num_samples", int64_t{10}}}, *d);
  const Indices full = base->epoch_indices(1, 0);
  CHECK(shorter->epoch_indices(1, 0) == Indices(full.begin(), full.begin() + 10));
}

TEST_CASE("samplers: random with replacement draws uniform indices, deterministically", "[samplers]") {
  auto d = plain(4);
  SamplerPtr s = make_sampler("random", {{"replacement", true}, {"num_samples", int64_t{20000}}}, *d);
  const Indices a = s->epoch_indices(9, 2);
  CHECK(a == s->epoch_indices(9, 2));
  CHECK(a != s->epoch_indices(9, 3));
  REQUIRE(a.size() == 20000);
  for (double f : frequencies(a, 4)) CHECK(f == Approx(0.25).margin(0.015));
  // Repeats happen (a permutation would not repeat within 4 draws).
  SamplerPtr few = make_sampler("random", {{"replacement", true}}, *d);
  bool repeated = false;
  for (int64_t e = 0; e < 20 && !repeated; ++e) {
    Indices v = few->epoch_indices(0, e);
    repeated = std::set<int64_t>(v.begin(), v.end()).size() < v.size();
  }
  CHECK(repeated);
}

TEST_CASE("samplers: weighted_random follows the weights with and without replacement", "[samplers]") {
  auto d = plain(3);
  SECTION("with replacement: frequencies proportional to the weights, zero weight never drawn") {
    SamplerPtr s = make_sampler("weighted_random",
                                {{"weights", std::vector<double>{1, 0, 3}}, {"num_samples", int64_t{40000}}}, *d);
    const std::vector<double> f = frequencies(s->epoch_indices(3, 0), 3);
    CHECK(f[0] == Approx(0.25).margin(0.012));
    CHECK(f[1] == 0.0);
    CHECK(f[2] == Approx(0.75).margin(0.012));
    CHECK(s->epoch_indices(3, 0) == s->epoch_indices(3, 0));
  }
  SECTION("without replacement: torch.multinomial's successive draws") {
    // weights 1, 2, 7: P(first = i) = w_i / 10; P(second = 0) = 0.2 * 1/8 + 0.7 * 1/3 = 0.2583.
    SamplerPtr s = make_sampler(
        "weighted_random",
        {{"weights", std::vector<double>{1, 2, 7}}, {"num_samples", int64_t{2}}, {"replacement", false}}, *d);
    Indices first, second;
    int64_t distinct = 0;
    for (int64_t e = 0; e < 20000; ++e) {
      const Indices v = s->epoch_indices(11, e);
      first.push_back(v.at(0));
      second.push_back(v.at(1));
      distinct += v.size() == 2 && v[0] != v[1];
    }
    CHECK(distinct == 20000);
    const std::vector<double> f1 = frequencies(first, 3), f2 = frequencies(second, 3);
    CHECK(f1[0] == Approx(0.1).margin(0.01));
    CHECK(f1[1] == Approx(0.2).margin(0.01));
    CHECK(f1[2] == Approx(0.7).margin(0.01));
    CHECK(f2[0] == Approx(0.2583).margin(0.012));
  }
}

TEST_CASE("samplers: balanced weighted_random draws the classes about equally often", "[samplers]") {
  // 90 / 9 / 1 samples of classes 0 / 1 / 2.
  Indices labels(90, 0);
  labels.insert(labels.end(), 9, 1);
  labels.push_back(2);
  auto d = labelled(labels, 3);
  SamplerPtr s = make_sampler("weighted_random", {{"balanced", true}}, *d);
  REQUIRE(s->length() == 100);  // num_samples defaults to the dataset size
  std::vector<double> per_class(3, 0.0);
  const Indices all = draws(*s, 300);
  for (int64_t i : all)
    per_class[static_cast<size_t>(labels[static_cast<size_t>(i)])] += 1.0 / static_cast<double>(all.size());
  for (double f : per_class) CHECK(f == Approx(1.0 / 3).margin(0.02));
  // Without balancing (uniform weights) class 2 would be 1% of the draws.
  SamplerPtr uniform = make_sampler("weighted_random", {{"weights", std::vector<double>(100, 1.0)}}, *d);
  const Indices u = draws(*uniform, 300);
  CHECK(std::count_if(u.begin(), u.end(), [](int64_t i) { return i == 99; }) < static_cast<long>(u.size() / 50));
}

TEST_CASE("samplers: subset visits the listed indices and ranges", "[samplers]") {
  auto d = plain(20);
  const AttrMap listed = {
      {"indices", Indices{17, 3}}, {"ranges", std::vector<std::string>{"5:8", "18:"}}, {"shuffle", false}};
  SamplerPtr fixed = make_sampler("subset", listed, *d);
  const Indices expected = {17, 3, 5, 6, 7, 18, 19};
  CHECK(fixed->length() == 7);
  CHECK(fixed->epoch_indices(0, 0) == expected);
  CHECK(fixed->epoch_indices(5, 9) == expected);

  AttrMap shuffled = listed;
  shuffled["shuffle"] = true;
  SamplerPtr s = make_sampler("subset", shuffled, *d);
  Indices v = s->epoch_indices(4, 1);
  CHECK(v == s->epoch_indices(4, 1));
  bool differs = false;
  for (int64_t e = 0; e < 5; ++e) differs |= s->epoch_indices(4, e) != expected;
  CHECK(differs);
  std::sort(v.begin(), v.end());
  Indices sorted = expected;
  std::sort(sorted.begin(), sorted.end());
  CHECK(v == sorted);
  CHECK(make_sampler("subset", {{"ranges", std::vector<std::string>{":"}}}, *d)->length() == 20);
}

TEST_CASE("samplers: option errors name the option and what fits", "[samplers]") {
  auto d = plain(4);
  using Weights = std::vector<double>;
  CHECK_THAT(error_of("weighted_random", {{"weights", Weights{1, 2, 3}}}, *d),
             Catch::Contains("weights has 3 entries but the train split has 4 samples"));
  CHECK_THAT(error_of("weighted_random", {{"weights", Weights{1, -2, 3, 1}}}, *d), Catch::Contains("weights"));
  CHECK_THAT(error_of("weighted_random", {{"weights", Weights{0, 0, 0, 0}}}, *d), Catch::Contains("sum to 0"));
  CHECK_THAT(error_of("weighted_random", {}, *d), Catch::Contains("give weights"));
  CHECK_THAT(error_of("weighted_random", {{"weights", Weights{1, 1, 1, 1}}, {"balanced", true}}, *d),
             Catch::Contains("not both"));
  CHECK_THAT(error_of("weighted_random", {{"weights", Weights{1, 0, 1, 0}}, {"replacement", false}}, *d),
             Catch::Contains("num_samples 4 without replacement exceeds the 2 samples of non-zero weight"));
  RegressionSet reg(4);
  CHECK_THAT(error_of("weighted_random", {{"balanced", true}}, reg),
             Catch::Contains("balanced: true needs class targets") && Catch::Contains("regression"));
  CHECK_THAT(error_of("random", {{"num_samples", int64_t{-3}}}, *d), Catch::Contains("num_samples"));

  CHECK_THAT(error_of("subset", {{"indices", Indices{0, 4}}}, *d),
             Catch::Contains("indices[1] = 4 is out of range for the train split of 4 samples"));
  CHECK_THAT(error_of("subset", {{"ranges", std::vector<std::string>{"2:9"}}}, *d),
             Catch::Contains("range '2:9' is out of range"));
  CHECK_THAT(error_of("subset", {{"ranges", std::vector<std::string>{"3-5"}}}, *d), Catch::Contains("'START:STOP'"));
  CHECK_THAT(error_of("subset", {{"ranges", std::vector<std::string>{"5:3"}}}, *d), Catch::Contains("ranges"));
  CHECK_THAT(error_of("subset", {}, *d), Catch::Contains("give indices and/or ranges"));
  CHECK_THAT(error_of("subset", {{"shuffle", true}, {"seed", int64_t{1}}}, *d), Catch::Contains("seed"));
}

TEST_CASE("samplers: shard_sampler matches torch's DistributedSampler (shuffle=False)", "[samplers]") {
  const auto cases = dl::test::load_fixtures("samplers.txt");
  REQUIRE(cases.size() >= 20);
  for (const auto& c : cases) {
    INFO(c.name);
    const int64_t n = c.attr_i("n");
    // A base list that is not 0..n-1 (a fixed subset in reverse), mapped through torch's positions.
    auto d = plain(n + 3);
    Indices listed(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) listed[static_cast<size_t>(k)] = n + 2 - k;
    SamplerPtr base = make_sampler("subset", {{"indices", listed}, {"shuffle", false}}, *d);
    SamplerPtr shard = shard_sampler(base, {c.attr_i("rank"), c.attr_i("world_size")});
    const Tensor& pos = c.t("positions");
    Indices expected;
    for (int64_t k = 0; k < pos.numel(); ++k) expected.push_back(listed[static_cast<size_t>(pos.data<int64_t>()[k])]);
    CHECK(shard->length() == c.attr_i("length"));
    CHECK(shard->epoch_indices(1, 2) == expected);
  }
}

TEST_CASE("samplers: shards of a shuffled epoch cover it, each rank the same length", "[samplers]") {
  SamplerPtr base = random_sampler(10);
  Indices all;
  for (int64_t r = 0; r < 4; ++r) {
    SamplerPtr s = shard_sampler(base, {r, 4});
    Indices v = s->epoch_indices(5, 3);
    CHECK(static_cast<int64_t>(v.size()) == 3);
    all.insert(all.end(), v.begin(), v.end());
  }
  const Indices epoch = base->epoch_indices(5, 3);
  CHECK(std::set<int64_t>(all.begin(), all.end()) == std::set<int64_t>(epoch.begin(), epoch.end()));
  // Padding repeats the head of the epoch's list: positions 10 and 11 are positions 0 and 1.
  CHECK(shard_sampler(base, {2, 4})->epoch_indices(5, 3).back() == epoch[0]);
  CHECK(shard_sampler(base, {3, 4})->epoch_indices(5, 3).back() == epoch[1]);
  CHECK_THROWS_WITH(shard_sampler(base, {4, 4}),
                    Catch::Contains("invalid rank 4, rank should be in the interval [0, 3]"));
  CHECK_THROWS_WITH(shard_sampler(base, {0, 0}), Catch::Contains("world_size must be >= 1"));
}
