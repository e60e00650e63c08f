#pragma once
/// Internal: mapping lattice keys to dense vertex ids while building a permutohedral lattice
/// (dense-crf.md Steps 1.5-2): a hash table for any keys, a dense grid for keys in a small box,
/// and the two build phases that use them (vertex ids of every point's simplex corners, blur
/// neighbours). Vertex ids are given in order of first appearance either way.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "permutohedral.h"

#if defined(__GNUC__) || defined(__clang__)
#define CLIPES_CRF_PREFETCH(address) __builtin_prefetch(address)
#else
#define CLIPES_CRF_PREFETCH(address) ((void)(address))
#endif

namespace clipes::crf::detail {

// Chunk sizes for splitting over threads (items per chunk at least).
constexpr std::int64_t kMinVertexChunk = 4096;
constexpr std::int64_t kMinPointChunk = 4096;

// The d int16 coordinates of a lattice key packed four to a 64-bit word.
template <int W>
struct PackedKey {
  std::uint64_t word[W];
  bool operator==(const PackedKey& other) const {
    for (int i = 0; i < W; ++i) {
      if (word[i] != other.word[i]) return false;
    }
    return true;
  }
};

template <int D>
PackedKey<(D + 3) / 4> pack_key(const int* coords) {
  PackedKey<(D + 3) / 4> key{};
  for (int k = 0; k < D; ++k) {
    const auto bits = static_cast<std::uint16_t>(static_cast<std::int16_t>(coords[k]));
    key.word[k / 4] |= static_cast<std::uint64_t>(bits) << (16 * (k % 4));
  }
  return key;
}

template <int D>
void unpack_key(const PackedKey<(D + 3) / 4>& key, int* coords) {
  for (int k = 0; k < D; ++k) {
    const auto bits = static_cast<std::uint16_t>(key.word[k / 4] >> (16 * (k % 4)));
    coords[k] = static_cast<std::int16_t>(bits);
  }
}

template <int W>
std::uint64_t hash_key(const PackedKey<W>& key) {
  std::uint64_t h = 0;
  for (int i = 0; i < W; ++i) {
    h = (h ^ key.word[i]) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return h * 0xBF58476D1CE4E5B9ull;
}

// Open addressing with linear probing. A slot holds the vertex id and 32 bits of the hash (8
// bytes, so that the table stays small); the key itself, in the id-ordered key array, is
// compared only when the tag matches. Ids are dense, in insertion order. The slot index comes
// from the high bits of the hash.
template <int W>
class KeyTable {
 public:
  explicit KeyTable(std::size_t expected) {
    std::size_t capacity = 1024;
    while (capacity < 2 * expected) capacity *= 2;
    rehash(capacity);
  }

  std::int32_t size() const { return static_cast<std::int32_t>(keys_.size()); }
  const std::vector<PackedKey<W>>& keys() const { return keys_; }

  void prefetch(std::uint64_t hash) const { CLIPES_CRF_PREFETCH(&slots_[hash >> shift_]); }

  std::int32_t insert(const PackedKey<W>& key, std::uint64_t hash) {
    if (2 * (keys_.size() + 1) > slots_.size()) rehash(slots_.size() * 2);
    const auto tag = static_cast<std::uint32_t>(hash);
    for (std::size_t index = hash >> shift_;; index = (index + 1) & mask_) {
      Slot& slot = slots_[index];
      if (slot.id < 0) {
        slot.id = static_cast<std::int32_t>(keys_.size());
        slot.tag = tag;
        keys_.push_back(key);
        return slot.id;
      }
      if (slot.tag == tag && keys_[static_cast<std::size_t>(slot.id)] == key) return slot.id;
    }
  }

  std::int32_t find(const PackedKey<W>& key, std::uint64_t hash) const {
    const auto tag = static_cast<std::uint32_t>(hash);
    for (std::size_t index = hash >> shift_;; index = (index + 1) & mask_) {
      const Slot& slot = slots_[index];
      if (slot.id < 0) return -1;
      if (slot.tag == tag && keys_[static_cast<std::size_t>(slot.id)] == key) return slot.id;
    }
  }

 private:
  struct Slot {
    std::int32_t id;
    std::uint32_t tag;
  };

  void rehash(std::size_t capacity) {
    slots_.assign(capacity, Slot{-1, 0});
    mask_ = capacity - 1;
    int bits = 0;
    while ((std::size_t{1} << bits) < capacity) ++bits;
    shift_ = 64 - bits;
    for (std::size_t id = 0; id < keys_.size(); ++id) {
      const std::uint64_t h = hash_key(keys_[id]);
      std::size_t index = h >> shift_;
      while (slots_[index].id >= 0) index = (index + 1) & mask_;
      slots_[index] = Slot{static_cast<std::int32_t>(id), static_cast<std::uint32_t>(h)};
    }
  }

  std::vector<Slot> slots_;
  std::vector<PackedKey<W>> keys_;
  std::size_t mask_ = 0;
  int shift_ = 64;
};

// Vertex indices: both map a lattice key (d int coordinates) to a dense vertex id given in
// order of insertion, and remember each id's key. A Probe holds what a lookup needs (computed,
// and its memory prefetched, a few points ahead).

// Any keys: the hash table, with a presence bitset in front (one bit per hash value modulo its
// size, about 16 bits per point): most lookups of absent keys (missing blur neighbours) are
// answered from the bitset, which stays in cache, without touching the table.
template <int D>
class HashIndex {
 public:
  static constexpr int W = (D + 3) / 4;
  struct Probe {
    PackedKey<W> key;
    std::uint64_t hash;
  };
  explicit HashIndex(std::size_t expected) : table_(expected) {
    std::size_t bits = 1 << 16;
    while (bits < 16 * expected) bits *= 2;
    present_.assign(bits / 64, 0);
    present_mask_ = bits - 1;
  }
  // The probe of a key to insert, its table slot requested.
  Probe probe(const int* key) const {
    const Probe p = key_probe(key);
    table_.prefetch(p.hash);
    return p;
  }
  // The probe of a key to look up, touching no memory; may_hold false: the key is absent (the
  // bitset says so for most absent keys).
  Probe key_probe(const int* key) const {
    Probe p{pack_key<D>(key), 0};
    p.hash = hash_key(p.key);
    return p;
  }
  bool may_hold(const Probe& p) const { return maybe_present(p.hash); }
  void prefetch(const Probe& p) const { table_.prefetch(p.hash); }
  std::int32_t insert(const int* /*key*/, const Probe& p) {
    const std::size_t bit = p.hash & present_mask_;
    present_[bit / 64] |= std::uint64_t{1} << (bit % 64);
    return table_.insert(p.key, p.hash);
  }
  // The key's id, or −1; for a probe that may_hold accepted (the bitset is not asked again).
  std::int32_t find(const Probe& p) const { return table_.find(p.key, p.hash); }
  void key_of(std::int32_t id, int* key) const {
    unpack_key<D>(table_.keys()[static_cast<std::size_t>(id)], key);
  }
  std::int32_t size() const { return table_.size(); }

 private:
  bool maybe_present(std::uint64_t hash) const {
    const std::size_t bit = hash & present_mask_;
    return (present_[bit / 64] >> (bit % 64)) & 1u;
  }
  KeyTable<W> table_;
  std::vector<std::uint64_t> present_;
  std::size_t present_mask_ = 0;
};

// Keys within a small box (position-only features on a pixel grid): a dense array of ids over
// the box, no hashing. Coordinate 0 is stored as is; coordinates 1..d−1 divided by d+1 (all
// coordinates of a lattice key leave the same remainder modulo d+1, so they are recovered).
template <int D>
class GridIndex {
 public:
  struct Probe {
    std::int64_t cell;  // −1: outside the box
  };
  // lo/hi: per coordinate, the smallest and largest key coordinate that can occur.
  static std::int64_t volume(const int* lo, const int* hi) {
    std::int64_t v = 1;
    for (int k = 0; k < D; ++k) {
      v *= k == 0 ? hi[0] - lo[0] + 1 : floor_div(hi[k]) - floor_div(lo[k]) + 1;
      if (v > (std::int64_t{1} << 40)) return v;
    }
    return v;
  }
  GridIndex(const int* lo, const int* hi, std::size_t expected) {
    std::int64_t stride = 1;
    for (int k = D - 1; k >= 0; --k) {
      lo_[k] = k == 0 ? lo[0] : floor_div(lo[k]);
      extent_[k] = (k == 0 ? hi[0] : floor_div(hi[k])) - lo_[k] + 1;
      stride_[k] = stride;
      stride *= extent_[k];
    }
    cells_.assign(static_cast<std::size_t>(stride), -1);
    keys_.reserve(2 * expected * D);  // a σ = 1 position lattice has 1.16 vertices per point
  }
  Probe probe(const int* key) const { return key_probe(key); }
  Probe key_probe(const int* key) const {
    std::int64_t cell = 0;
    for (int k = 0; k < D; ++k) {
      const int c = (k == 0 ? key[0] : floor_div(key[k])) - lo_[k];
      if (c < 0 || c >= extent_[k]) return Probe{-1};
      cell += c * stride_[k];
    }
    return Probe{cell};
  }
  bool may_hold(const Probe& p) const { return p.cell >= 0; }
  void prefetch(const Probe& p) const {
    CLIPES_CRF_PREFETCH(&cells_[static_cast<std::size_t>(p.cell)]);
  }
  std::int32_t insert(const int* key, const Probe& p) {
    std::int32_t& id = cells_[static_cast<std::size_t>(p.cell)];
    if (id < 0) {
      id = size();
      for (int k = 0; k < D; ++k) keys_.push_back(key[k]);
    }
    return id;
  }
  // The key's id, or −1; for a probe that may_hold accepted (inside the box).
  std::int32_t find(const Probe& p) const { return cells_[static_cast<std::size_t>(p.cell)]; }
  void key_of(std::int32_t id, int* key) const {
    std::copy_n(&keys_[static_cast<std::size_t>(id) * D], D, key);
  }
  std::int32_t size() const { return static_cast<std::int32_t>(keys_.size() / D); }

 private:
  static int floor_div(int x) { return x >= 0 ? x / (D + 1) : -((-x + D) / (D + 1)); }
  int lo_[D] = {};
  std::int64_t extent_[D] = {};
  std::int64_t stride_[D] = {};
  std::vector<std::int32_t> cells_;
  std::vector<int> keys_;
};

// Whether point i lies in the same simplex as point i − 1 (same base key and ranks).
template <int D>
inline bool same_simplex(const std::vector<std::int16_t>& bases,
                         const std::vector<std::int8_t>& ranks, std::int64_t i) {
  return i > 0 &&
         std::memcmp(&bases[static_cast<std::size_t>(i * D)],
                     &bases[static_cast<std::size_t>((i - 1) * D)],
                     D * sizeof(std::int16_t)) == 0 &&
         std::memcmp(&ranks[static_cast<std::size_t>(i * D)],
                     &ranks[static_cast<std::size_t>((i - 1) * D)], D * sizeof(std::int8_t)) == 0;
}

// The links between the d+1 corners `ids` of one simplex, whose point has the ranks `rank`
// (corner r + 1 is the n2 of corner r along the axis ranked d − r, corner d the n1 of corner 0
// along the axis ranked 0); `links` holds vertex-major [M, d+1] entries for every id.
template <int D>
inline void link_simplex_corners(const std::int32_t* ids, const std::int8_t* rank,
                                 std::vector<BlurNeighbours>& links) {
  constexpr int kCorners = D + 1;
  int axis_of_rank[kCorners];
  int rank_sum = 0;
  for (int k = 0; k < D; ++k) {
    const int rk = rank[k];
    axis_of_rank[rk] = k;
    rank_sum += rk;
  }
  axis_of_rank[D * (D + 1) / 2 - rank_sum] = D;
  for (int r = 0; r < D; ++r) {
    const int a = axis_of_rank[D - r];
    links[static_cast<std::size_t>(ids[r]) * kCorners + a].n2 = ids[r + 1];
    links[static_cast<std::size_t>(ids[r + 1]) * kCorners + a].n1 = ids[r];
  }
  const int a0 = axis_of_rank[0];
  links[static_cast<std::size_t>(ids[0]) * kCorners + a0].n1 = ids[D];
  links[static_cast<std::size_t>(ids[D]) * kCorners + a0].n2 = ids[0];
}

// Phase B of the build (sequential, point order): the corners' vertex ids, Steps 1.5-1.6. A
// point in the same simplex as the previous one reuses its ids; the keys of the points a few
// ahead are probed (and their memory prefetched) early. The corners of a simplex are lattice
// neighbours of each other: those links are returned, vertex-major [M, d+1] (−1: unknown), so
// that Phase C looks up only the others.
template <int D, class Index>
std::vector<BlurNeighbours> index_corners(Index& index, std::int64_t n,
                                          const std::vector<std::int16_t>& bases,
                                          const std::vector<std::int8_t>& ranks,
                                          const int* canonical,
                                          BuildTable<std::int32_t>& point_vertices,
                                          BuildTable<std::int32_t>& first_new) {
  constexpr int kCorners = D + 1;
  using Probe = typename Index::Probe;
  point_vertices.resize(static_cast<std::size_t>(n * kCorners));
  first_new.resize(static_cast<std::size_t>(n));
  constexpr BlurNeighbours kUnknown{-1, -1};
  std::vector<BlurNeighbours> links;
  links.reserve(2 * static_cast<std::size_t>(n) * kCorners);  // M can exceed N (d = 2, σ = 1)
  constexpr int kAhead = 8;
  struct Pending {
    int keys[kCorners][D];
    Probe probes[kCorners];
  };
  Pending ring[kAhead];
  const auto prepare = [&](std::int64_t i) {
    Pending& p = ring[i % kAhead];
    const std::int16_t* base = &bases[static_cast<std::size_t>(i * D)];
    const std::int8_t* rank = &ranks[static_cast<std::size_t>(i * D)];
    for (int r = 0; r <= D; ++r) {
      for (int k = 0; k < D; ++k) p.keys[r][k] = base[k] + canonical[r * (D + 1) + rank[k]];
      p.probes[r] = index.probe(p.keys[r]);
    }
  };
  for (std::int64_t i = 0; i < std::min<std::int64_t>(kAhead, n); ++i) prepare(i);
  for (std::int64_t i = 0; i < n; ++i) {
    first_new[static_cast<std::size_t>(i)] = index.size();
    std::int32_t* ids = &point_vertices[static_cast<std::size_t>(i * kCorners)];
    if (same_simplex<D>(bases, ranks, i)) {
      std::copy_n(ids - kCorners, kCorners, ids);
    } else {
      const Pending& p = ring[i % kAhead];
      for (int r = 0; r <= D; ++r) ids[r] = index.insert(p.keys[r], p.probes[r]);
      const std::size_t needed = static_cast<std::size_t>(index.size()) * kCorners;
      // Grown by chunks of 16384 vertices: filling by doubling wrote up to twice the entries.
      if (needed > links.size()) links.resize(needed + 16384 * kCorners, kUnknown);
      link_simplex_corners<D>(ids, &ranks[static_cast<std::size_t>(i * D)], links);
    }
    if (i + kAhead < n) prepare(i + kAhead);
  }
  links.resize(static_cast<std::size_t>(index.size()) * kCorners);
  return links;
}

// Phase C of the build (parallel over vertices): the remaining neighbours, Step 2. n1 along
// axis a is K − 1 with K[a] + d (a < d), or K − 1 (a = d); the n2 of that vertex is K itself,
// so one lookup fills both links. Span by span of vertices: first every vertex-axis pair's key
// is probed and kept only if its link is unknown and the index may hold the key (no branch on
// either: both are unpredictable, and most keys are absent); then the kept ones are looked
// up, their memory requested a few lookups ahead.
template <int D, class Index>
void link_remaining_neighbours(const Index& index, int threads,
                               std::vector<BlurNeighbours>& links) {
  constexpr int kCorners = D + 1;
  using Probe = typename Index::Probe;
  const std::int32_t m = index.size();
  parallel_for(threads, m, kMinVertexChunk, [&](std::int64_t begin, std::int64_t end) {
    constexpr std::int64_t kSpan = 256;
    constexpr std::size_t kLookAhead = 8;
    std::vector<std::int64_t> slots(static_cast<std::size_t>(kSpan) * kCorners);
    std::vector<Probe> probes(static_cast<std::size_t>(kSpan) * kCorners);
    for (std::int64_t v0 = begin; v0 < end; v0 += kSpan) {
      std::size_t count = 0;
      for (std::int64_t v = v0; v < std::min(end, v0 + kSpan); ++v) {
        int key[D];
        index.key_of(static_cast<std::int32_t>(v), key);
        for (int a = 0; a <= D; ++a) {
          int n1[D];
          for (int k = 0; k < D; ++k) n1[k] = key[k] - 1;
          if (a < D) n1[a] = key[a] + D;
          const std::int64_t slot = v * kCorners + a;
          slots[count] = slot;
          probes[count] = index.key_probe(n1);
          count += static_cast<std::size_t>((links[static_cast<std::size_t>(slot)].n1 < 0) &
                                            index.may_hold(probes[count]));
        }
      }
      for (std::size_t c = 0; c < count; ++c) {
        if (c + kLookAhead < count) index.prefetch(probes[c + kLookAhead]);
        const std::int32_t u = index.find(probes[c]);
        if (u < 0) continue;  // the bitset's false positives, and keys outside the grid
        links[static_cast<std::size_t>(slots[c])].n1 = u;
        links[static_cast<std::size_t>(u) * kCorners + slots[c] % kCorners].n2 =
            static_cast<std::int32_t>(slots[c] / kCorners);
      }
    }
  });
}

// Phases B and C of the build (see PermutohedralLattice::build): vertex ids of every point's
// corners and the blur neighbours, vertex-major [M, d+1] (−1: none).
template <int D, class Index>
std::vector<BlurNeighbours> index_vertices(Index& index, std::int64_t n,
                                           const std::vector<std::int16_t>& bases,
                                           const std::vector<std::int8_t>& ranks,
                                           const int* canonical, int threads,
                                           BuildTable<std::int32_t>& point_vertices,
                                           BuildTable<std::int32_t>& first_new) {
  std::vector<BlurNeighbours> links =
      index_corners<D>(index, n, bases, ranks, canonical, point_vertices, first_new);
  link_remaining_neighbours<D>(index, threads, links);
  return links;
}

}  // namespace clipes::crf::detail
