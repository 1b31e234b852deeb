#!/usr/bin/env bash
# Installs every Debian package dltool's build, tests and main job need (run as root on Debian 12).
#   scripts/setup.sh           build deps + Fashion-MNIST data
#   scripts/setup.sh --oracle  also the oracles that regenerate fixtures and run the PyTorch
#                              benchmarks (python3-torch with OpenBLAS, not the reference BLAS)
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(cmake g++ make libcli11-dev libyaml-cpp-dev libhdf5-dev hdf5-tools libprotobuf-dev
      protobuf-compiler libonnx-dev libopencv-dev libdnnl-dev catch2 zlib1g-dev
      dataset-fashion-mnist python3-onnx nodejs
      python3-sklearn fortunes python3-h5py  # real data of the tabular/text recipes; h5py writes recipes/hdf5's file
      clang libclang-rt-14-dev libomp-dev  # the libFuzzer targets (scripts/fuzz.sh)
      libopenmpi-dev openmpi-bin  # the MPI process-group backend, dist_tests (mpirun)
      munge slurmctld slurmd slurm-client)  # the one-node SLURM cluster of the tests (scripts/slurm_cluster.sh)
if [ "${1:-}" = "--oracle" ]; then PKGS+=(python3-torch python3-torchvision libopenblas0-pthread); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
