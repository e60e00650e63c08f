#include "clipes/core/blas.h"

#include <ATen/Config.h>
#include <dlfcn.h>

namespace clipes {

std::string openblas_core_name() {
#if AT_MKL_ENABLED()
  // LibTorch's matrix products run on MKL (PyPI's and pytorch.org's builds), even when OpenBLAS
  // is loaded for another library (Debian's OpenCV links it).
  return "";
#endif
  // Looked up at run time: clipes does not link OpenBLAS itself, LibTorch does (or another BLAS).
  using CoreNameFn = char* (*)();
  void* symbol = dlsym(RTLD_DEFAULT, "openblas_get_corename");
  if (symbol == nullptr) return "";
  const char* name = reinterpret_cast<CoreNameFn>(symbol)();
  return name != nullptr ? name : "";
}

}  // namespace clipes
