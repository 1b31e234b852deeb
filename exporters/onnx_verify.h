// `dltool export --verify`: runs an exported ONNX file through OpenCV's DNN module (an
// independent ONNX importer and CPU runtime) and compares its output with dltool's own.
#pragma once
#include <string>

#include "engine/tensor/tensor.h"

namespace dl::onnx_export {

struct VerifyResult {
  bool ran = false;           // false: OpenCV could not load or run the model (see `message`)
  bool within_tolerance = false;
  double max_abs_diff = 0, max_rel_diff = 0;  // rel: |a - b| / max(|b|, 1e-12)
  std::string runtime;        // "OpenCV DNN 4.6.0"
  std::string message;        // OpenCV's error when !ran
};

// The first node of the serialized model that mixes samples of a batch (a ReduceMean over axis
// 0: BatchNorm without running statistics), or "" when none does. OpenCV DNN 4.6 computes such
// reductions per sample, so its output is only comparable at batch size 1.
std::string batch_coupling_node(const std::string& onnx_bytes);

// Runs `onnx_path` on `input` (float32 CPU, [N, ...]) and compares its output with `reference`
// (what dltool computed): within tolerance when every |a - b| <= atol + rtol * |b|.
VerifyResult verify_with_opencv(const std::string& onnx_path, const Tensor& input, const Tensor& reference,
                                double rtol, double atol);

}  // namespace dl::onnx_export
