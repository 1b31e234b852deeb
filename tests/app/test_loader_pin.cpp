// data.loader.pin_memory (auto | true | false) and train.device as the trainer reads them: the
// parts that need no GPU (batches are pinned only where one is usable).
#include <catch2/catch.hpp>

#include <filesystem>

#include "cli/run/trainer.h"
#include "configs/config.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

using namespace dl;

namespace {

const std::string kRecipe =
    "model:\n"
    "  layers: [flatten, {type: linear, out_features: 10}]\n"
    "data: {dataset: fashion_mnist, val_size: 100}\n";

Config load(const std::vector<std::string>& overrides) {
  return load_config_string(kRecipe, "pin.yaml", overrides);
}

// The one diagnostic of a ConfigError thrown by `f`.
template <class F>
Diagnostic config_error_of(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    REQUIRE(e.diagnostics().size() == 1);
    return e.diagnostics().front();
  }
  FAIL("expected a ConfigError");
  return {};
}

}  // namespace

TEST_CASE("config: data.loader.pin_memory is auto, true or false", "[configs][pin_memory]") {
  CHECK(load({}).data.loader.pin_memory == "auto");
  CHECK(load({"data.loader.pin_memory=false"}).data.loader.pin_memory == "false");
  CHECK(load({"data.loader.pin_memory=true", "train.device=cuda"}).data.loader.pin_memory == "true");
  const Diagnostic d = config_error_of([] { load({"data.loader.pin_memory=yes"}); });
  CHECK(d.path == "data.loader.pin_memory");
}

TEST_CASE("config: pin_memory true on a cpu device is a config error naming the key and the fix",
          "[configs][pin_memory]") {
  const Diagnostic d = config_error_of([] { train::loader_options(load({"data.loader.pin_memory=true"}), true); });
  CHECK(d.path == "data.loader.pin_memory");
  CHECK_THAT(d.message, Catch::Contains("train.device is 'cpu'"));
  CHECK_THAT(d.hint, Catch::Contains("data.loader.pin_memory: auto") && Catch::Contains("train.device: cuda"));
  // auto and false never pin on the cpu; without a usable GPU nothing is pinned either.
  CHECK_FALSE(train::loader_options(load({}), true).batch_hook);
  CHECK_FALSE(train::loader_options(load({"data.loader.pin_memory=false"}), false).batch_hook);
  if (!cuda_available()) {
    CHECK_FALSE(train::loader_options(load({"train.device=cuda"}), true).batch_hook);
  } else {
    CHECK(train::loader_options(load({"train.device=cuda"}), true).batch_hook);
    CHECK_FALSE(train::loader_options(load({"train.device=cuda", "data.loader.pin_memory=false"}), true).batch_hook);
  }
}

TEST_CASE("cli: dltool train with pin_memory true on the cpu exits 2 naming the key", "[cli][pin_memory]") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) return;
  dl::test::TempDir d;
  const std::string path = d.file("pin.yaml", kRecipe + "train: {max_steps: 1}\n");
  const auto r = dl::test::run_process({DLTOOL_BINARY, "train", path, "data.loader.pin_memory=true", "--run-dir",
                                        (d.path / "run").string()},
                                       {.merge_stderr = true});
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("data.loader.pin_memory") && Catch::Contains("train.device: cuda"));
}
