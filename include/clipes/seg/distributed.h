#pragma once
/// Data-parallel training over torch.distributed's engine (c10d): a TCPStore rendezvous and a
/// Gloo (CPU) or NCCL (CUDA) process group. A job is launched the way the ecosystem launches
/// one (torchrun, srun, or a tool's --nproc): each process reads where it stands from its
/// environment (DistConfig), then train_segmentation connects the group.
///
/// Failures are reported, never waited on forever: every collective and the rendezvous time out
/// after DistConfig::timeout, and an error names the rank that is gone, hung or failed (each
/// rank leaves its error in the store before it stops).

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace clipes::seg {

/// Where this process stands in a job and how to reach the others.
struct DistConfig {
  int rank = 0;        ///< 0..world_size-1; rank 0 hosts the store and writes the outputs
  int world_size = 1;  ///< processes in the job; 1: no process group at all
  int local_rank = 0;  ///< index on this machine: the GPU a CUDA rank takes
  std::string master_addr = "127.0.0.1";  ///< host of rank 0 (the TCPStore)
  int master_port = 29500;                ///< port of the TCPStore
  std::string backend;  ///< "gloo", "nccl", or "" (NCCL on CUDA, Gloo on the CPU)
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};  ///< rendezvous and collectives
  std::string gloo_interface;  ///< network interface for Gloo (GLOO_SOCKET_IFNAME); "" = default
  std::string origin = "single process";  ///< which launcher's variables were read (for logs)
};

/// The job from a launcher's environment variables (name -> value; the tools pass the process
/// environment): torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, else SLURM's
/// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (MASTER_ADDR then required; MASTER_PORT defaults to
/// 29500), else a single process. Throws clipes::Error for a missing partner variable (RANK
/// without WORLD_SIZE), a value that is not a number, rank outside 0..world_size-1, or a
/// world larger than one without MASTER_ADDR where the launcher does not provide it.
DistConfig dist_config_from_env(const std::map<std::string, std::string>& env);

/// A connected process group (world_size > 1) and its store.
class Communicator {
 public:
  /// Joins the job: rank 0 serves the TCPStore at master_addr:master_port, every rank waits up
  /// to config.timeout for all world_size ranks; then the process group is built (backend
  /// "nccl" needs a CUDA LibTorch built with NCCL; "gloo" one with Gloo). `device` is the rank's
  /// device ("cpu" or "cuda:N"). Throws clipes::Error naming the ranks that never arrived.
  Communicator(const DistConfig& config, const std::string& device);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int world_size() const;
  const std::string& backend() const;

  /// Overwrites `tensors` (on the rank's device) with rank `root`'s values.
  void broadcast(std::vector<at::Tensor>& tensors, int root = 0);
  /// Replaces each tensor by its sum over the ranks. Tensors of one dtype are packed into
  /// buckets of at most `bucket_bytes` (one all-reduce each, all in flight together).
  void all_reduce_sum(std::vector<at::Tensor>& tensors, std::int64_t bucket_bytes = 25 << 20);
  /// The sum over the ranks of a small vector of numbers.
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  /// Rank `root`'s text on every rank.
  std::string broadcast_text(const std::string& text, int root = 0);

  /// A barrier that also carries each rank's outcome: returns when every rank reports ok; when
  /// some rank passed an error (or this one did), throws clipes::Error, on the other ranks
  /// naming the failed rank and its message.
  void agree(const std::string& error_or_empty, const std::string& what);

  /// Leaves this rank's error in the store for the others to read (best effort).
  void leave_error(const std::string& message) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Which distributed backends this build of clipes can use ("gloo", "nccl").
std::vector<std::string> available_backends();

}  // namespace clipes::seg
