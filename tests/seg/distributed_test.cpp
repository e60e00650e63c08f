// Data-parallel training's parts: the launch environment, the loss split over ranks, the loader's
// shares of a global batch, and a real two-rank Gloo group (two threads of this process).

#include "clipes/seg/distributed.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <opencv2/imgcodecs.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "clipes/core/error.h"
#include "clipes/seg/loss.h"
#include "clipes/seg/seg_data.h"
#include "seg_test_data.h"
#include "support/test_support.h"

namespace clipes::seg {
namespace {

using Env = std::map<std::string, std::string>;
using clipes::testing::error_of;

TEST(DistEnv, NoLauncherVariablesIsOneProcess) {
  const DistConfig c = dist_config_from_env({});
  EXPECT_EQ(c.world_size, 1);
  EXPECT_EQ(c.rank, 0);
  EXPECT_EQ(c.origin, "single process");
}

TEST(DistEnv, TorchrunVariables) {
  const DistConfig c = dist_config_from_env({{"RANK", "3"},
                                             {"WORLD_SIZE", "4"},
                                             {"LOCAL_RANK", "1"},
                                             {"MASTER_ADDR", "node7"},
                                             {"MASTER_PORT", "1234"},
                                             {"SLURM_PROCID", "0"},  // torchrun's win
                                             {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(c.rank, 3);
  EXPECT_EQ(c.world_size, 4);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.master_addr, "node7");
  EXPECT_EQ(c.master_port, 1234);
  EXPECT_EQ(c.origin, "torchrun environment");
}

TEST(DistEnv, SlurmVariablesWithoutTorchrunOnes) {
  const DistConfig c = dist_config_from_env({{"SLURM_PROCID", "5"},
                                             {"SLURM_NTASKS", "8"},
                                             {"SLURM_LOCALID", "1"},
                                             {"MASTER_ADDR", "n1"},
                                             {"GLOO_SOCKET_IFNAME", "ib0"}});
  EXPECT_EQ(c.rank, 5);
  EXPECT_EQ(c.world_size, 8);
  EXPECT_EQ(c.local_rank, 1);
  EXPECT_EQ(c.master_port, 29500);
  EXPECT_EQ(c.gloo_interface, "ib0");
  EXPECT_EQ(c.origin, "SLURM environment");
}

TEST(DistEnv, MissingOrContradictoryVariablesAreErrors) {
  EXPECT_NE(error_of([] { dist_config_from_env({{"RANK", "0"}}); })
                .find("RANK is set but WORLD_SIZE is not"),
            std::string::npos);
  EXPECT_NE(error_of([] { dist_config_from_env({{"WORLD_SIZE", "2"}}); })
                .find("WORLD_SIZE is set but RANK is not"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              dist_config_from_env({{"RANK", "one"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}});
            }).find("RANK=\"one\": expected an integer >= 0"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              dist_config_from_env({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}});
            }).find("RANK=2 is outside 0..1 (WORLD_SIZE=2)"),
            std::string::npos);
  EXPECT_NE(error_of([] { dist_config_from_env({{"RANK", "0"}, {"WORLD_SIZE", "2"}}); })
                .find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              dist_config_from_env({{"RANK", "0"},
                                    {"WORLD_SIZE", "2"},
                                    {"MASTER_ADDR", "h"},
                                    {"MASTER_PORT", "70000"}});
            }).find("MASTER_PORT=70000 is not a TCP port"),
            std::string::npos);
  // One process needs no rendezvous address.
  EXPECT_EQ(dist_config_from_env({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).world_size, 1);
}

/// Labels with ignored pixels, and (in the second half) an image without foreground.
at::Tensor test_labels(std::int64_t n, std::int64_t h, std::int64_t w) {
  at::Tensor labels = at::randint(0, 4, {n, h, w}, at::kLong);
  labels.index_put_({0, at::indexing::Slice(0, 3)}, kIgnoreLabel);
  labels[n - 1].fill_(0);
  labels.index_put_({n - 1, 0}, kIgnoreLabel);
  return labels;
}

TEST(LossTerms, RanksSharesAddUpToTheGlobalBatchLossAndGradient) {
  at::manual_seed(3);
  for (LossKind kind : {LossKind::kCrossEntropy, LossKind::kClassBalanced}) {
    const at::Tensor labels = test_labels(4, 16, 12);
    const at::Tensor a = at::randn({4, 4, 16, 12}).requires_grad_(true);
    const at::Tensor b = at::randn({4, 4, 8, 6}).requires_grad_(true);
    const at::Tensor whole = multi_scale_loss({a, b}, labels, kind);
    whole.backward();
    const at::Tensor grad_a = a.grad().clone();
    const at::Tensor grad_b = b.grad().clone();
    a.mutable_grad().zero_();
    b.mutable_grad().zero_();

    // Two "ranks" of two images each: counts summed, then each rank's sums over the global counts.
    std::vector<LossTerms> shares;
    for (int r = 0; r < 2; ++r) {
      shares.push_back(multi_scale_loss_terms({a.narrow(0, 2 * r, 2), b.narrow(0, 2 * r, 2)},
                                              labels.narrow(0, 2 * r, 2), kind));
    }
    std::vector<double> counts(shares[0].counts.size());
    std::vector<double> sums(counts.size());
    for (const auto& s : shares) {
      for (std::size_t i = 0; i < counts.size(); ++i) {
        counts[i] += s.counts[i];
        sums[i] += s.sums[i].item<double>();
      }
    }
    at::Tensor added;
    for (const auto& s : shares) {
      const at::Tensor l = combine_loss_terms(s.sums, counts, kind);
      added = added.defined() ? added + l : l;
    }
    added.backward();
    EXPECT_NEAR(added.item<double>(), whole.item<double>(), 1e-6);
    EXPECT_NEAR(combine_loss_terms(sums, counts, kind), whole.item<double>(), 1e-6);
    EXPECT_LT((a.grad() - grad_a).abs().max().item<double>(), 1e-8);
    EXPECT_LT((b.grad() - grad_b).abs().max().item<double>(), 1e-8);
    // A rank that normalised by its own counts (plain per-rank means) would be wrong here.
    const at::Tensor local0 = combine_loss_terms(shares[0].sums, shares[0].counts, kind);
    const at::Tensor local1 = combine_loss_terms(shares[1].sums, shares[1].counts, kind);
    EXPECT_GT(std::abs(((local0 + local1) / 2).item<double>() - whole.item<double>()), 1e-3);
  }
}

class ShardedLoader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = clipes::testing::make_temp_dir("sharded_loader");
    testing::write_synthetic_dataset(dir_, 6, 40, 48, 11);
    config_ = testing::tiny_train_config();
    config_.data.workers = 1;
  }
  SegDataset dataset() const {
    return SegDataset({dir_ / "images", dir_ / "masks", {}, {}}, config_.model.num_classes,
                      config_.data.confidence_threshold);
  }
  std::filesystem::path dir_;
  TrainConfig config_;
};

TEST_F(ShardedLoader, RanksSharesAreTheGlobalBatchInOrder) {
  BatchLoader whole(dataset(), config_.data, config_.input, BatchSampler(6, 7), 4);
  BatchLoader first(dataset(), config_.data, config_.input, BatchSampler(6, 7), 4, {0, 2});
  BatchLoader second(dataset(), config_.data, config_.input, BatchSampler(6, 7), 4, {1, 2});
  for (int step = 0; step < 3; ++step) {  // crosses an epoch boundary (6 images, 4 per batch)
    const Batch w = whole.next();
    const Batch a = first.next();
    const Batch b = second.next();
    ASSERT_EQ(a.images.size(0), 2);
    EXPECT_TRUE(at::equal(at::cat({a.images, b.images}), w.images)) << "step " << step;
    EXPECT_TRUE(at::equal(at::cat({a.labels, b.labels}), w.labels)) << "step " << step;
    EXPECT_EQ(first.sampler_state(), whole.sampler_state());
  }
  EXPECT_NE(error_of([&] {
              BatchLoader bad(dataset(), config_.data, config_.input, BatchSampler(6, 7), 4,
                              {0, 3});
            }).find("shard 0 of 3 cannot share batches of 4"),
            std::string::npos);
}

TEST_F(ShardedLoader, DataCheckSharesDecodeDisjointHalves) {
  // A broken mask in image 3: only the rank whose share holds it (3 % 2 == 1) finds it.
  cv::Mat bad(10, 10, CV_8UC1, cv::Scalar(77));
  ASSERT_TRUE(cv::imwrite((dir_ / "masks" / "img3.png").string(), bad));
  EXPECT_TRUE(check_training_data(dataset(), 1, {0, 2}).empty());
  const auto problems = check_training_data(dataset(), 1, {1, 2});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("img3"), std::string::npos) << problems[0];
  EXPECT_EQ(check_training_data(dataset(), 1), problems);
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  ::close(fd);
  return ntohs(addr.sin_port);
}

DistConfig local_job(int rank, int world, int port, std::chrono::milliseconds timeout) {
  DistConfig c;
  c.rank = rank;
  c.world_size = world;
  c.master_port = port;
  c.timeout = timeout;
  return c;
}

bool has_gloo() {
  const auto b = available_backends();
  return std::find(b.begin(), b.end(), "gloo") != b.end();
}

TEST(Communicator, TwoGlooRanksBroadcastSumAndAgree) {
  if (!has_gloo()) GTEST_SKIP() << "SKIPPED: this build has no Gloo (libgloo-dev)";
  const int port = free_port();
  auto rank_main = [port](int rank) {
    Communicator group(local_job(rank, 2, port, std::chrono::seconds(20)), "cpu");
    EXPECT_EQ(group.backend(), "gloo");
    std::vector<at::Tensor> weights{at::full({3}, rank + 1.0), at::full({2, 2}, rank * 10.0)};
    group.broadcast(weights);
    EXPECT_TRUE(at::equal(weights[0], at::full({3}, 1.0)));
    EXPECT_TRUE(at::equal(weights[1], at::zeros({2, 2})));
    // Mixed dtypes and 16-byte buckets: several buckets, each tensor summed in place.
    std::vector<at::Tensor> grads{at::arange(5, at::kFloat) * (rank + 1),
                                  at::full({4}, rank + 1.0, at::kDouble),
                                  at::full({2, 3}, 1.0f + rank)};
    group.all_reduce_sum(grads, 16);
    EXPECT_TRUE(at::equal(grads[0], at::arange(5, at::kFloat) * 3));
    EXPECT_TRUE(at::equal(grads[1], at::full({4}, 3.0, at::kDouble)));
    EXPECT_TRUE(at::equal(grads[2], at::full({2, 3}, 3.0f)));
    EXPECT_EQ(group.all_reduce_sum(std::vector<double>{0.5, rank * 1.0}),
              (std::vector<double>{1.0, 1.0}));
    EXPECT_EQ(group.broadcast_text(rank == 0 ? std::string("sampler\0state", 13) : "x"),
              std::string("sampler\0state", 13));
    group.agree("", "step one");
    return error_of([&] { group.agree(rank == 1 ? "mask 7.png is broken" : "", "checking"); });
  };
  auto r1 = std::async(std::launch::async, rank_main, 1);
  const std::string e0 = rank_main(0);
  const std::string e1 = r1.get();
  EXPECT_EQ(e1, "mask 7.png is broken");
  EXPECT_NE(e0.find("rank 0: checking stopped because another rank failed; rank 1: mask 7.png "
                    "is broken"),
            std::string::npos)
      << e0;
}

TEST(Communicator, ARankThatNeverJoinsIsNamed) {
  if (!has_gloo()) GTEST_SKIP() << "SKIPPED: this build has no Gloo (libgloo-dev)";
  const std::string e = error_of([] {
    Communicator group(local_job(0, 3, free_port(), std::chrono::milliseconds(1500)), "cpu");
  });
  EXPECT_NE(e.find("rank 0: ranks 1, 2 never joined the job at 127.0.0.1"), std::string::npos)
      << e;
}

TEST(Communicator, NcclNeedsCudaDevices) {
  DistConfig c = local_job(0, 2, free_port(), std::chrono::milliseconds(500));
  c.backend = "nccl";
  EXPECT_NE(error_of([&] { Communicator group(c, "cpu"); }).find("nccl needs CUDA devices"),
            std::string::npos);
}

}  // namespace
}  // namespace clipes::seg
