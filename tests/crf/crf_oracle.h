#pragma once
/// Slow, obviously right references for the CRF tests: the exact O(N²) Gaussian filter and the
/// exact dense CRF mean field (dense-crf.md with K computed exactly), plus small helpers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <opencv2/core/mat.hpp>
#include <random>
#include <vector>

namespace clipes::crf::testing {

/// out[i, c] = Σ_j exp(−½‖p_i − p_j‖²) · values[j, c], in double. features [n, dim].
inline std::vector<double> exact_gaussian_filter(const std::vector<float>& features, int dim,
                                                 const std::vector<float>& values, int channels) {
  const std::size_t n = features.size() / static_cast<std::size_t>(dim);
  std::vector<double> out(n * static_cast<std::size_t>(channels), 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double d2 = 0.0;
      for (int k = 0; k < dim; ++k) {
        const double d = static_cast<double>(features[i * dim + k]) - features[j * dim + k];
        d2 += d * d;
      }
      const double w = std::exp(-0.5 * d2);
      for (int c = 0; c < channels; ++c) out[i * channels + c] += w * values[j * channels + c];
    }
  }
  return out;
}

/// Features of the CRF kernels for an 8-bit 3-channel image: (x/s, y/s) or
/// (x/s, y/s, c0/srgb, c1/srgb, c2/srgb), point-major.
inline std::vector<float> position_features(int height, int width, float sxy) {
  std::vector<float> f;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      f.push_back(static_cast<float>(x) / sxy);
      f.push_back(static_cast<float>(y) / sxy);
    }
  }
  return f;
}
inline std::vector<float> bilateral_features(const cv::Mat& image, float sxy, float srgb) {
  std::vector<float> f;
  for (int y = 0; y < image.rows; ++y) {
    for (int x = 0; x < image.cols; ++x) {
      f.push_back(static_cast<float>(x) / sxy);
      f.push_back(static_cast<float>(y) / sxy);
      for (int c = 0; c < 3; ++c)
        f.push_back(static_cast<float>(image.at<cv::Vec3b>(y, x)[c]) / srgb);
    }
  }
  return f;
}

/// Dense CRF mean field with exact kernels: Q = softmax(−U); T times A = −U + Σ_k w_k ·
/// n_k ⊙ K_k (n_k ⊙ Q), n_k = 1/√(K_k·1) (self term included). unary [L, N] planar; returns
/// Q [L, N] planar, in double. The kernel matrices are formed once (N² floats each).
inline std::vector<double> exact_dense_crf(const std::vector<float>& unary, int labels,
                                           const cv::Mat& image, int iterations, float pos_std,
                                           float pos_weight, float bi_std, float bi_rgb_std,
                                           float bi_weight) {
  const std::size_t n = static_cast<std::size_t>(image.rows) * image.cols;
  struct Kernel {
    std::vector<float> matrix;  // [n, n]
    std::vector<double> norm;
    float weight;
  };
  std::vector<Kernel> kernels;
  const auto add_kernel = [&](const std::vector<float>& features, int dim, float weight) {
    Kernel k{std::vector<float>(n * n), std::vector<double>(n, 0.0), weight};
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        double d2 = 0.0;
        for (int c = 0; c < dim; ++c) {
          const double d = static_cast<double>(features[i * dim + c]) - features[j * dim + c];
          d2 += d * d;
        }
        k.matrix[i * n + j] = static_cast<float>(std::exp(-0.5 * d2));
        k.norm[i] += std::exp(-0.5 * d2);
      }
    }
    for (double& v : k.norm) v = 1.0 / std::sqrt(v);
    kernels.push_back(std::move(k));
  };
  if (pos_weight > 0) add_kernel(position_features(image.rows, image.cols, pos_std), 2, pos_weight);
  if (bi_weight > 0) add_kernel(bilateral_features(image, bi_std, bi_rgb_std), 5, bi_weight);

  std::vector<double> q(static_cast<std::size_t>(labels) * n);
  std::vector<double> a(q.size());
  const auto softmax = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      double mx = a[i];
      for (int l = 1; l < labels; ++l) mx = std::max(mx, a[l * n + i]);
      double sum = 0.0;
      for (int l = 0; l < labels; ++l) sum += std::exp(a[l * n + i] - mx);
      for (int l = 0; l < labels; ++l) q[l * n + i] = std::exp(a[l * n + i] - mx) / sum;
    }
  };
  for (std::size_t t = 0; t < a.size(); ++t) a[t] = -static_cast<double>(unary[t]);
  softmax();
  std::vector<double> scaled(q.size());
  for (int it = 0; it < iterations; ++it) {
    for (std::size_t t = 0; t < a.size(); ++t) a[t] = -static_cast<double>(unary[t]);
    for (const Kernel& k : kernels) {
      for (int l = 0; l < labels; ++l) {
        for (std::size_t j = 0; j < n; ++j) scaled[l * n + j] = k.norm[j] * q[l * n + j];
      }
      for (std::size_t i = 0; i < n; ++i) {
        const float* row = &k.matrix[i * n];
        for (int l = 0; l < labels; ++l) {
          const double* s = &scaled[l * n];
          double sum = 0.0;
          for (std::size_t j = 0; j < n; ++j) sum += row[j] * s[j];
          a[l * n + i] += k.weight * k.norm[i] * sum;
        }
      }
    }
    softmax();
  }
  return q;
}

/// A small test image: a few coloured discs on a gradient, with noise.
inline cv::Mat synthetic_image(int height, int width, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::normal_distribution<float> noise(0.0f, 4.0f);
  struct Disc {
    float cx, cy, r, col[3];
  };
  std::vector<Disc> discs;
  for (int d = 0; d < 3; ++d) {
    discs.push_back({u(rng) * width,
                     u(rng) * height,
                     (0.2f + 0.2f * u(rng)) * std::min(height, width),
                     {255 * u(rng), 255 * u(rng), 255 * u(rng)}});
  }
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      float c[3] = {40.0f + 100.0f * x / width, 60.0f + 80.0f * y / height, 120.0f};
      for (const Disc& d : discs) {
        if ((x - d.cx) * (x - d.cx) + (y - d.cy) * (y - d.cy) < d.r * d.r) {
          for (int k = 0; k < 3; ++k) c[k] = d.col[k];
        }
      }
      for (int k = 0; k < 3; ++k) {
        image.at<cv::Vec3b>(y, x)[k] =
            static_cast<std::uint8_t>(std::clamp(c[k] + noise(rng), 0.0f, 255.0f));
      }
    }
  }
  return image;
}

/// A CAM-like unary for `labels` labels on h×w: smooth random blobs, −log softmax, [L, h·w].
inline std::vector<float> synthetic_unary(int labels, int height, int width, unsigned seed,
                                          float amplitude = 3.0f, float noise = 0.3f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int n = height * width;
  std::vector<float> logits(static_cast<std::size_t>(labels) * n, 0.0f);
  for (int l = 0; l < labels; ++l) {
    for (int b = 0; b < 2; ++b) {
      const float cx = u(rng) * width, cy = u(rng) * height;
      const float r = (0.15f + 0.3f * u(rng)) * std::min(height, width);
      const float amp = amplitude * (0.5f + u(rng));
      for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
          const float d2 = ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (r * r);
          logits[static_cast<std::size_t>(l) * n + y * width + x] +=
              amp * std::exp(-d2) + noise * u(rng);
        }
      }
    }
  }
  std::vector<float> unary(logits.size());
  for (int i = 0; i < n; ++i) {
    float mx = logits[i];
    for (int l = 1; l < labels; ++l) mx = std::max(mx, logits[static_cast<std::size_t>(l) * n + i]);
    double sum = 0.0;
    for (int l = 0; l < labels; ++l)
      sum += std::exp(logits[static_cast<std::size_t>(l) * n + i] - mx);
    for (int l = 0; l < labels; ++l) {
      const double p = std::exp(logits[static_cast<std::size_t>(l) * n + i] - mx) / sum;
      unary[static_cast<std::size_t>(l) * n + i] = static_cast<float>(-std::log(std::max(p, 1e-5)));
    }
  }
  return unary;
}

}  // namespace clipes::crf::testing
