// libFuzzer target: the checkpoint reader (exporters/checkpoint_load.cpp) and `dltool inspect`.
//
// Input: one flags byte, then the bytes of an .h5 file. Bit 0 re-seals the file: the 512-byte
// dltool user block is rewritten with the size and CRC-32C of the (mutated) rest, as a file
// crafted to pass the checksum would be, so mutations reach HDF5 and our validation instead of
// stopping at the checksum; without it the checksum path itself is fuzzed. Bits 1-3 pick
// inspect's --json, --stats and --config. Then: load_checkpoint weights-only and full, and the
// real inspect subcommand (cli/cmd_inspect.cpp) with its output discarded.
// CheckpointError is the only acceptable failure.
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "exporters/checkpoint.h"
#include "exporters/checkpoint_userblock.h"
#include "tests/fuzz/fuzz_util.h"

// cli/main.cpp owns the subcommand registry in the dltool binary; this target links only
// cmd_inspect.cpp, which registers itself here.
std::vector<dl::cli::Command>& dl::cli::registry() {
  static std::vector<Command> commands;
  return commands;
}

namespace {

void run_inspect(const std::string& path, uint8_t flags) {
  const dl::cli::Command* inspect = nullptr;
  for (const auto& c : dl::cli::registry())
    if (c.name == "inspect") inspect = &c;
  if (!inspect) __builtin_trap();
  CLI::App app;
  std::function<int()> run = inspect->setup(*app.add_subcommand("inspect"));
  std::vector<std::string> args{"dltool", "inspect", path};
  if (flags & 2) args.push_back("--json");
  if (flags & 4) args.push_back("--stats");
  if (flags & 8) args.push_back("--config");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());

  struct NullBuf : std::streambuf {
    int overflow(int c) override { return c; }
  } null;
  std::streambuf* saved = std::cout.rdbuf(&null);
  try {
    run();
  } catch (...) {
    std::cout.rdbuf(saved);
    throw;
  }
  std::cout.rdbuf(saved);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  namespace ck = dl::ckpt_detail;
  if ((flags & 1) && file.size() >= ck::kUserBlockBytes) {
    const char* payload = file.data() + ck::kUserBlockBytes;
    size_t n = file.size() - ck::kUserBlockBytes;
    file.replace(0, ck::kUserBlockBytes, ck::user_block(n, ck::crc32c(payload, n)));
  }
  std::string path = dl::fuzz::write_scratch("checkpoint.h5", file);
  for (bool weights_only : {true, false}) {
    try {
      dl::load_checkpoint(path, weights_only);
    } catch (const dl::CheckpointError&) {
    }
  }
  try {
    run_inspect(path, flags);
  } catch (const dl::CheckpointError&) {
  }
  return 0;
}
