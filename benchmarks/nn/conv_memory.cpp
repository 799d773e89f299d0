// SPDX-License-Identifier: MIT
// Peak resident memory of training steps: a C4 group CNN against a plain CNN with the same dense channel counts
// (64 channels = 16 regular C4 fields), 32x32 RGB-sized inputs, batch 32. Run one model per process:
//   build/release/benchmarks/conv_memory c4       build/release/benchmarks/conv_memory cnn
// prints the peak RSS (getrusage) after 5 steps (forward, cross-entropy, backward, Adam) and before any step.
#include <sys/resource.h>

#include <ace/ace.hpp>
#include <cstdio>
#include <string>

namespace {
using namespace ace;
using C4 = Cyclic<4>;
constexpr auto CL = Layout::channels_last;
constexpr ConvSpec k5 = same_padding(5);

template <class In, class Fiber>
using GBlock = GroupConv2d<float, In, Fiber, k5>;
using GIn = Image<Multiple<Trivial<C4>, 3>, 32, 32, CL>;
using GF = Multiple<Regular<C4>, 16>;
using G1 = GBlock<GIn, GF>;
using GH = G1::output;
using GroupNet = Sequential<G1, FieldBatchNorm<float, GH>, Pointwise<ReLUOp, float, GH>, GBlock<GH, GF>,
                            FieldBatchNorm<float, GH>, Pointwise<ReLUOp, float, GH>, GBlock<GH, GF>,
                            GroupMaxPool<float, GH>, GlobalAvgPool<float, Image<Multiple<Trivial<C4>, 16>, 32, 32, CL>>,
                            Linear<float, Multiple<Trivial<C4>, 16>, Features<10>>>;

using PIn = Image<Features<3>, 32, 32, CL>;
using P1 = Conv2d<float, PIn, Features<64>, k5>;
using PH = P1::output;
using P2 = Conv2d<float, PH, Features<64>, k5>;
using PlainNet = Sequential<P1, FieldBatchNorm<float, PH>, Pointwise<ReLUOp, float, PH>, P2, FieldBatchNorm<float, PH>,
                            Pointwise<ReLUOp, float, PH>, P2, GlobalAvgPool<float, PH>,
                            Linear<float, Features<64>, Features<10>>>;

double peak_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

template <class Net>
void train(const char* name) {
  Rng rng(1);
  SupervisedModel<Net, CrossEntropyLoss<float>, std::vector<std::size_t>> model{Net(rng)};
  Adam<float> adam({.lr = 1e-3});
  Tensor<float, 2> x({32, Net::input::dim});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  std::vector<std::size_t> y(32);
  for (std::size_t i = 0; i < 32; ++i) y[i] = i % 10;
  const double before = peak_mib();
  std::size_t params = 0;
  for (int step = 0; step < 5; ++step) {
    zero_grad(model);
    model.loss_and_gradients({x, y});
    params = 0;
    model.for_each_parameter([&](ParamView<float> p) { params += p.value.size(); });
    adam.step(model);
  }
  std::printf("%s: peak RSS %.1f MiB after 5 training steps (%.1f MiB before the first), %zu parameters\n", name,
              peak_mib(), before, params);
}
}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "";
  if (which == "c4") train<GroupNet>("C4 group CNN (16 regular fields = 64 channels)");
  else if (which == "cnn") train<PlainNet>("plain CNN (64 channels)");
  else {
    std::fprintf(stderr, "usage: conv_memory c4|cnn\n");
    return 2;
  }
  return 0;
}
