// Stop requests for batch jobs. SIGTERM (SLURM's time limit / scancel), SIGINT (Ctrl-C) and
// SIGUSR1 (sbatch --signal=USR1@90, the pre-emption warning) ask the trainer to finish the
// current step, write a checkpoint and exit with 75 (EX_TEMPFAIL: safe to requeue). A second
// SIGINT exits at once (status 130) for a user who really wants out.
#pragma once
#include <functional>
#include <string>

namespace dl::train {

class SignalGuard {
 public:
  SignalGuard();   // installs the handlers
  ~SignalGuard();  // restores the previous ones
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

  // The first signal received since construction, or 0.
  static int pending();
  static void clear();
};

std::string signal_name(int sig);  // "SIGTERM"

// Runs `spawn` with SIGTERM, SIGINT and SIGUSR1 blocked in the calling thread: threads it
// creates (the OpenMP pool) inherit the blocked mask, so the stop signals reach only the main
// thread, whose handler runs on an alternate stack.
void block_stop_signals_in_new_threads(const std::function<void()>& spawn);

// Under SLURM: the job id to requeue (${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} for array
// jobs, else $SLURM_JOB_ID), or "" outside SLURM.
std::string slurm_requeue_id();
// Runs `scontrol requeue ID`; returns a message describing the outcome.
std::string slurm_requeue(const std::string& job_id, bool* ok);

}  // namespace dl::train
