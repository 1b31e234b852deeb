// Parameter initialisers with torch.nn.init's formulas (names, defaults, gains). Each fills
// a tensor in place (no grad) from an explicit Generator, so a model's initial weights are a
// function of the seed. Values differ from PyTorch's (different RNG); distributions match.
#pragma once
#include <optional>
#include <string>
#include <utility>

#include "engine/ops/random.h"
#include "engine/tensor/tensor.h"

namespace dl::nn::init {

// (fan_in, fan_out) of a weight [out, in, *kernel]: fan_in = in * prod(kernel),
// fan_out = out * prod(kernel). Throws for tensors with fewer than 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);
// torch.nn.init.calculate_gain: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
// leaky_relu sqrt(2 / (1 + slope^2)) (slope default 0.01), selu 3/4.
double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt);

void uniform_(Tensor& t, Generator& gen, double a = 0.0, double b = 1.0);
void normal_(Tensor& t, Generator& gen, double mean = 0.0, double std = 1.0);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Generator& gen, double gain = 1.0);
// N(0, s), s = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor& t, Generator& gen, double gain = 1.0);
// U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan); mode "fan_in" | "fan_out".
// Linear/Conv2d defaults use a = sqrt(5), which gives b = 1 / sqrt(fan_in).
void kaiming_uniform_(Tensor& t, Generator& gen, double a = 0.0, const std::string& mode = "fan_in",
                      const std::string& nonlinearity = "leaky_relu");
// N(0, s), s = gain(nonlinearity, a) / sqrt(fan).
void kaiming_normal_(Tensor& t, Generator& gen, double a = 0.0, const std::string& mode = "fan_in",
                     const std::string& nonlinearity = "leaky_relu");

}  // namespace dl::nn::init
