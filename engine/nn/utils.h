// torch.nn.utils' parameter-vector helpers: a model's parameters as one flat vector and back
// (for second-order methods such as LBFGS, weight averaging, or inspecting a model).
//
//   Tensor v = nn::parameters_to_vector(model->parameters());   // [total numel]
//   nn::vector_to_parameters(v, model->parameters());           // copies v back, in place
#pragma once
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::nn {

// The parameters flattened and concatenated in order (torch.cat([p.view(-1) ...])): a new
// 1-d tensor, differentiable like torch's. All parameters must be on one device and of one
// dtype; an empty list gives an empty f32 vector.
Tensor parameters_to_vector(const std::vector<Tensor>& parameters);

// Copies consecutive slices of `vec` (1-d, exactly as many elements as the parameters hold
// together) into the parameters, in place and without recording autograd. torch re-points
// each param.data at a view of `vec` instead; copying keeps every parameter's identity and
// storage (an optimizer or a module built on them is unaffected) and leaves `vec` unaliased.
// The values are cast to each parameter's dtype; `vec` must be on the parameters' device.
void vector_to_parameters(const Tensor& vec, const std::vector<Tensor>& parameters);

}  // namespace dl::nn
