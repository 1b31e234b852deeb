#include "cli/run/signals.h"

#include <signal.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include <functional>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace dl::train {
namespace {

std::atomic<int> g_pending{0};
struct sigaction g_old_term, g_old_int, g_old_usr1;
// The handlers run on an alternate stack: oneDNN 2.x's JIT sgemm kernels point rsp into a heap
// workspace while they run, and a signal delivered then would have its frame written over the
// heap (oneDNN issue 4845). 64 KiB: far above the largest (AVX-512) signal frame.
alignas(64) char g_altstack[1 << 16];
stack_t g_old_altstack;

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (g_pending.compare_exchange_strong(expected, sig)) {
    const char msg[] = "\ndltool: signal received; finishing the current step and writing a checkpoint...\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    return;
  }
  if (sig == SIGINT) {  // a second Ctrl-C: leave now
    const char msg[] = "\ndltool: second SIGINT, exiting without a checkpoint\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    _exit(130);
  }
}

}  // namespace

SignalGuard::SignalGuard() {
  g_pending = 0;
  stack_t ss;
  std::memset(&ss, 0, sizeof ss);
  ss.ss_sp = g_altstack;
  ss.ss_size = sizeof g_altstack;
  sigaltstack(&ss, &g_old_altstack);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_ONSTACK;
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGUSR1, &sa, &g_old_usr1);
}

SignalGuard::~SignalGuard() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGUSR1, &g_old_usr1, nullptr);
  sigaltstack(&g_old_altstack, nullptr);
}

void block_stop_signals_in_new_threads(const std::function<void()>& spawn) {
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &stop, &old);
  spawn();  // threads created here inherit the blocked mask
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

int SignalGuard::pending() { return g_pending.load(); }
void SignalGuard::clear() { g_pending = 0; }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal " + std::to_string(sig);
  }
}

std::string slurm_requeue_id() {
  const char* array_job = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* array_task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (array_job && *array_job && array_task && *array_task) return std::string(array_job) + "_" + array_task;
  const char* job = std::getenv("SLURM_JOB_ID");
  return job ? job : "";
}

std::string slurm_requeue(const std::string& job_id, bool* ok) {
  *ok = false;
  pid_t pid = fork();
  if (pid < 0) return "cannot run scontrol: fork failed";
  if (pid == 0) {
    execlp("scontrol", "scontrol", "requeue", job_id.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    *ok = true;
    return "requeued SLURM job " + job_id + " (scontrol requeue)";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return "scontrol not found on PATH: job " + job_id + " not requeued";
  return "scontrol requeue " + job_id + " failed (status " + std::to_string(WEXITSTATUS(status)) + ")";
}

}  // namespace dl::train
