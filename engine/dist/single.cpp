// The world of one (every non-distributed run) and init_process_group(), which picks a backend.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "engine/dist/backend.h"

namespace dl::dist {
namespace {

class DoneWork : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// Collectives over one rank leave every tensor as it is; the checks still run, so code that
// passes a bad tensor fails the same way in a one-process test as under mpirun.
class SingleProcessGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }

  WorkPtr allreduce_async(Tensor t, ReduceOp) override {
    detail::check_tensor(t, "allreduce", "single", t.defined() ? t.device().type : DeviceType::CPU, true);
    return std::make_shared<DoneWork>();
  }
  void broadcast(Tensor t, int root) override {
    detail::check_tensor(t, "broadcast", "single", t.defined() ? t.device().type : DeviceType::CPU, false);
    detail::check_root(root, 1, "broadcast");
  }
  Tensor allgather(const Tensor& t) override {
    detail::check_tensor(t, "allgather", "single", t.defined() ? t.device().type : DeviceType::CPU, false);
    return t.detach().clone().unsqueeze(0);
  }
  void barrier() override {}
  std::vector<std::string> allgather_bytes(const std::string& mine) override { return {mine}; }
  void broadcast_bytes(std::string&, int root) override { detail::check_root(root, 1, "broadcast_bytes"); }
  [[noreturn]] void abort(int exit_code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(exit_code);
  }
};

bool nccl_usable() {
#ifdef DLTOOL_WITH_NCCL
  return cuda_available();
#else
  return false;
#endif
}

}  // namespace

ProcessGroupPtr single_process_group() {
  static const ProcessGroupPtr group = std::make_shared<SingleProcessGroup>();
  return group;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
#ifdef DLTOOL_WITH_MPI
  out.push_back("mpi");
#endif
#ifdef DLTOOL_WITH_NCCL
  out.push_back("nccl");
#endif
  return out;
}

ProcessGroupPtr init_process_group(const std::string& backend, const DistEnv& env, GroupOptions options) {
  if (backend != "auto" && backend != "mpi" && backend != "nccl")
    throw std::invalid_argument("init_process_group: unknown backend '" + backend + "' (expected auto, mpi or nccl)");
  if (!(options.timeout_s > 0))
    throw std::invalid_argument("init_process_group: timeout_s must be > 0, got " + std::to_string(options.timeout_s));
  if (!env.distributed()) return single_process_group();
  // "auto" cannot see the training device: NCCL whenever it is built in and a GPU is usable.
  const std::string chosen = backend == "auto" ? (nccl_usable() ? "nccl" : "mpi") : backend;
  return chosen == "mpi" ? detail::make_mpi_group(env, options) : detail::make_nccl_group(env, options);
}

}  // namespace dl::dist

namespace dl::dist::detail {
#ifndef DLTOOL_WITH_MPI
ProcessGroupPtr make_mpi_group(const DistEnv&, const GroupOptions&) {
  throw DistError("this dltool was built without MPI (install libopenmpi-dev and rebuild)");
}
#endif
#ifndef DLTOOL_WITH_NCCL
ProcessGroupPtr make_nccl_group(const DistEnv&, const GroupOptions&) {
  throw DistError("this dltool was built without NCCL (it needs a CUDA build with nccl.h and libnccl: "
                  "DLTOOL_CUDA=ON and NCCL in the CUDA toolkit or the system)");
}
#endif
}  // namespace dl::dist::detail
