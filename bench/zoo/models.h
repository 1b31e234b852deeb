// Reference models of the Fashion-MNIST recipes, built in C++ (no YAML): the workloads of
// bench/bench_engine.cpp and of the engine tests that train whole models on every device
// (tests/engine/test_device_training.cpp). Graph models are built as GraphModel builds them from
// a recipe, so the graph's fusions apply. Inputs: [N, 1, 28, 28]; outputs: 10 logits (the
// autoencoder: the reconstructed image).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/graph/model.h"
#include "engine/nn/nn.h"

namespace dl::zoo {

std::shared_ptr<nn::Sequential> mlp(Generator& g);     // 784-512-256-10
std::shared_ptr<nn::Sequential> lenet(Generator& g);   // LeNet-5
std::shared_ptr<nn::Module> cnn_bn(Generator& g);      // recipes/fashion_mnist/cnn_bn.yaml
std::shared_ptr<nn::Module> resnet20(Generator& g);    // recipes/fashion_mnist/resnet20.yaml
std::shared_ptr<nn::Module> autoencoder(Generator& g); // recipes/fashion_mnist/autoencoder.yaml

// A graph node with its attributes resolved (throws on a bad one).
LayerSpec node(const std::string& name, const std::string& type, std::vector<std::string> inputs, AttrMap attrs = {});
AttrMap conv_attrs(int64_t out, int64_t k, int64_t stride, int64_t pad, bool bias = false);

}  // namespace dl::zoo
