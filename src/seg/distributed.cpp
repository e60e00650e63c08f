#include "clipes/seg/distributed.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <algorithm>
#include <thread>

#ifdef CLIPES_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef CLIPES_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "clipes/core/error.h"

namespace clipes::seg {

namespace {

// LibTorch 2 split the process group into a front and per-device backends; the concrete Gloo
// and NCCL classes derive from the backend, whose collectives have the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBase = c10d::Backend;
#else
using CollectiveBase = c10d::ProcessGroup;
#endif

std::string lookup(const std::map<std::string, std::string>& env, const std::string& name) {
  const auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

int parse_count(const std::string& name, const std::string& value, int minimum) {
  try {
    std::size_t used = 0;
    const long v = std::stol(value, &used);
    if (used == value.size() && v >= minimum && v <= 1 << 20) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw Error(fmt::format("environment variable {}=\"{}\": expected an integer >= {}", name,
                          value, minimum));
}

std::string key_error(int rank) { return fmt::format("clipes/error/{}", rank); }
std::string key_joined(int rank) { return fmt::format("clipes/joined/{}", rank); }

std::string as_text(const std::vector<std::uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

DistConfig dist_config_from_env(const std::map<std::string, std::string>& env) {
  DistConfig c;
  struct Names {
    const char* rank;
    const char* world;
    const char* local;
    const char* origin;
  };
  const Names torchrun{"RANK", "WORLD_SIZE", "LOCAL_RANK", "torchrun environment"};
  const Names slurm{"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM environment"};
  const Names* names = nullptr;
  if (!lookup(env, "RANK").empty() || !lookup(env, "WORLD_SIZE").empty()) {
    names = &torchrun;
  } else if (!lookup(env, "SLURM_PROCID").empty() && !lookup(env, "SLURM_NTASKS").empty()) {
    names = &slurm;
  }
  if (names == nullptr) return c;
  for (const char* name : {names->rank, names->world}) {
    if (lookup(env, name).empty()) {
      throw Error(fmt::format("{} is set but {} is not: a distributed launch sets both ({})",
                              std::string(names->rank) == name ? names->world : names->rank,
                              name, names->origin));
    }
  }
  c.origin = names->origin;
  c.world_size = parse_count(names->world, lookup(env, names->world), 1);
  c.rank = parse_count(names->rank, lookup(env, names->rank), 0);
  if (c.rank >= c.world_size) {
    throw Error(fmt::format("{}={} is outside 0..{} ({}={})", names->rank, c.rank,
                            c.world_size - 1, names->world, c.world_size));
  }
  const std::string local = lookup(env, names->local);
  c.local_rank = local.empty() ? 0 : parse_count(names->local, local, 0);
  const std::string addr = lookup(env, "MASTER_ADDR");
  if (!addr.empty()) {
    c.master_addr = addr;
  } else if (c.world_size > 1) {
    throw Error(fmt::format(
        "{} ranks ({}) but MASTER_ADDR is not set: export MASTER_ADDR=<host of rank 0> (and "
        "MASTER_PORT) before launching",
        c.world_size, c.origin));
  }
  const std::string port = lookup(env, "MASTER_PORT");
  if (!port.empty()) {
    c.master_port = parse_count("MASTER_PORT", port, 1);
    if (c.master_port > 65535) {
      throw Error(fmt::format("MASTER_PORT={} is not a TCP port (1..65535)", port));
    }
  }
  c.gloo_interface = lookup(env, "GLOO_SOCKET_IFNAME");
  return c;
}

std::vector<std::string> available_backends() {
  std::vector<std::string> b;
#ifdef CLIPES_HAVE_GLOO
  b.emplace_back("gloo");
#endif
#ifdef CLIPES_HAVE_NCCL
  b.emplace_back("nccl");
#endif
  return b;
}

struct Communicator::Impl {
  DistConfig config;
  std::string backend;
  c10::Device device{c10::kCPU};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBase> group;

  /// The errors the other ranks left in the store, polled until `wanted` of them are there or
  /// `patience` has passed (a store write can land just after the collective that announced
  /// the failure); `silent` receives the ranks without one.
  std::vector<std::string> read_reports(int wanted, std::chrono::milliseconds patience,
                                        std::vector<int>* silent) {
    const auto until = std::chrono::steady_clock::now() + patience;
    std::vector<std::string> reports;
    for (;;) {
      reports.clear();
      silent->clear();
      for (int r = 0; r < config.world_size; ++r) {
        if (r == config.rank) continue;
        if (store->check({key_error(r)})) {
          reports.push_back(as_text(store->get(key_error(r))));
        } else {
          silent->push_back(r);
        }
      }
      if (static_cast<int>(reports.size()) >= wanted || std::chrono::steady_clock::now() > until) {
        return reports;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// The error to throw when a collective or the store failed: which ranks left an error,
  /// which said nothing (killed, crashed or hung), or that rank 0's store is gone.
  [[noreturn]] void fail(const std::string& operation, const std::string& cause) {
    const std::string mine =
        fmt::format("rank {}: {} failed ({})", config.rank, operation, cause);
    std::vector<std::string> reports;
    std::vector<int> silent;
    try {
      store->set(key_error(config.rank), std::vector<std::uint8_t>(mine.begin(), mine.end()));
      // The other ranks see the failure at about the same time: give them a moment to report.
      reports = read_reports(config.world_size - 1, std::chrono::seconds(3), &silent);
    } catch (const std::exception&) {
      throw Error(fmt::format(
          "rank {}: {} failed: rank 0 (which hosts the rendezvous store at {}:{}) is gone "
          "(killed or crashed?); cause: {}",
          config.rank, operation, config.master_addr, config.master_port, cause));
    }
    std::string text = fmt::format("rank {}: {} failed", config.rank, operation);
    if (!silent.empty()) {
      text += fmt::format("; rank{} {} stopped answering (killed, crashed or hung?)",
                          silent.size() > 1 ? "s" : "", fmt::join(silent, ", "));
    }
    for (const auto& r : reports) text += "; " + r;
    throw Error(fmt::format("{}; cause: {}", text, cause));
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* operation) {
    try {
      work->wait(config.timeout);
    } catch (const std::exception& e) {
      fail(operation, e.what());
    }
  }

  void connect_store() {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(config.master_port);
    options.isServer = config.rank == 0;
    options.numWorkers = config.world_size;
    options.waitWorkers = false;  // joined/<rank> keys below: missing ranks get named
    options.timeout = config.timeout;
    try {
      store = c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
    } catch (const std::exception& e) {
      throw Error(fmt::format(
          "rank {}: cannot {} the rendezvous store at {}:{} within {} s: {}", config.rank,
          config.rank == 0 ? "serve" : "reach rank 0's", config.master_addr, config.master_port,
          std::chrono::duration_cast<std::chrono::seconds>(config.timeout).count(), e.what()));
    }
    store->set(key_joined(config.rank), std::vector<std::uint8_t>{1});
    const auto until = std::chrono::steady_clock::now() + config.timeout;
    for (;;) {
      std::vector<int> missing;
      for (int r = 0; r < config.world_size; ++r) {
        if (!store->check({key_joined(r)})) missing.push_back(r);
      }
      if (missing.empty()) return;
      if (std::chrono::steady_clock::now() > until) {
        throw Error(fmt::format(
            "rank {}: rank{} {} never joined the job at {}:{} within {} s (not started, wrong "
            "MASTER_ADDR/MASTER_PORT, or a different WORLD_SIZE?)",
            config.rank, missing.size() > 1 ? "s" : "", fmt::join(missing, ", "),
            config.master_addr, config.master_port,
            std::chrono::duration_cast<std::chrono::seconds>(config.timeout).count()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void make_group() {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("clipes/pg", store);
    if (backend == "gloo") {
#ifdef CLIPES_HAVE_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(config.timeout);
      const bool loopback =
          config.master_addr == "localhost" || config.master_addr.rfind("127.", 0) == 0;
      if (!config.gloo_interface.empty()) {
        options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(config.gloo_interface));
      } else if (loopback) {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      options->threads = 2;
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, config.rank,
                                                         config.world_size, options);
      return;
#endif
    } else if (backend == "nccl") {
#ifdef CLIPES_HAVE_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = config.timeout;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, config.rank,
                                                         config.world_size, options);
      return;
#endif
    }
    const auto have = available_backends();
    throw Error(fmt::format(
        "distributed backend \"{}\" is not in this build of clipes (it has: {}); {}", backend,
        have.empty() ? std::string("none") : fmt::format("{}", fmt::join(have, ", ")),
        backend == "nccl" ? "NCCL needs a CUDA LibTorch (README, \"LibTorch 2 and CUDA\")"
                          : "Gloo needs Debian's libgloo-dev when clipes is built"));
  }
};

Communicator::Communicator(const DistConfig& config, const std::string& device)
    : impl_(std::make_unique<Impl>()) {
  if (config.world_size < 2) {
    throw Error("Communicator: a process group needs at least 2 ranks");
  }
  impl_->config = config;
  impl_->device = c10::Device(device);
  impl_->backend = config.backend.empty() ? (impl_->device.is_cuda() ? "nccl" : "gloo")
                                          : config.backend;
  if (impl_->backend == "nccl" && !impl_->device.is_cuda()) {
    throw Error("--dist-backend nccl needs CUDA devices; use gloo on the CPU");
  }
  impl_->connect_store();
  try {
    impl_->make_group();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    impl_->fail("building the process group", e.what());
  }
}

Communicator::~Communicator() = default;

int Communicator::rank() const { return impl_->config.rank; }
int Communicator::world_size() const { return impl_->config.world_size; }
const std::string& Communicator::backend() const { return impl_->backend; }

void Communicator::broadcast(std::vector<at::Tensor>& tensors, int root) {
  c10d::BroadcastOptions options;
  options.rootRank = root;
  options.timeout = impl_->config.timeout;
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    impl_->wait(impl_->group->broadcast(one, options), "broadcast");
  }
}

void Communicator::all_reduce_sum(std::vector<at::Tensor>& tensors, std::int64_t bucket_bytes) {
  // Buckets of consecutive same-dtype tensors, flattened into one buffer each.
  struct Bucket {
    std::vector<std::size_t> members;
    std::vector<at::Tensor> flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::int64_t bytes = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    const std::int64_t size = t.numel() * static_cast<std::int64_t>(t.element_size());
    if (buckets.empty() || bytes + size > bucket_bytes ||
        tensors[buckets.back().members.front()].scalar_type() != t.scalar_type()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().members.push_back(i);
    bytes += size;
  }
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.timeout = impl_->config.timeout;
  for (auto& b : buckets) {
    std::vector<at::Tensor> parts;
    for (std::size_t i : b.members) parts.push_back(tensors[i].reshape({-1}));
    b.flat = {at::cat(parts)};
    b.work = impl_->group->allreduce(b.flat, options);
  }
  for (auto& b : buckets) {
    impl_->wait(b.work, "gradient all-reduce");
    std::int64_t offset = 0;
    for (std::size_t i : b.members) {
      at::Tensor& t = tensors[i];
      t.copy_(b.flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

std::vector<double> Communicator::all_reduce_sum(const std::vector<double>& values) {
  std::vector<at::Tensor> t{
      at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(impl_->device)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.timeout = impl_->config.timeout;
  impl_->wait(impl_->group->allreduce(t, options), "all-reduce");
  const at::Tensor cpu = t[0].cpu();
  return std::vector<double>(cpu.data_ptr<double>(), cpu.data_ptr<double>() + cpu.numel());
}

std::string Communicator::broadcast_text(const std::string& text, int root) {
  const auto options = at::TensorOptions().device(impl_->device);
  std::vector<at::Tensor> size{at::full({1}, static_cast<std::int64_t>(text.size()),
                                        options.dtype(at::kLong))};
  broadcast(size, root);
  const std::int64_t n = size[0].item<std::int64_t>();
  at::Tensor bytes = at::zeros({std::max<std::int64_t>(n, 1)}, at::kByte);
  if (rank() == root) std::copy(text.begin(), text.end(), bytes.data_ptr<std::uint8_t>());
  std::vector<at::Tensor> data{bytes.to(impl_->device)};
  broadcast(data, root);
  const at::Tensor cpu = data[0].cpu();
  return std::string(reinterpret_cast<const char*>(cpu.data_ptr<std::uint8_t>()),
                     static_cast<std::size_t>(n));
}

void Communicator::agree(const std::string& error_or_empty, const std::string& what) {
  if (!error_or_empty.empty()) leave_error(fmt::format("rank {}: {}", rank(), error_or_empty));
  const double failed = all_reduce_sum({error_or_empty.empty() ? 0.0 : 1.0}).at(0);
  if (failed == 0) return;
  if (!error_or_empty.empty()) throw Error(error_or_empty);
  std::vector<int> silent;
  std::string reasons;
  for (const auto& r : impl_->read_reports(static_cast<int>(failed), std::chrono::seconds(5),
                                           &silent)) {
    reasons += "; " + r;
  }
  throw Error(fmt::format("rank {}: {} stopped because another rank failed{}", rank(), what,
                          reasons));
}

void Communicator::leave_error(const std::string& message) noexcept {
  try {
    impl_->store->set(key_error(rank()),
                      std::vector<std::uint8_t>(message.begin(), message.end()));
  } catch (...) {
  }
}

}  // namespace clipes::seg
