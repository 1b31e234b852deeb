// Finite-difference gradient check in float64 (like torch.autograd.gradcheck / Caffe's
// GradientChecker). `f` maps the inputs to one output tensor; the check compares the analytic
// gradient of sum(out * w) (w fixed random weights) with central differences for every input
// element of every input that requires grad.
#pragma once
#include <functional>
#include <string>

#include "engine/ops.h"

namespace dl::test {

struct GradcheckResult {
  bool ok = true;
  std::string report;
};

GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace dl::test

#define REQUIRE_GRADCHECK(f, inputs)                    \
  do {                                                  \
    auto dl_gc_ = ::dl::test::gradcheck((f), (inputs)); \
    INFO(dl_gc_.report);                                \
    REQUIRE(dl_gc_.ok);                                 \
  } while (0)
