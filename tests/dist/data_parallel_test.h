// What test_ddp.cpp and test_sync_bn.cpp share: this rank's shard of a batch and tolerant
// comparisons of gradients computed in a different order.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "tests/dist/dist_test.h"

namespace dl::test {

// Rows rank, rank + W, rank + 2W, ... of x (DistributedSampler's interleaving, no padding:
// the tests use batches divisible by every world size they run with: 1, 2 and 3).
inline Tensor shard_rows(const Tensor& x) {
  const int64_t w = test_group().world_size(), r = test_group().rank();
  std::vector<int64_t> idx;
  for (int64_t i = r; i < x.size(0); i += w) idx.push_back(i);
  return index_select(x, 0, from_vector<int64_t>(idx, {static_cast<int64_t>(idx.size())}));
}

inline std::vector<double> to_f64(const Tensor& t) { return t.detach().to(DType::F64).contiguous().to_vector<double>(); }

inline double max_abs(const Tensor& t) {
  double big = 0;
  for (double v : to_f64(t)) big = std::max(big, std::abs(v));
  return big;
}

// |a - b| <= rel * max(|b|, floor) elementwise: relative, with a floor (by default b's largest
// magnitude / 100) so that elements near zero are not held to a relative error of rounding noise.
inline void check_close(const Tensor& a, const Tensor& b, double rel, double floor = -1) {
  REQUIRE(a.defined());
  REQUIRE(b.defined());
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = to_f64(a), y = to_f64(b);
  if (floor < 0) floor = max_abs(b) / 100;
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i << ": " << x[i] << " vs " << y[i]);
    CHECK(std::abs(x[i] - y[i]) <= rel * std::max(std::abs(y[i]), floor));
  }
}

}  // namespace dl::test
