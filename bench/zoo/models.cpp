#include "bench/zoo/models.h"

#include <stdexcept>

namespace dl::zoo {

std::shared_ptr<nn::Sequential> mlp(Generator& g) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Flatten>());
  m->push_back(std::make_shared<nn::Linear>(784, 512, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(512, 256, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(256, 10, true, g));
  return m;
}

std::shared_ptr<nn::Sequential> lenet(Generator& g) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Conv2d>(1, 6, 5, 1, 2, 1, 1, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::MaxPool2d>(2));
  m->push_back(std::make_shared<nn::Conv2d>(6, 16, 5, 1, 0, 1, 1, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::MaxPool2d>(2));
  m->push_back(std::make_shared<nn::Flatten>());
  m->push_back(std::make_shared<nn::Linear>(400, 120, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(120, 84, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(84, 10, true, g));
  return m;
}

// Graph models, as GraphModel builds them from a recipe (so the graph's fusions apply).
LayerSpec node(const std::string& name, const std::string& type, std::vector<std::string> inputs, AttrMap attrs) {
  LayerSpec s{name, type, std::move(inputs), std::move(attrs), {}};
  if (auto problems = resolve_layer_attrs(s); !problems.empty())
    throw std::runtime_error("zoo: bad node " + name);
  return s;
}

AttrMap conv_attrs(int64_t out, int64_t k, int64_t stride, int64_t pad, bool bias) {
  return {{"out_channels", out}, {"kernel_size", k}, {"stride", stride}, {"padding", pad}, {"bias", bias}};
}

namespace {

// A chain of nodes, each reading the one before (the first reads the model's input), as a
// recipe's `layers:` list builds it.
struct Chain {
  ModelSpec spec;
  std::string prev = "input";
  void add(const std::string& name, const std::string& type, AttrMap attrs = {}) {
    spec.nodes.push_back(node(name, type, {prev}, std::move(attrs)));
    prev = name;
  }
  std::shared_ptr<nn::Module> build(Generator& g) const {
    return std::make_shared<GraphModel>(spec, Shape{1, 28, 28}, g);
  }
};

}  // namespace

// recipes/fashion_mnist/cnn_bn.yaml's model (bench/torch_recipes.py "cnn_bn").
std::shared_ptr<nn::Module> cnn_bn(Generator& g) {
  Chain c;
  c.add("conv1", "conv2d", conv_attrs(32, 3, 1, 1));
  c.add("bn1", "batch_norm2d");
  c.add("relu1", "relu");
  c.add("pool1", "max_pool2d", {{"kernel_size", int64_t{2}}});
  c.add("conv2", "conv2d", conv_attrs(64, 3, 1, 1));
  c.add("bn2", "batch_norm2d");
  c.add("relu2", "relu");
  c.add("pool2", "max_pool2d", {{"kernel_size", int64_t{2}}});
  c.add("flatten", "flatten");
  c.add("fc1", "linear", {{"out_features", int64_t{256}}});
  c.add("relu3", "relu");
  c.add("dropout", "dropout", {{"p", 0.25}});
  c.add("fc2", "linear", {{"out_features", int64_t{10}}});
  return c.build(g);
}

// recipes/fashion_mnist/resnet20.yaml's nodes, as its blocks expand (torchvision's BasicBlock).
std::shared_ptr<nn::Module> resnet20(Generator& g) {
  ModelSpec m;
  m.nodes.push_back(node("conv1", "conv2d", {"input"}, conv_attrs(16, 3, 1, 1)));
  m.nodes.push_back(node("bn1", "batch_norm2d", {"conv1"}));
  m.nodes.push_back(node("relu", "relu", {"bn1"}));
  std::string prev = "relu";
  int64_t cin = 16;
  for (int64_t stage = 1; stage <= 3; ++stage) {
    const int64_t cout = 16 << (stage - 1);
    for (int i = 0; i < 3; ++i) {
      const int64_t stride = i == 0 && stage > 1 ? 2 : 1;
      const std::string p = "layer" + std::to_string(stage) + "." + std::to_string(i) + ".";
      m.nodes.push_back(node(p + "conv1", "conv2d", {prev}, conv_attrs(cout, 3, stride, 1)));
      m.nodes.push_back(node(p + "bn1", "batch_norm2d", {p + "conv1"}));
      m.nodes.push_back(node(p + "relu1", "relu", {p + "bn1"}));
      m.nodes.push_back(node(p + "conv2", "conv2d", {p + "relu1"}, conv_attrs(cout, 3, 1, 1)));
      m.nodes.push_back(node(p + "bn2", "batch_norm2d", {p + "conv2"}));
      std::string shortcut = prev;
      if (stride != 1 || cin != cout) {
        m.nodes.push_back(node(p + "downsample.0", "conv2d", {prev}, conv_attrs(cout, 1, stride, 0)));
        m.nodes.push_back(node(p + "downsample.1", "batch_norm2d", {p + "downsample.0"}));
        shortcut = p + "downsample.1";
      }
      m.nodes.push_back(node(p + "add", "add", {p + "bn2", shortcut}));
      m.nodes.push_back(node(p + "relu2", "relu", {p + "add"}));
      prev = p + "relu2";
      cin = cout;
    }
  }
  m.nodes.push_back(node("avgpool", "adaptive_avg_pool2d", {prev}, {{"output_size", int64_t{1}}}));
  m.nodes.push_back(node("flatten", "flatten", {"avgpool"}));
  m.nodes.push_back(node("fc", "linear", {"flatten"}, {{"out_features", int64_t{10}}}));
  return std::make_shared<GraphModel>(m, Shape{1, 28, 28}, g);
}

// recipes/fashion_mnist/autoencoder.yaml's model: conv encoder 1x28x28 -> 16x14x14 -> 32x7x7,
// ConvTranspose2d decoder back to 1x28x28, sigmoid (bench/autoencoder_torch.py's AutoEncoder).
std::shared_ptr<nn::Module> autoencoder(Generator& g) {
  auto up = [](int64_t out) {  // stride 2, output_padding 1: doubles the size
    AttrMap a = conv_attrs(out, 3, 2, 1, true);
    a["output_padding"] = int64_t{1};
    return a;
  };
  Chain c;
  c.add("encoder.0", "conv2d", conv_attrs(16, 3, 2, 1, true));
  c.add("encoder.1", "relu");
  c.add("encoder.2", "conv2d", conv_attrs(32, 3, 2, 1, true));
  c.add("encoder.3", "relu");
  c.add("decoder.0", "conv_transpose2d", up(16));
  c.add("decoder.1", "relu");
  c.add("decoder.2", "conv_transpose2d", up(1));
  c.add("decoder.3", "sigmoid");
  return c.build(g);
}

}  // namespace dl::zoo
