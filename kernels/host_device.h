// DL_HOST_DEVICE marks inline functions shared by the CPU kernels and CUDA device code (one
// definition of a formula for both backends). Plain inline functions in a host-only build.
#pragma once

#if defined(__CUDACC__)
#define DL_HOST_DEVICE __host__ __device__
#else
#define DL_HOST_DEVICE
#endif
