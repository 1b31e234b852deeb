// Shared by the libFuzzer targets in tests/fuzz: a scratch directory per process (the readers
// under test take paths, so each input is written to a file first) and small helpers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace dl::fuzz {

// A private temporary directory, created on first use and removed at exit. libFuzzer runs
// inputs one after another in one process, so one directory with fixed file names is enough.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dltool-fuzz-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(scratch_dir(), ec); });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  std::filesystem::path p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p.string();
}

// Splits `data` at every `sep` byte: fuzz inputs carry several parts (a YAML text and its
// overrides; an images file and a labels file) in one byte string.
inline std::vector<std::string_view> split(std::string_view data, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); ++i)
    if (i == data.size() || data[i] == sep) {
      parts.push_back(data.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

}  // namespace dl::fuzz
