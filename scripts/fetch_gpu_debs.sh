#!/usr/bin/env bash
# Downloads (does not install) the Debian 12 packages that scripts/gpu_check.sh unpacks on a GPU
# machine that has nvcc, CMake and ninja but none of Debian's -dev packages and no network:
#   libdnnl2 + libdnnl-dev   oneDNN 2.6 runtime, headers and the libdnnl.so link (-dev only)
#   ocl-icd-libopencl1       libOpenCL.so.1, which libdnnl.so.2 needs at load time
#   catch2                   Catch2 v2 headers and its CMake config (usr/lib/cmake/Catch2)
#
#   scripts/fetch_gpu_debs.sh [DIR]      default DIR: build/gpu-debs (git-ignored)
#
# Then carry DIR to the GPU machine and run `scripts/gpu_check.sh --debs DIR` there.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build/gpu-debs}
PKGS=(libdnnl2 libdnnl-dev ocl-icd-libopencl1 catch2)

mkdir -p "$DIR"
rm -f "$DIR"/*.deb
# apt-get download needs the package lists; refresh them once if a package is unknown.
if ! apt-cache show "${PKGS[@]}" >/dev/null 2>&1; then
  apt-get update -q
fi
(cd "$DIR" && apt-get download "${PKGS[@]}")
for p in "${PKGS[@]}"; do
  ls "$DIR"/"${p}"_*.deb >/dev/null 2>&1 || { echo "fetch_gpu_debs: ${p} was not downloaded" >&2; exit 1; }
done
echo "fetch_gpu_debs: $(ls "$DIR"/*.deb | wc -l) packages in $DIR ($(du -sh "$DIR" | cut -f1))"
