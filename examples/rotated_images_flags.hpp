// SPDX-License-Identifier: MIT
// rotated_images' command line (examples/rotated_images.cpp): its settings, usage text and parser.
#pragma once

#include <ace/data/images.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flags.hpp"

namespace experiment {

/// What rotated_images runs.
struct ImagesConfig {
  std::filesystem::path data = ace::fashion_mnist_default_dir;
  std::vector<std::string> tasks{"rotated", "upright"}, models{"p4", "p4m", "cnn"},
      methods{"strict", "equality", "resilient"};
  std::vector<std::uint64_t> seeds{1};
  std::size_t epochs = 3, train = 5000, valid = 1000, test = 2000, batch = 32;
  std::size_t checkpoint_steps = 0;  // also checkpoint every N steps (0: after each epoch only)
  double lr = 2e-3, dual_lr = 2e-2, augmented = 1.0, rho = 1.0;
  std::string gamma_opt = "auto";  // the primal steps on the gammas and slacks: auto, adam (as theta) or sgd
  double gamma_lr = 0.05;          // their rate with --gamma-opt sgd
  ace::Rotation rotation = ace::Rotation::continuous;
  std::string device = "cpu";
  std::string out = "rotated_images_out";
  bool resume = false;
};

inline const char* rotated_images_usage =
    "rotated_images: P4/P4M group CNNs (strict, ACE equality, ACE resilient) and a plain CNN on Fashion-MNIST\n"
    "  --data DIR       Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist, Debian's\n"
    "                   dataset-fashion-mnist)\n"
    "  --tasks LIST     rotated (train and test rotated), upright\n"
    "  --models LIST    p4, p4m, cnn (the CNN trains once per seed: it has no relaxation)\n"
    "  --methods LIST   strict, equality, resilient (the group CNNs)\n"
    "  --seeds LIST     each model and method of a seed starts from the same network and sees the same batches\n"
    "  --epochs N, --batch N, --lr X (Adam)\n"
    "  --train N, --valid N, --test N   images used: the first train + valid of the training file (valid for model\n"
    "                   selection), the first N of the test file\n"
    "  --dual-lr X, --augmented C, --rho X   the ACE methods' dual step, augmented coefficient, slack cost\n"
    "  --gamma-opt O    the primal steps on the gammas and slacks: auto (default: plain steps for ACE equality, Adam\n"
    "                   for resilient, as measured in docs/ace.md), adam (with the weights' rate) or sgd (plain\n"
    "                   gradient steps, the paper's Algorithm 1 and 2, at --gamma-lr, default 0.05, for both)\n"
    "  --rotation continuous|quarter   the rotated task's angles: uniform (bilinear) or multiples of 90 degrees\n"
    "  --device D       cpu (default) or cuda (the CUDA backend; needs a build with ACE_WITH_CUDA and a GPU)\n"
    "  --out DIR        logs, plots, checkpoints (each run's state/, after every epoch) and results.csv\n"
    "  --checkpoint-steps N   checkpoint also every N training steps, in the middle of epochs (default: off)\n"
    "  --resume         continue the runs in --out from their last checkpoints (the same results and logs as an\n"
    "                   uninterrupted run, timings aside); without it, an --out holding a run's state is an error\n";

/// Parses rotated_images' command line (without the program name).
inline ImagesConfig parse_rotated_images(const std::vector<std::string>& args) {
  ImagesConfig s;
  for_each_flag(args, rotated_images_usage, s.resume, [&](const std::string& flag, const std::string& v) {
    if (flag == "--data") s.data = v;
    else if (flag == "--tasks") s.tasks = split_list<std::string>(flag, v);
    else if (flag == "--models") s.models = split_list<std::string>(flag, v);
    else if (flag == "--methods") s.methods = split_list<std::string>(flag, v);
    else if (flag == "--seeds") s.seeds = split_list<std::uint64_t>(flag, v);
    else if (flag == "--epochs") s.epochs = parse_count(flag, v);
    else if (flag == "--train") s.train = parse_count(flag, v);
    else if (flag == "--valid") s.valid = parse_count(flag, v);
    else if (flag == "--test") s.test = parse_count(flag, v);
    else if (flag == "--batch") s.batch = parse_count(flag, v);
    else if (flag == "--checkpoint-steps") s.checkpoint_steps = parse_count(flag, v);
    else if (flag == "--lr") s.lr = parse_number<double>(flag, v);
    else if (flag == "--dual-lr") s.dual_lr = parse_number<double>(flag, v);
    else if (flag == "--augmented") s.augmented = parse_number<double>(flag, v);
    else if (flag == "--rho") s.rho = parse_number<double>(flag, v);
    else if (flag == "--gamma-opt") s.gamma_opt = v;
    else if (flag == "--gamma-lr") s.gamma_lr = parse_number<double>(flag, v);
    else if (flag == "--out") s.out = v;
    else if (flag == "--device") s.device = v;
    else if (flag == "--rotation") {
      ACE_THROW_IF(v != "continuous" && v != "quarter", ace::invalid_argument,
                   "--rotation: expected continuous or quarter, got '", v, "'");
      s.rotation = v == "quarter" ? ace::Rotation::quarter_turns : ace::Rotation::continuous;
    } else {
      return false;
    }
    return true;
  });
  check_device_name(s.device);
  check_gamma_opt(s.gamma_opt);
  for (const auto& t : s.tasks)
    ACE_THROW_IF(t != "rotated" && t != "upright", ace::invalid_argument, "--tasks: unknown task '", t, "'");
  for (const auto& m : s.models)
    ACE_THROW_IF(m != "p4" && m != "p4m" && m != "cnn", ace::invalid_argument, "--models: unknown model '", m, "'");
  for (const auto& m : s.methods)
    ACE_THROW_IF(m != "strict" && m != "equality" && m != "resilient", ace::invalid_argument,
                 "--methods: unknown method '", m, "'");
  return s;
}

}  // namespace experiment
