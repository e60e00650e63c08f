#pragma once
/// Internal: cache-line aligned, uninitialised-on-resize buffers for the lattice's tables and the
/// CRF's work buffers.

#include <cstddef>
#include <new>
#include <vector>

namespace clipes::crf::detail {

/// Allocates on 64-byte (cache line) boundaries, so that vector loads of rows never straddle a
/// line more than they must. resize() leaves new elements uninitialised (default-initialised):
/// large work buffers are written before they are read; use assign() to zero them.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlignment); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(static_cast<Args&&>(args)...);
  }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const AlignedAllocator<U>&) const noexcept {
    return false;
  }
};
using AlignedFloats = std::vector<float, AlignedAllocator<float>>;
/// A lattice table that its build writes in full: resize() leaves it uninitialised.
template <class T>
using BuildTable = std::vector<T, AlignedAllocator<T>>;

}  // namespace clipes::crf::detail
