// Shared by the libFuzzer targets in tests/fuzz: a scratch directory per process (the readers
// under test take paths, so each input is written to a file first) and small helpers.
#pragma once
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/format.h"

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

// `raw` as a gzip stream (the readers sniff gzip by its magic; the fuzzer then explores the
// contents behind a valid stream too).
inline std::string gzip(std::string_view raw) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&zs, raw.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A format's open_splits, then get(), class_of() and describe() of every sample of every split:
// what a recipe's training touches. DataError and std::invalid_argument (an option the data
// cannot satisfy) are the only acceptable failures; anything else reaches libFuzzer.
inline void open_and_read_every_sample(const data::FormatDef& def, const data::FormatArgs& args,
                                       const data::SplitOptions& carve) {
  try {
    const data::Splits s = data::open_splits(def, args, carve);
    for (const data::DatasetPtr& d : {s.train, s.val, s.test}) {
      if (!d) continue;
      for (int64_t i = 0; i < d->size(); ++i) {
        (void)d->get(i);
        (void)d->class_of(i);
        (void)d->describe(i);
      }
    }
  } catch (const DataError&) {
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace dl::fuzz
