// SPDX-License-Identifier: MIT
// Construction of equivariant bases from scratch (no cache), one benchmark per representation pair.
// Counter "elements": the number of basis elements built per second.
#include <benchmark/benchmark.h>

#include <ace/ace.hpp>

namespace {
using namespace ace;

template <class In, class Out>
void BM_basis(benchmark::State& state) {
  std::size_t size = 0;
  for (auto _ : state) {
    const EquivariantBasis b = make_equivariant_basis<In, Out>();
    size = b.size();
    benchmark::DoNotOptimize(size);
  }
  state.counters["basis_size"] = static_cast<double>(size);
  state.counters["elements"] =
      benchmark::Counter(static_cast<double>(size) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

using C8x16 = Multiple<Regular<Cyclic<8>>, 16>;
using D8x16 = Multiple<Regular<Dihedral<8>>, 16>;
using RegI = Regular<Icosahedral>;
using NN10 = TensorProduct<Natural<Symmetric<10>>, Natural<Symmetric<10>>>;
using IrrepsD8 = Multiple<DirectSum<Irrep<Dihedral<8>, 0>, Irrep<Dihedral<8>, 4>, Irrep<Dihedral<8>, 5>>, 8>;
using StdStdO = TensorProduct<Standard<Octahedral>, Standard<Octahedral>>;
using StdRegI = TensorProduct<Standard<Icosahedral>, Regular<Icosahedral>>;
using StdStdI = TensorProduct<Standard<Icosahedral>, Standard<Icosahedral>>;

// Exact orbit bases (permutation representations): union-find over index pairs and generators.
BENCHMARK(BM_basis<C8x16, C8x16>)->Name("basis/exact/16xRegular(C8)->16xRegular(C8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_basis<D8x16, D8x16>)->Name("basis/exact/16xRegular(D8)->16xRegular(D8)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_basis<RegI, RegI>)->Name("basis/exact/Regular(I)->Regular(I)")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_basis<NN10, NN10>)->Name("basis/exact/Natural(x)Natural(S10)->same")->Unit(benchmark::kMicrosecond);
// Numerical bases: generator-constraint nullspace (small blocks) and Reynolds sampling (large blocks).
BENCHMARK(BM_basis<IrrepsD8, IrrepsD8>)->Name("basis/nullspace/8x(3 irreps of D8)->same")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_basis<StdStdO, StdStdO>)->Name("basis/nullspace/Std(x)Std(O)->same")->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_basis<StdRegI, StdStdI>)->Name("basis/sampling/Std(x)Regular(I)->Std(x)Std(I)")->Unit(benchmark::kMillisecond);
}  // namespace
