// Helpers shared by tests/app/test_checkpoint*.cpp.
#pragma once

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exporters/checkpoint.h"
#include "tests/support/process.h"
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

// A small tmpfs mounted at `d` for the test, `size` as mount(8) takes it ("1m", bytes); needs
// root in a sandbox that allows it (else `mounted` is false and `err` says why).
struct TmpfsMount {
  std::string dir;
  bool mounted = false;
  int err = 0;
  TmpfsMount(const std::string& d, const std::string& size) : dir(d) {
    fs::create_directories(dir);
    const std::string opts = "size=" + size + ",mode=0755";
    mounted = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    if (!mounted) err = errno;
  }
  bool remount_readonly() {
    return ::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  ~TmpfsMount() {
    if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
  }
};

// Runs `dltool ARGS` to completion (stdout and stderr together in `out`; killed after 300 s).
inline dl::test::ProcessResult dltool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return dl::test::run_process(argv, {.merge_stderr = true, .timeout_s = 300});
}

// Writes 64 8x8 u8 images (labels i % 10) as raw IDX files into `dir` and returns the path of a
// recipe training a `hidden`-unit MLP on them (batch 8: 8 steps per epoch, one thread); `extra`
// YAML is appended (e.g. a checkpoint: section). Starts fast and needs no installed data set.
inline std::string tiny_recipe(const TempDir& dir, int hidden, const std::string& extra) {
  auto write_idx = [](const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
    std::string b = {0, 0, 8, static_cast<char>(dims.size())};
    for (uint32_t d : dims)
      for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>(d >> s));
    b.append(data.begin(), data.end());
    write_file(path, b);
  };
  const uint32_t n = 64;
  std::vector<uint8_t> img(n * 64), lab(n);
  for (uint32_t i = 0; i < n; ++i) {
    lab[i] = static_cast<uint8_t>(i % 10);
    for (uint32_t p = 0; p < 64; ++p) img[i * 64 + p] = static_cast<uint8_t>((i * 37 + p * 11) % 256);
  }
  write_idx(dir.file("images.idx"), {n, 8, 8}, img);
  write_idx(dir.file("labels.idx"), {n}, lab);
  return dir.file("tiny.yaml", "model:\n  layers:\n    - flatten\n    - {type: linear, out_features: " +
                                   std::to_string(hidden) + "}\n    - relu\n    - {type: linear, out_features: 10}\n" +
                                   "data:\n  dataset: tiny\n  format: idx\n  root: " + dir.path.string() +
                                   "\n  train: {images: images.idx, labels: labels.idx}\n"
                                   "  test: {images: images.idx, labels: labels.idx}\n"
                                   "  transforms: [{type: to_float, scale: 0.00392156862745098}]\n"
                                   "  loader: {batch_size: 8, shuffle: true}\n"
                                   "loss: {type: cross_entropy}\noptimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                                   "train: {epochs: 1, log_every: 1, seed: 3, threads: 1}\n" + extra);
}

// Starts a child `kills` times and SIGKILLs it at a random moment: start(k) returns the running
// child (k = 1..kills), which is killed after min_ms..max_ms (uniform) and reaped; it must still
// be running then (it may not finish or fail on its own). after_kill(k) then checks what it left.
template <class Start, class AfterKill>
void kill_repeatedly(int kills, int min_ms, int max_ms, uint32_t seed, Start&& start, AfterKill&& after_kill) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(min_ms, max_ms);
  for (int k = 1; k <= kills; ++k) {
    INFO("kill " << k);
    dl::test::Process p = start(k);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    const bool exited = p.poll();
    if (exited) FAIL_CHECK("the child ended before it was killed: " << p.status_text());
    p.kill_and_wait();
    CHECK(p.term_signal() == SIGKILL);
    after_kill(k);
  }
}

}  // namespace ckpt_test
