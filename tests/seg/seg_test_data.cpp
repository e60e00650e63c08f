#include "seg_test_data.h"

#include <cmath>
#include <opencv2/imgproc.hpp>
#include <random>

#include "clipes/io/files.h"
#include "clipes/io/png.h"

namespace clipes::seg::testing {

SyntheticImage make_synthetic_image(int height, int width, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
  };
  SyntheticImage out;
  out.bgr = cv::Mat(height, width, CV_8UC3);
  out.label = cv::Mat::zeros(height, width, CV_8UC1);
  // Background: diagonal grey stripes.
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double v = 110 + 35 * std::sin((x + y) * 0.7);
      out.bgr.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v + 10),
                    static_cast<std::uint8_t>(v - 5));
    }
  }
  const int shapes = 1 + static_cast<int>(rng() % 2);
  const int side = std::min(height, width);
  for (int s = 0; s < shapes; ++s) {
    const int cls = 1 + static_cast<int>(rng() % 3);
    const int r = static_cast<int>(uniform(0.18, 0.28) * side);
    const cv::Point c(static_cast<int>(uniform(r, width - r)),
                      static_cast<int>(uniform(r, height - r)));
    cv::Mat region = cv::Mat::zeros(height, width, CV_8UC1);
    if (cls == 1) {
      cv::circle(region, c, r, cv::Scalar(255), cv::FILLED);
    } else if (cls == 2) {
      cv::rectangle(region, cv::Point(c.x - r, c.y - r), cv::Point(c.x + r, c.y + r),
                    cv::Scalar(255), cv::FILLED);
    } else {
      std::vector<cv::Point> tri{{c.x, c.y - r}, {c.x - r, c.y + r}, {c.x + r, c.y + r}};
      cv::fillConvexPoly(region, tri, cv::Scalar(255));
    }
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        if (region.at<std::uint8_t>(y, x) == 0) continue;
        out.label.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(cls);
        const bool texture = cls == 1   ? ((x / 3 + y / 3) % 2 == 0)
                             : cls == 2 ? (y % 4 < 2)
                                        : (x % 3 == 0 && y % 3 == 0);
        const int t = texture ? 30 : 0;
        cv::Vec3b colour = cls == 1   ? cv::Vec3b(40 + t, 40, 200)
                           : cls == 2 ? cv::Vec3b(40, 190, 40 + t)
                                      : cv::Vec3b(200, 60 + t, 40);
        out.bgr.at<cv::Vec3b>(y, x) = colour;
      }
    }
  }
  return out;
}

std::vector<std::string> write_synthetic_dataset(const std::filesystem::path& dir, int count,
                                                 int height, int width, std::uint64_t seed,
                                                 bool confidence) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    const std::string id = "img" + std::to_string(i);
    const SyntheticImage s =
        make_synthetic_image(height, width, seed * 1000 + static_cast<std::uint64_t>(i));
    io::write_file_atomic(dir / "images" / (id + ".png"), io::encode_png_u8(s.bgr));
    io::write_png_indexed(dir / "masks" / (id + ".png"), s.label, io::voc_palette());
    if (confidence) {
      cv::Mat conf(height, width, CV_16UC1);
      for (int y = 0; y < height; ++y) {
        for (int x = 0; x < width; ++x) {
          conf.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(
              std::lround((0.9 + 0.1 * static_cast<double>(x) / std::max(1, width - 1)) * 65535.0));
        }
      }
      io::write_png_u16(dir / "confidence" / (id + ".png"), conf);
    }
    ids.push_back(id);
  }
  return ids;
}

TrainConfig tiny_train_config() {
  TrainConfig c;
  c.model.num_classes = 4;
  c.model.depth = 50;
  c.model.width = 4;
  c.model.msc = false;
  c.data.scales = {0.75, 1.0, 1.25};
  c.data.crop_size = 33;
  c.data.workers = 0;
  c.optim.lr = 1e-3;
  c.optim.batch_size = 2;
  c.optim.iter_size = 1;
  c.optim.iterations = 4;
  c.checkpoint_every = 2;
  c.log_every = 1;
  return c;
}

}  // namespace clipes::seg::testing
