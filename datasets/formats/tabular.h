// Shared by the csv and hdf5 formats (datasets/formats/csv.cpp, hdf5.cpp): an in-memory dataset
// whose samples are rows of stacked tensors, and the target options both formats read.
//
//   inputs  f32 [N, F]  (csv)  or any [N, ...] (hdf5 in_memory)
//   targets i64 [N]     class_index          -> sample "target" i64 []
//           f32 [N, K]  regression/multi_hot -> sample "target" f32 [K]
//   TensorDataset ds("train", inputs, targets, info, [](int64_t i) { return "wine.csv:" + ...; });
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "engine/graph/attr_schema.h"

namespace dl::data::tabular {

// Sample i is {"input": inputs[i], "target": targets[i]} as views (no copy); no "target" when
// info.target_kind is none (targets undefined).
class TensorDataset final : public Dataset {
 public:
  // inputs [N, ...] and targets [N, ...] contiguous cpu; `where(i)` names sample i for messages.
  TensorDataset(std::string name, Tensor inputs, Tensor targets, DatasetInfo info,
                std::function<std::string(int64_t)> where);

  int64_t size() const override { return inputs_.size(0); }
  Sample get(int64_t i) const override;
  const DatasetInfo& info() const override { return info_; }
  std::optional<int64_t> class_of(int64_t i) const override;
  std::string describe(int64_t i) const override { return where_(i); }

 private:
  Tensor inputs_;
  Tensor targets_;
  DatasetInfo info_;
  std::function<std::string(int64_t)> where_;
};

// data.target_kind: class | regression | multi_hot (| none when `with_none`), default class.
AttrSchema target_kind_attr(bool with_none);
TargetKind parse_target_kind(const std::string& value);  // the names target_kind_attr allows
// data.classes: optional list of class names (index -> name).
AttrSchema classes_attr();
// The names data.classes gives ({} when absent).
std::vector<std::string> class_names_option(const AttrMap& options);

}  // namespace dl::data::tabular
