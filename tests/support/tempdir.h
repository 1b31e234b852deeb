// A fresh directory under /tmp for one test, removed with its contents at scope exit (also
// after a test made it or its files read-only); and reading/writing a whole file.
#pragma once
#include <stdlib.h>

#include <cstdint>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace dl::test {

// The whole file, byte for byte ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The number of '\n' in the file (0 when it cannot be read): lines a running job has logged.
inline int64_t count_lines(const std::string& path) {
  int64_t n = 0;
  for (char c : read_file(path)) n += c == '\n';
  return n;
}

// Replaces the file's contents with `data`, byte for byte.
inline void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

struct TempDir {
  std::filesystem::path path;

  TempDir() {
    char tmpl[] = "/tmp/dltool-test-XXXXXX";
    const char* p = mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `name` inside the directory.
  std::string file(const std::string& name) const { return (path / name).string(); }
  // Writes `text` to `name` inside the directory and returns its path.
  std::string file(const std::string& name, const std::string& text) const {
    std::string p = file(name);
    write_file(p, text);
    return p;
  }
};

}  // namespace dl::test
