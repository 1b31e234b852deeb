#include "exporters/onnx_verify.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>
#include <onnx/onnx_pb.h>

namespace dl::onnx_export {

std::string batch_coupling_node(const std::string& onnx_bytes) {
  onnx::ModelProto m;
  if (!m.ParseFromString(onnx_bytes)) return "";
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "ReduceMean") continue;
    for (const auto& a : n.attribute())
      if (a.name() == "axes")
        for (int64_t axis : a.ints())
          if (axis == 0) return n.name();
  }
  return "";
}

VerifyResult verify_with_opencv(const std::string& onnx_path, const Tensor& input, const Tensor& reference,
                                double rtol, double atol) {
  VerifyResult r;
  r.runtime = std::string("OpenCV DNN ") + CV_VERSION;
  const Tensor x = input.to(DType::F32).cpu().contiguous();
  const Tensor ref = reference.to(DType::F32).cpu().contiguous();
  cv::Mat out;
  // OpenCV logs import errors itself; the message is reported through VerifyResult instead.
  const auto level = cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  struct RestoreLevel {
    cv::utils::logging::LogLevel level;
    ~RestoreLevel() { cv::utils::logging::setLogLevel(level); }
  } restore{level};
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx_path);
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    std::vector<int> sizes(x.shape().begin(), x.shape().end());
    // OpenCV only reads the blob; the const_cast is for cv::Mat's constructor signature.
    cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, const_cast<float*>(x.data<float>()));
    net.setInput(blob);
    out = net.forward().clone();
  } catch (const cv::Exception& e) {
    r.message = e.what();
    return r;
  }
  r.ran = true;
  if (out.type() != CV_32F || static_cast<int64_t>(out.total()) != ref.numel()) {
    r.message = "the output has " + std::to_string(out.total()) + " elements, dltool's has " +
                std::to_string(ref.numel());
    return r;
  }
  const float* a = out.ptr<float>();
  const float* b = ref.data<float>();
  r.within_tolerance = true;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= atol + rtol * std::fabs(b[i]))) r.within_tolerance = false;  // NaN fails too
    r.max_abs_diff = std::max(r.max_abs_diff, d);
    r.max_rel_diff = std::max(r.max_rel_diff, d / std::max(std::fabs(static_cast<double>(b[i])), 1e-12));
  }
  return r;
}

}  // namespace dl::onnx_export
