#include "engine/nn/utils.h"

#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/shape.h"

namespace dl::nn {
namespace {

// torch's _check_param_device: every parameter on the device of the first.
void check_same_device(const std::vector<Tensor>& parameters, const char* fn) {
  for (const Tensor& p : parameters) {
    if (!p.defined()) throw std::invalid_argument(std::string(fn) + ": a parameter is undefined");
    if (p.device() != parameters.front().device())
      throw std::invalid_argument(std::string(fn) +
                                  ": Found two parameters on different devices, this is currently not supported.");
  }
}

}  // namespace

Tensor parameters_to_vector(const std::vector<Tensor>& parameters) {
  if (parameters.empty()) return empty({0});
  check_same_device(parameters, "parameters_to_vector");
  std::vector<Tensor> flat;
  flat.reserve(parameters.size());
  for (const Tensor& p : parameters) {
    if (p.dtype() != parameters.front().dtype())
      throw std::invalid_argument("parameters_to_vector: parameters of different dtypes (" +
                                  std::string(dtype_name(parameters.front().dtype())) + " and " +
                                  dtype_name(p.dtype()) + ")");
    flat.push_back(p.reshape({-1}));
  }
  return cat(flat, 0);
}

void vector_to_parameters(const Tensor& vec, const std::vector<Tensor>& parameters) {
  if (!vec.defined()) throw std::invalid_argument("vector_to_parameters: expected a tensor, got an undefined one");
  if (vec.dim() != 1)
    throw std::invalid_argument("vector_to_parameters: expected a 1-d vector, got shape " + shape_str(vec.shape()));
  int64_t total = 0;
  if (!parameters.empty()) check_same_device(parameters, "vector_to_parameters");
  for (const Tensor& p : parameters) total += p.numel();
  if (vec.numel() != total)
    throw std::invalid_argument("vector_to_parameters: the vector has " + std::to_string(vec.numel()) +
                                " elements, the parameters hold " + std::to_string(total));
  if (!parameters.empty() && vec.device() != parameters.front().device())
    throw std::invalid_argument("vector_to_parameters: the vector is on " + vec.device().str() +
                                ", the parameters on " + parameters.front().device().str());
  NoGradGuard ng;
  int64_t offset = 0;
  for (const Tensor& p : parameters) {
    const int64_t n = p.numel();
    Tensor target = p;
    target.copy_(vec.narrow(0, offset, n).view(p.shape()));
    offset += n;
  }
}

}  // namespace dl::nn
