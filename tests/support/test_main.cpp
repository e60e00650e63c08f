// The main of every clipes test binary. Before GoogleTest starts, it makes OpenBLAS run the
// kernels that computed ../shared/reference and OpenMP's idle threads sleep rather than spin
// (tools/common/process_setup.h), so that the parity tests can ask for the reference's numbers bit
// for bit however the binary is started (ctest or by hand), and tests running side by side (ctest
// -j) do not slow each other down. Values the user has set (say OPENBLAS_CORETYPE=Prescott, to see
// another kernel set) are kept.

#include <gtest/gtest.h>

#include "process_setup.h"

int main(int argc, char** argv) {
  clipes::cli::reexec_with_runtime_settings(argv, clipes::cli::BlasKernels::kReference);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
