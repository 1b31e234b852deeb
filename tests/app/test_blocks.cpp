// model.blocks (configs/blocks.cpp): reusable parameterised blocks expand into nodes whose
// dotted names give PyTorch's state_dict keys; ResNet-20 written with them matches
// torchvision's keys and shapes (tests/fixtures/gen_resnet20_keys.py).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "cli/run/setup.h"
#include "configs/config.h"

using namespace dl;

namespace {

const std::string kData = "data: {dataset: fashion_mnist}\n";

Config load(const std::string& yaml) { return load_config_string(yaml + kData, "blocks.yaml"); }

std::string errors_of(const std::string& yaml) {
  try {
    load(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError for:\n" << yaml);
  return "";
}

// A two-layer block with a required and a defaulted parameter.
const std::string kBlocks =
    "model:\n"
    "  blocks:\n"
    "    mlp_block:\n"
    "      params: {width: null, act: relu}\n"
    "      layers:\n"
    "        - {type: linear, out_features: $width, name: fc}\n"
    "        - {type: $act, name: act}\n";

}  // namespace

TEST_CASE("blocks: recipes/fashion_mnist/resnet20.yaml has torchvision ResNet-20's state_dict", "[configs][blocks]") {
  Config cfg = load_config(DLTOOL_SOURCE_DIR "/recipes/fashion_mnist/resnet20.yaml");
  CHECK_FALSE(cfg.model.sequential);
  auto model = train::build_model(cfg, {1, 28, 28}, 0);
  std::ifstream in(DLTOOL_SOURCE_DIR "/tests/fixtures/resnet20_state_dict.txt");
  std::vector<std::string> expected, got;
  for (std::string line; std::getline(in, line);) expected.push_back(line);
  for (const auto& [key, t] : model->state_dict()) {
    std::string line = key;
    for (int64_t d : t.shape()) line += " " + std::to_string(d);
    got.push_back(line);
  }
  REQUIRE(expected.size() == 128);
  CHECK(got == expected);
  CHECK(model->num_parameters() == 272186);
  CHECK(model->output_shape() == Shape{10});
  // The resolved YAML is the expanded graph, and loads back to the same config.
  CHECK(cfg.resolved_yaml.find("name: layer3.2.relu2") != std::string::npos);
  CHECK(load_config_string(cfg.resolved_yaml, "resolved.yaml") == cfg);
}

TEST_CASE("blocks: parameters, defaults, repeat with then:, names and inputs", "[configs][blocks]") {
  Config c = load(kBlocks +
                  "  nodes:\n"
                  "    - {name: flat, type: flatten}\n"
                  "    - {name: body, type: mlp_block, width: 8, repeat: {count: 3, then: {width: 4, act: tanh}}}\n"
                  "    - {name: head, type: mlp_block, inputs: [flat], width: 2, act: sigmoid}\n"
                  "    - {name: out, type: add, inputs: [body, head]}\n"
                  "  output: out\n");
  std::vector<std::string> names, types;
  for (const auto& n : c.model.nodes) {
    names.push_back(n.name);
    types.push_back(n.type);
  }
  CHECK(names == std::vector<std::string>{"flat", "body.0.fc", "body.0.act", "body.1.fc", "body.1.act", "body.2.fc",
                                          "body.2.act", "head.fc", "head.act", "out"});
  CHECK(types == std::vector<std::string>{"flatten", "linear", "relu", "linear", "tanh", "linear", "tanh", "linear",
                                          "sigmoid", "add"});
  CHECK(c.model.nodes[1].get_int("out_features") == 8);
  CHECK(c.model.nodes[3].get_int("out_features") == 4);
  CHECK(c.model.nodes[1].inputs == std::vector<std::string>{"flat"});
  CHECK(c.model.nodes[3].inputs == std::vector<std::string>{"body.0.act"});
  CHECK(c.model.nodes[7].inputs == std::vector<std::string>{"flat"});
  CHECK(c.model.nodes[9].inputs == std::vector<std::string>{"body.2.act", "head.act"});
  CHECK(c.model.output == "out");
  // A block used in `layers:` runs in sequence like any layer; its output is the block's name.
  Config s = load(kBlocks + "  layers: [flatten, {type: mlp_block, width: 3}, {type: linear, out_features: 2}]\n");
  REQUIRE(s.model.nodes.size() == 4);
  CHECK(s.model.nodes[1].name == "1.fc");
  CHECK(s.model.nodes[3].inputs == std::vector<std::string>{"1.act"});
  CHECK(load_config_string(s.resolved_yaml, "resolved.yaml") == s);
}

TEST_CASE("blocks: mistakes name the block, the parameter and the fix", "[configs][blocks]") {
  const std::string nodes = "  nodes:\n    - {name: flat, type: flatten}\n";
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: b, type: mlp_block}\n"),
             Catch::Contains("block 'mlp_block' needs parameter 'width'"));
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: b, type: mlp_block, width: 2, widht: 3}\n"),
             Catch::Contains("block 'mlp_block' has no parameter 'widht'"));
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: b, type: mlp_block, width: 2, repeat: 0}\n"),
             Catch::Contains("expected a count from 1 to 1000"));
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: a, type: mlp_block, width: 2}\n    - {name: b, type: relu, repeat: 2}\n"),
             Catch::Contains("repeat: is for blocks (model.blocks); 'relu' is a layer"));
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: b, type: mlp_block, width: $w}\n"),
             Catch::Contains("unknown block parameter '$w'"));
  CHECK_THAT(errors_of("model:\n  blocks:\n    relu: {layers: [relu]}\n  layers: [flatten]\n"),
             Catch::Contains("'relu' is a layer type"));
  // A parameter value of the wrong kind is reported where the node gives it.
  CHECK_THAT(errors_of(kBlocks + nodes + "    - {name: b, type: mlp_block, width: wide}\n"),
             Catch::Contains("blocks.yaml:10:41: error: model.nodes[1].out_features: expected 'num_classes' or an integer >= 1, got 'wide'"));
  // Other problems of a block's layer are reported where the block writes it.
  CHECK_THAT(errors_of("model:\n  blocks:\n    b: {layers: [{type: linear, out_features: 2, bogus: 1}]}\n  layers: [b]\n"),
             Catch::Contains("blocks.yaml:3:"));
  // A block that uses itself stops at the nesting limit instead of recursing forever.
  CHECK_THAT(errors_of("model:\n  blocks:\n    loop: {layers: [flatten, loop]}\n  layers: [loop]\n"),
             Catch::Contains("blocks nested more than 8 deep"));
}
