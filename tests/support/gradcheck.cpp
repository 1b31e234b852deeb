#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

namespace dl::test {

GradcheckResult gradcheck(const std::function<Tensor(const TensorList&)>& f, const TensorList& inputs,
                          double eps, double atol, double rtol) {
  GradcheckResult res;
  std::ostringstream os;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad() && t.dtype() != DType::F64) {
      res.ok = false;
      res.report = "gradcheck needs float64 inputs";
      return res;
    }
  // Analytic.
  Tensor out = f(inputs);
  Generator gen(1234);
  Tensor w = rand(out.shape(), gen, TensorOptions(DType::F64, out.device()));
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) const_cast<Tensor&>(t).zero_grad();
  Tensor loss = sum(mul(out, w));
  loss.backward();
  auto objective = [&]() {
    NoGradGuard ng;
    return sum(mul(f(inputs), w)).item();
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor analytic = x.grad().defined() ? x.grad() : zeros_like(x);
    std::vector<double> ga = analytic.to_vector<double>();
    Tensor xc = x.detach();  // shares storage: perturb in place
    if (!xc.is_contiguous() || !xc.device().is_cpu()) {
      res.ok = false;
      res.report = "gradcheck needs contiguous cpu inputs";
      return res;
    }
    double* p = xc.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = p[i];
      p[i] = orig + eps;
      double fp = objective();
      p[i] = orig - eps;
      double fm = objective();
      p[i] = orig;
      double numeric = (fp - fm) / (2 * eps);
      double err = std::fabs(numeric - ga[i]);
      if (err > atol + rtol * std::fabs(numeric)) {
        res.ok = false;
        os << "input " << k << " element " << i << ": analytic " << ga[i] << " numeric " << numeric << "\n";
      }
    }
  }
  res.report = res.ok ? "gradcheck passed" : os.str();
  return res;
}

}  // namespace dl::test
