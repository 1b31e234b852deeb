#include "exporters/onnx_verify.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

namespace dl::onnx_export {

VerifyResult verify_with_opencv(const std::string& onnx_path, const Tensor& input, const Tensor& reference,
                                double rtol, double atol) {
  VerifyResult r;
  r.runtime = std::string("OpenCV DNN ") + CV_VERSION;
  const Tensor x = input.to(DType::F32).cpu().contiguous();
  const Tensor ref = reference.to(DType::F32).cpu().contiguous();
  cv::Mat out;
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
