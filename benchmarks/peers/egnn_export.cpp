// SPDX-License-Identifier: MIT
// Writes what egnn_torch.py --check needs to compare ace's EGNN with the PyTorch formulation of the reference code:
// the parameters of a seeded N-body EGNN (double), a batch of 10 simulated systems, ace's predicted positions, loss
// and parameter gradients, all as .npy files in DIR. Usage: egnn_export DIR
#include <ace/ace.hpp>
#include <cstdio>
#include <numeric>

using namespace ace;

namespace {
void save(const std::filesystem::path& file, const Tensor<double, 2>& t) {
  io::write_npy<double>(file, std::span<const double>(t.data(), t.size()), std::vector<std::size_t>(t.shape().begin(), t.shape().end()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: egnn_export DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  Rng rng(1);
  EGNNRegression<double> model(
      EGNN<double>(Graph::complete(5), {.node_features = 1, .edge_features = 2, .raw_features = 1, .hidden = 64, .layers = 4}, rng));
  const data::NBodySamples s = data::make_nbody_samples({}, data::NBodySplit::train, 10, 3);
  std::vector<std::size_t> idx(10);
  std::iota(idx.begin(), idx.end(), 0);
  const GraphBatch<double> b = data::nbody_batch<double>(s, idx);
  zero_grad(model);
  const double loss = model.loss_and_gradients(b);
  save(dir / "h.npy", b.h);
  save(dir / "x.npy", b.x);
  save(dir / "v.npy", b.v);
  save(dir / "edge_attr.npy", b.edge_attr);
  save(dir / "target.npy", b.target);
  save(dir / "prediction.npy", model.predict(b));
  io::write_npy<double>(dir / "loss.npy", std::vector<double>{loss}, std::vector<std::size_t>{1});
  model.for_each_parameter([&](ParamView<double> p) {
    const std::vector<std::size_t> shape(p.shape.begin(), p.shape.end());
    io::write_npy<double>(dir / ("param." + p.name + ".npy"), to_host_vector<Cpu>(p.value), shape);
    io::write_npy<double>(dir / ("grad." + p.name + ".npy"), to_host_vector<Cpu>(p.grad), shape);
  });
  std::printf("wrote %s (loss %.17g)\n", dir.c_str(), loss);
}
