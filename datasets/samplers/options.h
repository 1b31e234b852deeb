// Options more than one sampler registration shares (random, weighted_random).
#pragma once
#include <cstdint>

#include "datasets/dataset.h"
#include "engine/graph/attr_schema.h"

namespace dl::data {

// num_samples: indices per epoch; `auto` (stored as 0) means the dataset size, torch's default.
inline AttrSchema num_samples_attr() {
  return AttrSchema::integer("num_samples", 0)
      .at_least(1)
      .keyword("auto", 0)
      .describe("indices per epoch (auto = the dataset size)");
}
inline int64_t num_samples_of(const AttrMap& a, const Dataset& dataset) {
  const int64_t k = attr_int(a, "num_samples");
  return k == 0 ? dataset.size() : k;
}

inline AttrSchema replacement_attr(bool def) {
  return AttrSchema::boolean("replacement", def).describe("draw with replacement (indices may repeat)");
}

}  // namespace dl::data
