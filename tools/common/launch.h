#pragma once
/// How a tool becomes one rank of a job: the launcher's environment (torchrun, srun, a SLURM
/// array, a Kubernetes indexed job) and --nproc, which starts N local ranks of the same command.

#include <map>
#include <string>

namespace clipes::cli {

/// The variables of this process's environment that describe a job (RANK, WORLD_SIZE,
/// LOCAL_RANK, MASTER_ADDR, MASTER_PORT, SLURM_*, JOB_COMPLETION_INDEX, GLOO_SOCKET_IFNAME...),
/// for clipes::seg::dist_config_from_env and shard_from_env.
std::map<std::string, std::string> launch_environment();

/// Runs `argv` (this tool's own command line without its --nproc option) as `nproc` local ranks:
/// each child gets RANK = LOCAL_RANK = i, WORLD_SIZE = LOCAL_WORLD_SIZE = nproc, MASTER_ADDR =
/// 127.0.0.1 and a free MASTER_PORT. SIGINT/SIGTERM are passed on to the children. Returns the
/// job's exit code: 0 when every rank returned 0; else 130 when a rank was interrupted, else the
/// first failing rank's code (a rank killed by a signal counts as 1). Throws clipes::Error when
/// the environment already describes a job (nested launch) or a child cannot be started.
int run_local_ranks(int nproc, int argc, char** argv);

/// Log lines of a rank of a multi-rank job carry "rank R" and, for ranks other than 0, show
/// warnings and errors only (unless verbose): rank 0 speaks for the job.
void tag_logging_for_rank(int rank, int world_size, bool verbose);

}  // namespace clipes::cli
