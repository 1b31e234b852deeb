// Running programs from tests: an argv vector (no shell, so no quoting problems), stdin is
// /dev/null (nothing can wait on it), every signal disposition and the signal mask are reset in
// the child.
//
//   ProcessResult r = run_process({DLTOOL_BINARY, "validate", path});  // waits; r.out, r.err
//   ProcessResult m = run_process(argv, {.merge_stderr = true});       // stdout + stderr in r.out
//
//   Process p = spawn_process(argv, "/tmp/x/child.log", opts);         // running; output -> log
//   p.signal(SIGUSR1);
//   if (!p.wait(120)) { p.kill_and_wait(); FAIL("hung"); }
//   int code = p.exit_code();
//
// Failing to start the program (not found, not executable, bad working directory) throws
// std::runtime_error naming the program and the reason.
#pragma once
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace dl::test {

struct ProcessOptions {
  // The child's environment is ours, minus `unset_env`, plus `env` (which replaces variables of
  // the same name). An `unset_env` entry ending in '*' removes every variable with that prefix
  // ("SLURM_*"); it applies to the inherited environment only, never to `env`.
  // (Every member has an initializer, so designated initializers do not trip GCC 12's
  // -Wmissing-field-initializers.)
  std::map<std::string, std::string> env = {};
  std::vector<std::string> unset_env = {};
  std::string cwd = {};       // working directory of the child ("" = ours)
  bool merge_stderr = false;  // run_process: stderr into `out` too (in write order), `err` stays ""
  double timeout_s = 0;       // run_process: > 0 SIGKILLs the child after this many seconds
};

struct ProcessResult {
  int exit_code = -1;      // the exit status; -1 when killed by a signal
  int term_signal = 0;     // the signal that ended it, 0 when it exited
  bool timed_out = false;  // killed by run_process after ProcessOptions::timeout_s
  std::string out;         // stdout (with stderr when merge_stderr)
  std::string err;         // stderr
  // "exit code 2", "killed by signal 9 (Killed)", "timed out after 5 s (killed)".
  std::string status_text() const;
};

// Runs `argv` to completion and captures its output. argv[0] is a path, or a name looked up in
// the PATH of the child's environment.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opt = {});

// A running child from spawn_process. The destructor SIGKILLs and reaps a child still running
// (a failed REQUIRE never leaves one behind).
class Process {
 public:
  Process() = default;
  explicit Process(pid_t pid) : pid_(pid) {}
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Sends `sig`; throws std::runtime_error when that fails or the child was reaped already.
  void signal(int sig) const;
  // Non-blocking: true (and the status is set) when the child has exited.
  bool poll();
  // Waits for the child to exit, at most `timeout_s` seconds (<= 0: no limit). False on timeout:
  // the child is still running.
  bool wait(double timeout_s = 0);
  // SIGKILL and reap (no-op when already reaped).
  void kill_and_wait();

  // After poll()/wait() returned true (or kill_and_wait()):
  int exit_code() const;    // the exit status, -1 when killed by a signal
  int term_signal() const;  // the signal that ended it, 0 when it exited
  std::string status_text() const;

 private:
  void reaped(int status);
  pid_t pid_ = -1;
  bool done_ = false;
  int status_ = 0;  // raw waitpid status
};

// Starts `argv` (argv[0] as for run_process) with stdout and stderr appended to `log_path`
// (created if missing; "" = inherited from us). `merge_stderr` and `timeout_s` do not apply:
// wait(timeout) bounds the wait.
Process spawn_process(const std::vector<std::string>& argv, const std::string& log_path,
                      const ProcessOptions& opt = {});

}  // namespace dl::test
