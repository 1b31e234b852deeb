// Inputs the libFuzzer targets (tests/fuzz) once crashed on, replayed through the public entry
// points in the normal test suite. Each file is a fuzz input: one flags byte, then the file's
// bytes (tests/fuzz/README.md); the expected outcome is the documented error naming the file.
#include <catch2/catch.hpp>
#include <string>

#include "exporters/checkpoint.h"
#include "tests/support/tempdir.h"

using Catch::Matchers::Contains;
using dl::test::TempDir;

namespace {

// The file bytes of fuzz input tests/fuzz/<target>/<name> (its flags byte dropped).
std::string fuzz_input_file(const std::string& target, const std::string& name) {
  std::string bytes = dl::test::read_file(DLTOOL_SOURCE_DIR "/tests/fuzz/" + target + "/" + name);
  REQUIRE(!bytes.empty());
  return bytes.substr(1);
}

std::string checkpoint_error_of(const std::string& path, bool weights_only) {
  try {
    dl::load_checkpoint(path, weights_only);
  } catch (const dl::CheckpointError& e) {
    return e.what();
  }
  FAIL("load_checkpoint accepted " << path);
  return "";
}

}  // namespace

TEST_CASE("fuzz regressions: a compact dataset whose header says 0 bytes is corrupt, not a crash",
          "[fuzz][checkpoint]") {
  // A foreign (h5py, no dltool user block) weights file whose scalar int64 compact dataset
  // claims 0 stored bytes: HDF5 1.10 read from a null buffer (SIGSEGV).
  TempDir dir;
  std::string path = dir.file("compact_size_0.h5", fuzz_input_file("checkpoint", "compact_size_0"));
  for (bool weights_only : {true, false}) {
    std::string msg = checkpoint_error_of(path, weights_only);
    CAPTURE(weights_only);
    if (weights_only) {
      CHECK_THAT(msg, Contains(path) && Contains("bn.num_batches_tracked") && Contains("stored size 0 bytes") &&
                          Contains("corrupt"));
    } else {
      CHECK_THAT(msg, Contains(path));  // a full load refuses foreign files before reading tensors
    }
  }
}
