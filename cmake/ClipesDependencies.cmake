# Every third-party package clipes uses, found once. A CUDA LibTorch is picked up through
# CMAKE_PREFIX_PATH (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch); Debian's libtorch-dev is CPU-only.
find_package(Torch REQUIRED)
# What the build runs on, for the log, run records and the CUDA-only code (peak GPU memory).
set(CLIPES_TORCH_VERSION "${Torch_VERSION}" CACHE INTERNAL "LibTorch version")
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(CLIPES_TORCH_CUDA ON CACHE INTERNAL "LibTorch has CUDA")
else()
  set(CLIPES_TORCH_CUDA OFF CACHE INTERNAL "LibTorch has CUDA")
endif()
message(STATUS "clipes: LibTorch ${Torch_VERSION} (${TORCH_INSTALL_PREFIX}), CUDA ${CLIPES_TORCH_CUDA}")
# PyPI's LibTorch 2.x exports its own copies of std::filesystem's functions (libtorch.so,
# libtorch_cpu.so, built with gcc-toolset), and a binary that lists libtorch before libstdc++
# calls those: its remove_all of a folder jumps to address 0. libstdc++ first in every binary that
# links torch keeps the C++ runtime's own.
if(Torch_VERSION VERSION_GREATER_EQUAL 2)
  set_property(TARGET torch APPEND PROPERTY INTERFACE_LINK_OPTIONS
               "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
endif()
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
# LibTorch 2.x puts a copy of fmt's headers (fmt 12 in 2.11) in its include folder, which comes
# before the system's. Compiled against those, clipes and spdlog's headers would not match the fmt
# library they link (Debian's fmt 9): a folder holding only a link to the found fmt's headers goes
# first on torch's include path, so that <fmt/...> is always the fmt that is linked.
if(EXISTS "${TORCH_INSTALL_PREFIX}/include/fmt")
  get_target_property(_fmt_includes fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
  list(GET _fmt_includes 0 _fmt_include)
  set(_fmt_first "${PROJECT_BINARY_DIR}/fmt-first")
  file(MAKE_DIRECTORY "${_fmt_first}")
  file(CREATE_LINK "${_fmt_include}/fmt" "${_fmt_first}/fmt" SYMBOLIC)
  get_target_property(_torch_includes torch INTERFACE_INCLUDE_DIRECTORIES)
  set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fmt_first};${_torch_includes}")
  message(STATUS "clipes: LibTorch ships fmt headers; <fmt/...> resolves to ${_fmt_include}/fmt")
endif()
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PNG REQUIRED)
find_package(pugixml REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(ICU REQUIRED COMPONENTS uc)  # Unicode lower case and NFC for the CLIP tokenizer

# Distributed training (c10d): Gloo on the CPU, NCCL on CUDA. LibTorch's c10d headers compile
# the Gloo process group only with USE_C10D_GLOO and Gloo's own headers (Debian: libgloo-dev;
# PyPI's LibTorch ships none), NCCL's only with USE_C10D_NCCL and nccl.h.
include(CheckCXXSourceCompiles)
# Compile-only checks (the headers are the question; the build links them).
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS} ${CUDAToolkit_INCLUDE_DIRS})
set(CMAKE_REQUIRED_FLAGS "-std=c++17")
find_library(CLIPES_GLOO_LIBRARY gloo)
set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_GLOO)
check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
int main() { return c10d::ProcessGroupGloo::Options::create() ? 0 : 1; }]] CLIPES_HAVE_GLOO)
if(CLIPES_TORCH_CUDA)
  set(CMAKE_REQUIRED_DEFINITIONS -DUSE_C10D_NCCL)
  check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
int main() { return c10d::ProcessGroupNCCL::Options::create() ? 0 : 1; }]] CLIPES_HAVE_NCCL)
endif()
unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_DEFINITIONS)
if(NOT CLIPES_HAVE_NCCL)
  set(CLIPES_HAVE_NCCL OFF)
endif()
message(STATUS "clipes: distributed backends: Gloo ${CLIPES_HAVE_GLOO}, NCCL ${CLIPES_HAVE_NCCL}")
