#include "launch.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "clipes/core/error.h"

extern char** environ;

namespace clipes::cli {

namespace {

constexpr const char* kJobVariables[] = {
    "RANK",           "WORLD_SIZE",          "LOCAL_RANK",          "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",    "MASTER_PORT",         "SLURM_PROCID",        "SLURM_NTASKS",
    "SLURM_LOCALID",  "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX", "JOB_COMPLETIONS", "GLOO_SOCKET_IFNAME"};

std::vector<pid_t> g_children;  // for the forwarding signal handler only

void forward_signal(int signal) {
  for (pid_t pid : g_children) ::kill(pid, signal);
}

/// A TCP port that is free now (the kernel's pick for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(fmt::format("--nproc: socket(): {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) == 0;
  ::close(fd);
  if (!ok) throw Error(fmt::format("--nproc: no free local port: {}", std::strerror(errno)));
  return ntohs(addr.sin_port);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 1;  // killed by a signal
}

}  // namespace

std::map<std::string, std::string> launch_environment() {
  std::map<std::string, std::string> env;
  for (const char* name : kJobVariables) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  return env;
}

int run_local_ranks(int nproc, int argc, char** argv) {
  if (nproc < 1) throw Error(fmt::format("--nproc must be >= 1, got {}", nproc));
  for (const char* name : {"RANK", "WORLD_SIZE"}) {
    if (std::getenv(name) != nullptr) {
      throw Error(fmt::format("--nproc inside a launched job ({} is set): let the launcher "
                              "start the ranks, or drop --nproc",
                              name));
    }
  }
  const int port = free_port();
  spdlog::info("starting {} local ranks (MASTER_ADDR 127.0.0.1, MASTER_PORT {})", nproc, port);
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  g_children.clear();
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(fmt::format("--nproc: fork(): {}", std::strerror(errno)));
    if (pid == 0) {
      const std::string r = std::to_string(rank);
      const std::string n = std::to_string(nproc);
      ::setenv("RANK", r.c_str(), 1);
      ::setenv("LOCAL_RANK", r.c_str(), 1);
      ::setenv("WORLD_SIZE", n.c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", n.c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execv("/proc/self/exe", args.data());
      std::fprintf(stderr, "rank %d: cannot start %s: %s\n", rank, argv[0], std::strerror(errno));
      ::_exit(127);
    }
    g_children.push_back(pid);
  }
  struct sigaction forward {};
  forward.sa_handler = forward_signal;
  ::sigaction(SIGINT, &forward, nullptr);
  ::sigaction(SIGTERM, &forward, nullptr);
  int code = 0;
  bool interrupted = false;
  for (std::size_t done = 0; done < g_children.size();) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    ++done;
    const int rc = exit_code_of(status);
    int rank = 0;
    while (rank < static_cast<int>(g_children.size()) && g_children[rank] != pid) ++rank;
    if (rc != 0) spdlog::warn("rank {} ended with exit code {}", rank, rc);
    interrupted = interrupted || rc == 130;
    if (code == 0) code = rc;
  }
  g_children.clear();
  return interrupted ? 130 : code;
}

void tag_logging_for_rank(int rank, int world_size, bool verbose) {
  if (world_size < 2) return;
  auto logger = spdlog::default_logger();
  logger->set_pattern(fmt::format("[%H:%M:%S] [rank {}] [%^%l%$] %v", rank));
  if (rank != 0 && !verbose) logger->set_level(spdlog::level::warn);
}

}  // namespace clipes::cli
