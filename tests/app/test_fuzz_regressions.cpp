// Inputs the libFuzzer targets (tests/fuzz) once crashed on, replayed through the public entry
// points in the normal test suite. Each file is a fuzz input: one flags byte, then the file's
// bytes (tests/fuzz/README.md); the expected outcome is the documented error naming the file.
#include <catch2/catch.hpp>
#include <string>

#include "datasets/data_error.h"
#include "datasets/formats/image_folder.h"
#include "exporters/checkpoint.h"
#include "exporters/checkpoint_userblock.h"
#include "tests/support/process.h"
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

// The file fuzz_checkpoint builds from an input with flags bit 0: the user block re-sealed with
// the CRC of the bytes after it, so the file passes dltool's own check and reaches HDF5.
std::string resealed_checkpoint(std::string file) {
  namespace ck = dl::ckpt_detail;
  REQUIRE(file.size() > ck::kUserBlockBytes);
  const size_t n = file.size() - ck::kUserBlockBytes;
  file.replace(0, ck::kUserBlockBytes, ck::user_block(n, ck::crc32c(file.data() + ck::kUserBlockBytes, n)));
  return file;
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

TEST_CASE("fuzz regressions: a checkpoint HDF5 loops on ends with an error naming the file, not a hang",
          "[fuzz][checkpoint]") {
  // tests/fuzz/hdf5_known/global_heap_hang: a checkpoint (re-sealed, so it passes our CRC) whose
  // global heap makes HDF5 1.10's H5Aread loop forever. The read watchdog ends it.
  std::string file =
      resealed_checkpoint(dl::test::read_file(DLTOOL_SOURCE_DIR "/tests/fuzz/hdf5_known/global_heap_hang").substr(1));
  TempDir dir;
  std::string path = dir.file("hang.h5", file);
  dl::test::ProcessResult r = dl::test::run_process(
      {DLTOOL_BINARY, "inspect", path}, {.env = {{"DLTOOL_CHECKPOINT_READ_TIMEOUT", "2"}}, .timeout_s = 60});
  CAPTURE(r.status_text(), r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Contains(path) && Contains("did not finish in 2 s") && Contains("DLTOOL_CHECKPOINT_READ_TIMEOUT"));
}

TEST_CASE("fuzz regressions: a variable-length string claiming gigabytes is refused before HDF5 allocates them",
          "[fuzz][checkpoint]") {
  // A re-sealed dltool checkpoint whose /config string (contiguous, variable-length) claims
  // 3.6 GB: HDF5 1.10 allocated and filled that much before finding the heap object short
  // (libFuzzer: out-of-memory). The stored lengths are now checked against the file size first.
  TempDir dir;
  std::string path =
      dir.file("vlen.h5", resealed_checkpoint(fuzz_input_file("checkpoint", "vlen_string_length")));
  CHECK_THAT(checkpoint_error_of(path, false),
             Contains(path) && Contains("/config: string 0 claims ") && Contains("more than the whole file"));
}

TEST_CASE("fuzz regressions: a group's local heap claiming 2^61 bytes is a corrupt file, not an abort",
          "[fuzz][checkpoint]") {
  // HDF5 asks malloc for the heap size the file states; malloc says no (ASan aborted on it until
  // scripts/fuzz.sh let impossible allocations return null, as they do without ASan) and HDF5's
  // lookup fails: a corrupt-file error naming the file.
  TempDir dir;
  std::string path = dir.file("heap.h5", fuzz_input_file("checkpoint", "local_heap_size"));
  for (bool weights_only : {true, false}) {
    CAPTURE(weights_only);
    CHECK_THAT(checkpoint_error_of(path, weights_only), Contains(path));
  }
}

TEST_CASE("fuzz regressions: 7 bytes starting RIFF are not an image, not an out_of_range",
          "[fuzz][regression][image_folder]") {
  // fuzz_image (tests/fuzz/image/riff-short-crash): the WebP signature check read bytes 8..11
  // of a 7-byte file with string_view::substr, which throws std::out_of_range.
  for (const std::string bytes : {"RIFFIFF", "RIFF", "RIFF1234WEB"}) {
    INFO(bytes);
    CHECK_THROWS_AS(dl::data::decode_image(bytes, dl::data::ImageColor::gray, "x.png"), dl::DataError);
  }
}
