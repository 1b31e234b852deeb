// libFuzzer target: the config loader, through the path `dltool validate` takes.
//
// Input: YAML text, then optional `key=value` overrides, separated by NUL bytes
// ("model: ...\0optimizer.lr=0.05\0train.epochs=2"). The text is written to recipe.yaml in a
// scratch directory beside a copy of recipes/fashion_mnist/base.yaml, so `extends: base.yaml`
// (and `extends: recipe.yaml`, a cycle) follow the real file path. Then:
//   load_config -> the resolved YAML must load back to the same Config (to_yaml's contract)
//   -> build_model for a [1, 28, 28] sample (shape inference, parameter creation).
// Only ConfigError and GraphError (both exit code 2 in the CLI) are acceptable failures; any
// other exception, a crash, a leak or a sanitizer report is a bug.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "configs/config.h"
#include "engine/graph/model.h"
#include "cli/run/setup.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// build_model allocates and initialises every parameter, so a valid recipe with a layer of
// 10^9 features is a legitimate out-of-memory for the fuzzer; models beyond these bounds are
// only loaded and validated, not built. (Refusing models that cannot fit is the memory
// estimate's job, tested on its own.) The bounds keep LeNet-sized models buildable.
constexpr int64_t kMaxBuiltAttr = 128;       // any integer attribute (channels, kernel, padding)
constexpr int64_t kMaxBuiltProduct = 16384;  // product of a node's integer attributes
constexpr size_t kMaxBuiltNodes = 16;

bool small_enough_to_build(const dl::Config& cfg) {
  if (cfg.model.nodes.size() > kMaxBuiltNodes) return false;
  for (const auto& node : cfg.model.nodes) {
    int64_t product = 1;
    auto fits = [&](int64_t x) {
      if (x > kMaxBuiltAttr || x < -kMaxBuiltAttr) return false;
      product *= std::max<int64_t>(1, x < 0 ? -x : x);
      return product <= kMaxBuiltProduct;
    };
    for (const auto& [key, value] : node.attrs) {
      if (const auto* i = std::get_if<int64_t>(&value); i && !fits(*i)) return false;
      if (const auto* v = std::get_if<std::vector<int64_t>>(&value))
        for (int64_t x : *v)
          if (!fits(x)) return false;
    }
  }
  return true;
}

std::string base_recipe() {
  std::ifstream in(DLTOOL_SOURCE_DIR "/recipes/fashion_mnist/base.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    dl::fuzz::write_scratch("base.yaml", base_recipe());
    return true;
  }();
  (void)init;
  auto parts = dl::fuzz::split(std::string_view(reinterpret_cast<const char*>(data), size), '\0');
  std::string path = dl::fuzz::write_scratch("recipe.yaml", parts[0]);
  std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  try {
    dl::Config cfg = dl::load_config(path, overrides);
    dl::Config again = dl::load_config_string(cfg.resolved_yaml, path);
    if (!(again == cfg)) __builtin_trap();  // to_yaml lost or changed a setting
    if (small_enough_to_build(cfg)) dl::train::build_model(cfg, {1, 28, 28}, static_cast<uint64_t>(cfg.train.seed));
  } catch (const dl::ConfigError&) {
  } catch (const dl::GraphError&) {
  }
  return 0;
}
