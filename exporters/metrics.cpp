#include "exporters/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace dl::exporters {

json::Object to_json(const StepInfo& s) {
  json::Object o;
  o.add("step", s.step).add("epoch", s.epoch).add("split", "train");
  o.add("loss", s.loss).add("lr", s.lr);
  if (s.accuracy) o.add("accuracy", *s.accuracy);
  for (const auto& [k, v] : s.extra) o.add(k, v);
  o.add("samples_per_s", s.samples_per_s).add("wall_time", s.elapsed_s);
  return o;
}

json::Object to_json(const EvalInfo& e) {
  json::Object o;
  o.add("step", e.step).add("epoch", e.epoch).add("split", e.split);
  o.add("loss", e.loss);
  if (e.accuracy) o.add("accuracy", *e.accuracy);
  if (e.top_k_accuracy) o.add("top" + std::to_string(e.top_k) + "_accuracy", *e.top_k_accuracy);
  for (const auto& [k, v] : e.extra) o.add(k, v);
  if (e.samples_per_s) o.add("samples_per_s", *e.samples_per_s);
  o.add("wall_time", e.elapsed_s);
  return o;
}

namespace {
[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw std::runtime_error("metrics: cannot " + what + " '" + path.string() +
                           "': " + std::strerror(err));
}

void write_all(int fd, const char* data, size_t n, const std::filesystem::path& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write", path, errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}
}  // namespace

MetricsWriter::MetricsWriter(const std::filesystem::path& file) : path_(file) {
  if (path_.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path_.parent_path(), ec);
    if (ec) fail("create the directory of", path_, ec.value());
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("open", path_, errno);
  // A previous writer killed mid-line leaves a partial last line: terminate it so the
  // next record starts on a line of its own.
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && st.st_size > 0) {
    const int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
      char last = '\n';
      const ssize_t r = ::pread(rfd, &last, 1, st.st_size - 1);
      ::close(rfd);
      if (r == 1 && last != '\n') write_all(fd_, "\n", 1, path_);
    }
  }
}

MetricsWriter::~MetricsWriter() { close(); }

MetricsWriter::MetricsWriter(MetricsWriter&& other) noexcept
    : path_(std::move(other.path_)), fd_(other.fd_) {
  other.fd_ = -1;
}

MetricsWriter& MetricsWriter::operator=(MetricsWriter&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void MetricsWriter::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void MetricsWriter::write(const json::Object& record) {
  if (fd_ < 0) throw std::runtime_error("metrics: writer for '" + path_.string() + "' is closed");
  std::string line;
  record.append_to(line);
  line += '\n';
  write_all(fd_, line.data(), line.size(), path_);
}

}  // namespace dl::exporters
