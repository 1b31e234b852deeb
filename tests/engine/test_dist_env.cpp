// detect_env(): rank, world and local layout from SLURM, OpenMPI's mpirun or RANK/WORLD_SIZE,
// and the world-of-one process group every non-distributed run uses.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "engine/dist/process_group.h"

namespace {

// Clears every launcher variable detect_env() reads, sets the given ones, and puts the
// process environment back as it was (these tests may themselves run under srun or mpirun).
class ScopedEnv {
 public:
  explicit ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> set) {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
      unsetenv(name);
    }
    for (const auto& [name, value] : set) setenv(name, value, 1);
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value)
        setenv(name.c_str(), value->c_str(), 1);
      else
        unsetenv(name.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  static constexpr const char* kNames[] = {
      "SLURM_PROCID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_LOCALID", "SLURM_NODEID",
      "SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_CPUS_PER_TASK",
      "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
      "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace

using dl::dist::detect_env;
using dl::dist::DistError;

TEST_CASE("dist env: no launcher is rank 0 of 1", "[dist_env]") {
  ScopedEnv env({});
  const dl::dist::DistEnv e = detect_env();
  CHECK(e.rank == 0);
  CHECK(e.world_size == 1);
  CHECK(e.local_rank == 0);
  CHECK(e.local_world_size == 1);
  CHECK(e.cpus_per_task == 0);
  CHECK(e.launcher.empty());
  CHECK_FALSE(e.distributed());
}

TEST_CASE("dist env: srun -N 2 --ntasks-per-node=4 -c 3, task 6", "[dist_env]") {
  ScopedEnv env({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_NODEID", "1"},
                 {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}, {"SLURM_CPUS_PER_TASK", "3"}});
  const dl::dist::DistEnv e = detect_env();
  CHECK(e.launcher == "slurm");
  CHECK(e.rank == 6);
  CHECK(e.world_size == 8);
  CHECK(e.local_rank == 2);
  CHECK(e.local_world_size == 4);
  CHECK(e.cpus_per_task == 3);
  CHECK(e.distributed());
}

TEST_CASE("dist env: an uneven SLURM layout gives each node its own task count", "[dist_env]") {
  ScopedEnv env({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "3"},
                 {"SLURM_STEP_TASKS_PER_NODE", "2(x3),1"}});
  CHECK(detect_env().local_world_size == 1);
  setenv("SLURM_NODEID", "2", 1);
  CHECK(detect_env().local_world_size == 2);
  setenv("SLURM_NODEID", "4", 1);
  CHECK_THROWS_WITH(detect_env(), Catch::Contains("SLURM_STEP_TASKS_PER_NODE='2(x3),1' lists no node 4"));
  setenv("SLURM_STEP_TASKS_PER_NODE", "2(x", 1);
  CHECK_THROWS_WITH(detect_env(), Catch::Contains("SLURM_STEP_TASKS_PER_NODE='2(x' is not a SLURM tasks-per-node list"));
}

TEST_CASE("dist env: mpirun -np 4", "[dist_env]") {
  ScopedEnv env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  const dl::dist::DistEnv e = detect_env();
  CHECK(e.launcher == "mpirun");
  CHECK(e.rank == 3);
  CHECK(e.world_size == 4);
  CHECK(e.local_rank == 1);
  CHECK(e.local_world_size == 2);
}

TEST_CASE("dist env: mpirun inside an sbatch allocation wins over the batch step's SLURM_*", "[dist_env]") {
  // sbatch -n 1: the batch step says 1 task.
  ScopedEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_CPUS_PER_TASK", "2"},
                 {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  dl::dist::DistEnv e = detect_env();
  CHECK(e.launcher == "mpirun");
  CHECK(e.rank == 1);
  CHECK(e.world_size == 2);
  CHECK(e.cpus_per_task == 2);  // still the allocation's threads per rank
  // sbatch -n 2: every rank inherits SLURM_PROCID=0 of the batch step; rank 1 must not think it is 0.
  setenv("SLURM_NTASKS", "2", 1);
  e = detect_env();
  CHECK(e.launcher == "mpirun");
  CHECK(e.rank == 1);
  // srun --mpi=pmix with OMPI_* agreeing: SLURM's answer (same rank and size).
  setenv("SLURM_PROCID", "1", 1);
  CHECK(detect_env().launcher == "slurm");
}

TEST_CASE("dist env: RANK / WORLD_SIZE / MASTER_ADDR like torchrun", "[dist_env]") {
  ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
  dl::dist::DistEnv e = detect_env();
  CHECK(e.launcher == "env");
  CHECK(e.rank == 1);
  CHECK(e.world_size == 2);
  CHECK(e.local_rank == 1);  // one node unless LOCAL_RANK says otherwise
  CHECK(e.local_world_size == 2);
  CHECK(e.master_addr == "10.0.0.1");
  CHECK(e.master_port == 29500);
  setenv("LOCAL_RANK", "0", 1);
  setenv("LOCAL_WORLD_SIZE", "1", 1);
  e = detect_env();
  CHECK(e.local_rank == 0);
  CHECK(e.local_world_size == 1);
}

TEST_CASE("dist env: bad values are DistError naming the variable", "[dist_env]") {
  SECTION("rank outside the world") {
    ScopedEnv env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "2"}});
    CHECK_THROWS_WITH(detect_env(), "SLURM_PROCID=2 is not a rank in [0, 2) (SLURM_NTASKS=2)");
  }
  SECTION("not a number") {
    ScopedEnv env({{"RANK", "one"}, {"WORLD_SIZE", "2"}});
    CHECK_THROWS_AS(detect_env(), DistError);
    CHECK_THROWS_WITH(detect_env(), "RANK='one' is not an integer >= 0");
  }
  SECTION("trailing junk, negative, zero world") {
    ScopedEnv env({{"OMPI_COMM_WORLD_RANK", "1x"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(detect_env(), "OMPI_COMM_WORLD_RANK='1x' is not an integer >= 0");
    setenv("OMPI_COMM_WORLD_RANK", "-1", 1);
    CHECK_THROWS_WITH(detect_env(), "OMPI_COMM_WORLD_RANK='-1' is not an integer >= 0");
    setenv("OMPI_COMM_WORLD_SIZE", "0", 1);
    CHECK_THROWS_WITH(detect_env(), "OMPI_COMM_WORLD_SIZE='0' is not an integer >= 1");
  }
  SECTION("RANK without WORLD_SIZE") {
    ScopedEnv env({{"RANK", "0"}});
    CHECK_THROWS_WITH(detect_env(), "RANK is set but WORLD_SIZE is not");
  }
  SECTION("local rank outside the node") {
    ScopedEnv env({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}});
    CHECK_THROWS_WITH(detect_env(), "LOCAL_RANK=2 is not a rank in [0, 2) (LOCAL_WORLD_SIZE=2)");
  }
  SECTION("threads per task") {
    ScopedEnv env({{"SLURM_CPUS_PER_TASK", "0"}});
    CHECK_THROWS_WITH(detect_env(), "SLURM_CPUS_PER_TASK='0' is not an integer >= 1");
  }
  SECTION("port") {
    ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}});
    CHECK_THROWS_WITH(detect_env(), "MASTER_PORT=70000 is not a port in [1, 65535]");
  }
}

TEST_CASE("process group: the world of one", "[dist_env]") {
  ScopedEnv env({});
  dl::dist::ProcessGroupPtr pg = dl::dist::init_process_group("mpi", detect_env());
  CHECK(pg == dl::dist::single_process_group());
  CHECK(pg->backend() == "single");
  CHECK(pg->rank() == 0);
  CHECK(pg->world_size() == 1);

  dl::Tensor t = dl::tensor({1.5f, -2.f});
  pg->allreduce(t);
  CHECK(pg->allreduce_async(t, dl::dist::ReduceOp::max)->test());
  CHECK(t.to_vector<float>() == std::vector<float>{1.5f, -2.f});
  pg->broadcast(t, 0);
  dl::Tensor all = pg->allgather(t);
  CHECK(all.shape() == dl::Shape{1, 2});
  CHECK(all.to_vector<float>() == std::vector<float>{1.5f, -2.f});
  all.copy_(dl::zeros({1, 2}));
  CHECK(t.to_vector<float>() == std::vector<float>{1.5f, -2.f});  // a copy, not a view
  pg->barrier();
  CHECK(pg->allgather_bytes("abc") == std::vector<std::string>{"abc"});
  std::string s = "x";
  pg->broadcast_bytes(s, 0);
  CHECK(s == "x");

  // The same checks as the real backends, so a bad call fails in one-process tests too.
  CHECK_THROWS_WITH(pg->allreduce(dl::zeros({2, 3}).t()), Catch::Contains("expected a contiguous tensor"));
  CHECK_THROWS_WITH(pg->allreduce(dl::zeros({2}, dl::DType::Bool)), Catch::Contains("float32, float64 or int64"));
  CHECK_THROWS_WITH(pg->broadcast(t, 1), "broadcast: root 1 is not a rank in [0, 1)");
}

TEST_CASE("process group: backend names and what this build has", "[dist_env]") {
  ScopedEnv env({{"RANK", "0"}, {"WORLD_SIZE", "2"}});
  CHECK_THROWS_WITH(dl::dist::init_process_group("gloo", detect_env()),
                    "init_process_group: unknown backend 'gloo' (expected auto, mpi or nccl)");
  CHECK_THROWS_AS(dl::dist::init_process_group("mpi", detect_env(), {.timeout_s = 0}), std::invalid_argument);
  const std::vector<std::string> have = dl::dist::available_backends();
  if (std::find(have.begin(), have.end(), "nccl") == have.end())
    CHECK_THROWS_WITH(dl::dist::init_process_group("nccl", detect_env()),
                      Catch::StartsWith("this dltool was built without NCCL"));
  if (std::find(have.begin(), have.end(), "mpi") == have.end())
    CHECK_THROWS_WITH(dl::dist::init_process_group("mpi", detect_env()),
                      "this dltool was built without MPI (install libopenmpi-dev and rebuild)");
}
