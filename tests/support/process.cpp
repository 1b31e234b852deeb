#include "tests/support/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace dl::test {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a.find_first_of(" \t\n'\"") == std::string::npos && !a.empty() ? a : "'" + a + "'";
  }
  return s;
}

std::string status_text_of(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : std::string());
  }
  return "unknown wait status " + std::to_string(status);
}

// The child's environment as "K=V" strings.
std::vector<std::string> child_env(const ProcessOptions& opt) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string name = kv.substr(0, kv.find('='));
    bool drop = opt.env.count(name) > 0;
    for (const auto& u : opt.unset_env) {
      if (!u.empty() && u.back() == '*' ? name.rfind(u.substr(0, u.size() - 1), 0) == 0 : name == u) drop = true;
    }
    if (!drop) out.push_back(kv);
  }
  for (const auto& [k, v] : opt.env) out.push_back(k + "=" + v);
  return out;
}

// argv[0] when it has a '/', else its first executable match in the PATH of `env`.
std::string resolve_program(const std::string& prog, const std::vector<std::string>& env) {
  if (prog.empty()) throw std::runtime_error("run_process: empty program name");
  if (prog.find('/') != std::string::npos) return prog;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& kv : env) {
    if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
  }
  size_t at = 0;
  while (at <= path.size()) {
    size_t end = path.find(':', at);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(at, end - at);
    if (dir.empty()) dir = ".";
    const std::string cand = dir + "/" + prog;
    struct stat st;
    if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(cand.c_str(), X_OK) == 0) return cand;
    at = end + 1;
  }
  throw std::runtime_error("cannot run '" + prog + "': not found in PATH (" + path + ")");
}

// What the child reports through the exec pipe when it cannot start the program.
struct ExecFailure {
  int stage;  // 0 chdir, 1 open /dev/null, 2 dup2, 3 execve
  int err;
};

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fd, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  ~Pipe() { close_all(); }
  void close_end(int i) {
    if (fd[i] >= 0) ::close(fd[i]);
    fd[i] = -1;
  }
  void close_all() {
    close_end(0);
    close_end(1);
  }
};

// Forks and execs. `out_fd` / `err_fd` become the child's stdout / stderr (-1: inherited).
// Everything the child touches is prepared before fork: it only makes async-signal-safe calls.
pid_t start(const std::vector<std::string>& argv_in, const ProcessOptions& opt, int out_fd, int err_fd) {
  if (argv_in.empty()) throw std::runtime_error("run_process: empty argv");
  std::vector<std::string> envs = child_env(opt);
  std::vector<std::string> argv_s = argv_in;
  const std::string prog = resolve_program(argv_s[0], envs);
  std::vector<char*> argv, envp;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  const char* cwd = opt.cwd.empty() ? nullptr : opt.cwd.c_str();
  Pipe report;  // CLOEXEC: closed by a successful execve, so EOF means "started"

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    auto fail = [&](int stage) {
      ExecFailure f{stage, errno};
      (void)!::write(report.fd[1], &f, sizeof f);
      ::_exit(127);
    };
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) {
      if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &dfl, nullptr);
    }
    if (cwd && ::chdir(cwd) != 0) fail(0);
    const int in = ::open("/dev/null", O_RDONLY);
    if (in < 0) fail(1);
    if (::dup2(in, 0) < 0) fail(2);
    if (out_fd >= 0 && ::dup2(out_fd, 1) < 0) fail(2);
    if (err_fd >= 0 && ::dup2(err_fd, 2) < 0) fail(2);
    ::execve(prog.c_str(), argv.data(), envp.data());
    fail(3);
  }
  report.close_end(1);
  ExecFailure f{};
  ssize_t got;
  do {
    got = ::read(report.fd[0], &f, sizeof f);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof f)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    static const char* const what[] = {"chdir", "open /dev/null", "dup2", "execve"};
    const std::string why = f.stage == 0 ? "cannot change to directory '" + opt.cwd + "'"
                                         : std::string(what[f.stage < 0 || f.stage > 3 ? 3 : f.stage]);
    throw std::runtime_error("cannot run " + join_argv(argv_in) + ": " + why + ": " + std::strerror(f.err));
  }
  return pid;
}

int wait_blocking(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  }
  return status;
}

}  // namespace

std::string ProcessResult::status_text() const {
  if (timed_out) return "timed out (killed)";
  if (term_signal) {
    const char* name = ::strsignal(term_signal);
    return "killed by signal " + std::to_string(term_signal) + (name ? std::string(" (") + name + ")" : std::string());
  }
  return "exit code " + std::to_string(exit_code);
}

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opt) {
  Pipe out, err;
  const pid_t pid = start(argv, opt, out.fd[1], opt.merge_stderr ? out.fd[1] : err.fd[1]);
  out.close_end(1);
  err.close_end(1);
  if (opt.merge_stderr) err.close_all();

  ProcessResult r;
  const auto t0 = Clock::now();
  char buf[65536];
  int open_fds = opt.merge_stderr ? 1 : 2;
  while (open_fds > 0) {
    pollfd fds[2];
    nfds_t n = 0;
    for (Pipe* p : {&out, &err}) {
      if (p->fd[0] >= 0) fds[n++] = {p->fd[0], POLLIN, 0};
    }
    int wait_ms = -1;
    if (opt.timeout_s > 0) {
      const double left = opt.timeout_s - seconds_since(t0);
      if (left <= 0) {
        ::kill(pid, SIGKILL);
        wait_blocking(pid);
        r.timed_out = true;
        r.term_signal = SIGKILL;
        return r;
      }
      wait_ms = static_cast<int>(left * 1000) + 1;
    }
    const int rc = ::poll(fds, n, wait_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::kill(pid, SIGKILL);
      wait_blocking(pid);
      throw std::runtime_error(std::string("poll: ") + std::strerror(e));
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Pipe* p = fds[i].fd == out.fd[0] ? &out : &err;
      std::string& dst = p == &out ? r.out : r.err;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        dst.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        p->close_end(0);
        --open_fds;
      }
    }
  }
  const int status = wait_blocking(pid);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.term_signal = WTERMSIG(status);
  }
  return r;
}

Process::~Process() { kill_and_wait(); }

Process::Process(Process&& o) noexcept : pid_(o.pid_), done_(o.done_), status_(o.status_) { o.pid_ = -1; }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    kill_and_wait();
    pid_ = o.pid_;
    done_ = o.done_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

void Process::reaped(int status) {
  pid_ = -1;
  done_ = true;
  status_ = status;
}

void Process::signal(int sig) const {
  if (pid_ <= 0) throw std::runtime_error("Process::signal: the child has exited already");
  if (::kill(pid_, sig) != 0) throw std::runtime_error(std::string("kill: ") + std::strerror(errno));
}

bool Process::poll() {
  if (pid_ <= 0) return done_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
  if (r == pid_) reaped(status);
  return done_;
}

bool Process::wait(double timeout_s) {
  if (timeout_s <= 0) {
    if (pid_ > 0) reaped(wait_blocking(pid_));
    return done_;
  }
  const auto t0 = Clock::now();
  while (!poll()) {
    if (seconds_since(t0) > timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void Process::kill_and_wait() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped(status);
}

int Process::exit_code() const { return done_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }

int Process::term_signal() const { return done_ && WIFSIGNALED(status_) ? WTERMSIG(status_) : 0; }

std::string Process::status_text() const {
  if (!done_) return pid_ > 0 ? "running" : "not started";
  return status_text_of(status_);
}

Process spawn_process(const std::vector<std::string>& argv, const std::string& log_path, const ProcessOptions& opt) {
  int fd = -1;
  if (!log_path.empty()) {
    fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open log '" + log_path + "': " + std::strerror(errno));
  }
  pid_t pid;
  try {
    pid = start(argv, opt, fd, fd);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    throw;
  }
  if (fd >= 0) ::close(fd);
  return Process(pid);
}

}  // namespace dl::test
