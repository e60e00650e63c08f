// The main of every clipes test binary. Before GoogleTest starts, it makes OpenBLAS run the
// kernels that computed ../shared/reference (clipes/core/blas.h), so that the parity tests can
// ask for the reference's numbers bit for bit however the binary is started (ctest or by hand).
// OpenBLAS reads OPENBLAS_CORETYPE only when it loads, before main: when the variable is unset
// and the CPU has AVX2 and FMA, the binary runs itself again with it set. A value already set
// (say OPENBLAS_CORETYPE=Prescott, to see another kernel set) is kept.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "clipes/core/blas.h"

int main(int argc, char** argv) {
#if defined(__linux__) && defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    setenv("OPENBLAS_CORETYPE", clipes::kReferenceOpenblasCore, 1);
    execv("/proc/self/exe", argv);  // returns only when it failed: run on as we are
    unsetenv("OPENBLAS_CORETYPE");
  }
#endif
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
