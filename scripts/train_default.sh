#!/usr/bin/env bash
# Sets everything up, builds dltool and trains the default recipe (LeNet-5 on Fashion-MNIST).
# Extra arguments go to `dltool train`, e.g. scripts/train_default.sh train.epochs=1
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
exec build/dltool train recipes/fashion_mnist/lenet.yaml "$@"
