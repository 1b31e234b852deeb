// Samples and batches as named tensors (torch.utils.data's dict samples), and what a dataset
// says about them.
//
//   Sample s = dataset.get(17);           // {"input": u8 [1, 28, 28], "target": i64 []}
//   Batch b = collate({s0, s1, ...});     // {"input": [B, 1, 28, 28], "target": i64 [B]}
//
// "input" and "target" are the names the training loop reads; a format may add more (an
// "index" is added by the loader for debugging). A sample's tensor whose first dimension varies
// between samples (a token sequence) is padded by collate, which adds "<name>_lengths" (i64 [B]).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::data {

inline constexpr const char* kInput = "input";
inline constexpr const char* kTarget = "target";

// Named tensors in insertion order. Few entries (2-4): a vector beats a map.
class TensorDict {
 public:
  // Adds `name`, or replaces its tensor.
  void set(const std::string& name, Tensor t);
  bool has(std::string_view name) const { return find(name) != nullptr; }
  const Tensor* find(std::string_view name) const;
  Tensor* find(std::string_view name);
  // std::out_of_range naming `name` and the names present when absent.
  const Tensor& at(std::string_view name) const;
  Tensor& at(std::string_view name);
  const std::vector<std::pair<std::string, Tensor>>& items() const { return items_; }
  std::vector<std::pair<std::string, Tensor>>& items() { return items_; }
  size_t size() const { return items_.size(); }
  std::string names() const;  // "input, target"

 private:
  std::vector<std::pair<std::string, Tensor>> items_;
};

using Sample = TensorDict;

// What a target is; decides the loss's target, the metrics and how `eval` reports.
enum class TargetKind {
  class_index,  // i64 [] per sample, in [0, num_classes)
  regression,   // f32 [K] per sample (K = target_shape[0]) or f32 [] for one value
  multi_hot,    // f32 [num_classes] of 0/1 per sample (multi-label)
  sequence,     // i64 [T] per sample, T varying: class indices (next tokens, CTC labels)
  none,         // no target (unsupervised, or a loss that makes its own)
};
const char* target_kind_name(TargetKind k);  // "class_index", "regression", ...

struct DatasetInfo {
  Shape input_shape;              // per sample, e.g. {C, H, W}, {F}, {T}; -1 where it varies
  // Dimension 0 of the input varies from sample to sample (token sequences of a text
  // classification set): input_shape[0] is the longest, and collate pads batches to their
  // longest sample and adds "input_lengths", which the model can read as its second input.
  bool variable_length = false;
  DType input_dtype = DType::U8;  // U8 images (transforms make f32), F32 features, I64 tokens
  TargetKind target_kind = TargetKind::class_index;
  Shape target_shape;             // {} class index, {K} regression / multi-hot, {T} sequences ({-1}: varying)
  int64_t num_classes = 0;        // class_index, multi_hot, sequence (vocabulary); 0 otherwise
  std::vector<std::string> class_names;  // index -> name; empty = no names (printed as 0, 1, ...)
  std::vector<std::string> notes;        // what the format wants users to know ("12 files skipped: ...")
  std::string class_name(int64_t c) const;  // class_names[c] or std::to_string(c)
};

// One batch: collated named tensors plus where its samples come from.
struct Batch {
  TensorDict tensors;            // "input" [B, ...], "target" [B, ...], "<name>_lengths" when padded
  int64_t index_in_epoch = 0;    // 0-based batch index within the epoch
  std::vector<int64_t> indices;  // [B] dataset indices of the samples

  const Tensor& input() const { return tensors.at(kInput); }
  const Tensor& target() const { return tensors.at(kTarget); }
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

// Stacks the samples' tensors name by name (every sample must have the same names). A tensor
// whose shapes agree except in dimension 0 is padded there with `pad_value` to the longest and
// "<name>_lengths" (i64 [B], each sample's size(0)) is added; any other shape difference is
// std::invalid_argument naming the tensor and the two shapes. Dtypes must agree.
TensorDict collate(const std::vector<Sample>& samples, double pad_value = 0.0);

}  // namespace dl::data
