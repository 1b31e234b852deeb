// Helpers shared by tests/app/test_checkpoint*.cpp.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "exporters/checkpoint.h"
#include "tests/support/tempdir.h"

#ifndef DLTOOL_SOURCE_DIR
#error "DLTOOL_SOURCE_DIR must be defined (path of the source tree)"
#endif

namespace ckpt_test {

namespace fs = std::filesystem;
using dl::DType;
using dl::Shape;
using dl::Tensor;
using dl::test::TempDir;


using dl::test::read_file;
using dl::test::write_file;

// A contiguous CPU tensor with random contents, built from raw bytes (no engine kernels, so it
// is also safe in a forked child). Floats are finite normals; bools 0/1.
inline Tensor random_tensor(const Shape& shape, DType dt, std::mt19937& rng) {
  Tensor t = dl::empty(shape, dt);
  std::normal_distribution<float> normal(0.f, 1.f);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    switch (dt) {
      case DType::F32: static_cast<float*>(t.raw_data())[i] = normal(rng); break;
      case DType::F64: static_cast<double*>(t.raw_data())[i] = static_cast<double>(normal(rng)) / 3.0; break;
      case DType::I64: static_cast<int64_t*>(t.raw_data())[i] = static_cast<int64_t>(rng()) - (int64_t{1} << 31); break;
      case DType::U8: static_cast<uint8_t*>(t.raw_data())[i] = static_cast<uint8_t>(rng()); break;
      case DType::Bool: static_cast<uint8_t*>(t.raw_data())[i] = rng() & 1; break;
      case DType::F16:  // sign | exponent 1..30 | mantissa: finite, normal
        static_cast<uint16_t*>(t.raw_data())[i] =
            static_cast<uint16_t>((rng() & 0x8000) | ((1 + rng() % 30) << 10) | (rng() & 0x3FF));
        break;
      case DType::BF16:
        static_cast<uint16_t*>(t.raw_data())[i] = static_cast<uint16_t>((rng() & 0x80FF) | ((100 + rng() % 50) << 7));
        break;
    }
  }
  return t;
}

// A tensor filled with `v` (f32/f64/i64/u8), without engine kernels (fork-safe).
inline Tensor filled(const Shape& shape, DType dt, double v) {
  Tensor t = dl::empty(shape, dt);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    switch (dt) {
      case DType::F32: static_cast<float*>(t.raw_data())[i] = static_cast<float>(v); break;
      case DType::F64: static_cast<double*>(t.raw_data())[i] = v; break;
      case DType::I64: static_cast<int64_t*>(t.raw_data())[i] = static_cast<int64_t>(v); break;
      case DType::U8: static_cast<uint8_t*>(t.raw_data())[i] = static_cast<uint8_t>(v); break;
      default: FAIL("filled: unsupported dtype");
    }
  }
  return t;
}

// Same dtype, shape and bytes.
inline bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.numel() == 0) return true;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<size_t>(ca.numel()) * ca.element_size()) == 0;
}

// The message of the CheckpointError thrown by `f` ("" and a test failure if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const dl::CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected dl::CheckpointError, got another exception: " << e.what());
  }
  FAIL("expected dl::CheckpointError, nothing was thrown");
  return "";
}

inline bool have_python_modules(const std::string& modules) {
  if (::access("/usr/bin/python3", X_OK) != 0) return false;
  std::string cmd = "/usr/bin/python3 -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs a shell command, returns its exit status and appends stdout+stderr to `out`.
inline int run_command(const std::string& cmd, std::string& out) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace ckpt_test
