// The model graph's layer registry: every YAML layer type the schema knows can be built.
#include <catch2/catch.hpp>

#include "engine/graph/layer_schema.h"
#include "engine/graph/model.h"

TEST_CASE("graph: every registered layer type has a builder", "[graph]") {
  for (const std::string& type : dl::layer_type_names()) {
    INFO(type);
    CHECK(dl::has_layer_builder(type));
  }
  CHECK_FALSE(dl::has_layer_builder("no_such_layer"));
  dl::LayerSpec spec{"x", "no_such_layer", {"input"}, {}, {}};
  dl::Generator gen(0);
  CHECK_THROWS_AS(dl::build_layer(spec, {{1, 2, 2}}, gen), dl::GraphError);
}
