"""PyTorch as a speed oracle: import this module before `import torch`.

OpenBLAS chooses its kernels from CPUID. On virtual machines whose CPU reports a generic model
("Intel(R) Xeon(R) Processor", as on our 2-core machines), it falls back to its "Prescott" SSE3
kernels: `OPENBLAS_VERBOSE=2 python3 -c "import torch"` prints "Core: Prescott", and PyTorch's
sgemm runs at 20-28 GFLOP/s instead of about 120. The CPU flags tell what the hardware can do,
so the core type is set from them unless the caller set OPENBLAS_CORETYPE. One OpenBLAS thread:
PyTorch parallelises above BLAS, and two thread pools on two cores slow both.
"""
import os


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def openblas_coretype(flags):
    if "avx512f" in flags and "avx512bw" in flags:
        return "SkylakeX"
    if "avx2" in flags and "fma" in flags:
        return "Haswell"
    return None


_RANK = {"Haswell": 1, "SkylakeX": 2}

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_core = openblas_coretype(_cpu_flags())
_preset = os.environ.get("OPENBLAS_CORETYPE")
if _preset is None:
    if _core:
        os.environ["OPENBLAS_CORETYPE"] = _core
elif _core and _RANK.get(_preset, 0) < _RANK[_core]:
    # A caller's choice is kept, but a weaker one makes PyTorch a slower oracle than it can be
    # (on an AVX-512 machine: Haswell 89 GFLOP/s, SkylakeX 134 in one thread, measured).
    import sys
    print(f"torch_env: OPENBLAS_CORETYPE={_preset} is set, but this CPU runs OpenBLAS's {_core} kernels "
          f"(faster): unset it for PyTorch's best speed", file=sys.stderr)
