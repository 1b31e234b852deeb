#include "datasets/formats/tabular.h"

#include <stdexcept>

namespace dl::data::tabular {

TensorDataset::TensorDataset(std::string name, Tensor inputs, Tensor targets, DatasetInfo info,
                             std::function<std::string(int64_t)> where)
    : Dataset(std::move(name)), inputs_(std::move(inputs)), targets_(std::move(targets)), info_(std::move(info)),
      where_(std::move(where)) {
  if (!inputs_.defined() || inputs_.dim() < 1 || !inputs_.is_contiguous())
    throw std::invalid_argument("TensorDataset: inputs must be a contiguous [N, ...] tensor");
  if (info_.target_kind != TargetKind::none &&
      (!targets_.defined() || targets_.dim() < 1 || targets_.size(0) != inputs_.size(0)))
    throw std::invalid_argument("TensorDataset: targets must be [N, ...] with N = " + std::to_string(inputs_.size(0)));
}

Sample TensorDataset::get(int64_t i) const {
  check_index(i);
  Sample s;
  s.set(kInput, inputs_.select(0, i));
  if (info_.target_kind != TargetKind::none) s.set(kTarget, targets_.select(0, i));
  return s;
}

std::optional<int64_t> TensorDataset::class_of(int64_t i) const {
  if (info_.target_kind != TargetKind::class_index) return std::nullopt;
  check_index(i);
  return targets_.data<int64_t>()[i];
}

AttrSchema target_kind_attr(bool with_none) {
  std::vector<std::string> kinds = {"class", "regression", "multi_hot"};
  if (with_none) kinds.push_back("none");
  return AttrSchema::choice("target_kind", kinds, "class")
      .describe(std::string("class: one integer or name per sample -> i64 class index; regression: numbers -> f32 [K]; "
                            "multi_hot: K columns of 0/1 -> f32 [K]") +
                (with_none ? "; none: no target" : ""));
}

TargetKind parse_target_kind(const std::string& value) {
  if (value == "class") return TargetKind::class_index;
  if (value == "regression") return TargetKind::regression;
  if (value == "multi_hot") return TargetKind::multi_hot;
  if (value == "none") return TargetKind::none;
  throw std::invalid_argument("data.target_kind: expected one of 'class', 'regression', 'multi_hot', got '" + value +
                              "'");
}

AttrSchema classes_attr() {
  return AttrSchema::string_list("classes")
      .optional()
      .describe("class names in index order (class targets: names in the data map to their position here, "
                "integers stay indices); default: integers as they are, else the sorted distinct values");
}

std::vector<std::string> class_names_option(const AttrMap& options) {
  auto it = options.find("classes");
  if (it == options.end()) return {};
  return std::get<std::vector<std::string>>(it->second);
}

}  // namespace dl::data::tabular
