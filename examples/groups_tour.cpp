// SPDX-License-Identifier: MIT
// A tour of ace's groups and representations: orders, a Cayley table, conjugacy classes, irreps and their
// characters, dimensions of equivariant maps, and an equivariant map obtained by projection, checked.
#include <ace/group.hpp>
#include <ace/rep.hpp>
#include <ace/version.hpp>
#include <cstdio>
#include <iostream>
#include <string>

namespace {

template <class G>
void order_line() {
  std::printf("  %-6s order %4zu, %zu generators, %zu conjugacy classes\n", std::string(G::name()).c_str(), G::order,
              std::size(G::generators()), ace::conjugacy_classes<G>().size());
}

template <class G>
void print_cayley_table() {
  const auto& t = ace::cayley_table<G>;  // built and checked against the group axioms at compile time
  std::printf("Cayley table of %s (entry = index of row * column):\n     ", std::string(G::name()).c_str());
  for (std::size_t j = 0; j < G::order; ++j) std::printf("%3zu", j);
  std::printf("\n");
  for (std::size_t i = 0; i < G::order; ++i) {
    std::printf("  %2zu ", i);
    for (std::size_t j = 0; j < G::order; ++j) std::printf("%3zu", t(i, j));
    std::printf("\n");
  }
}

template <class G, std::size_t... I>
void print_irreps(std::index_sequence<I...>) {
  const auto classes = ace::conjugacy_classes<G>();
  std::printf("Real irreps of %s and their characters on the %zu classes (sizes:", std::string(G::name()).c_str(),
              classes.size());
  for (const auto& c : classes) std::printf(" %zu", c.size);
  std::printf("):\n");
  auto row = [&]<class R>(std::type_identity<R>) {
    std::printf("  %-22s dim %zu  chi =", std::string(ace::rep_name<R>()).c_str(), R::dim);
    for (double x : ace::class_characters<R>()) std::printf(" %6.3f", x);
    std::printf("   <chi, chi> = %.0f\n", ace::character_inner_product<R, R>());
  };
  (row(std::type_identity<ace::Irrep<G, I>>{}), ...);
}

template <class In, class Out>
void hom_line() {
  const auto& b = ace::equivariant_basis<In, Out>();
  std::printf("  %-44s -> %-28s dim %5zu  (%s)\n", std::string(ace::rep_name<In>()).c_str(),
              std::string(ace::rep_name<Out>()).c_str(), b.size(), b.exact() ? "exact 0/1 orbits" : "numerical blocks");
}

}  // namespace

int main() {
  using namespace ace;
  std::printf("ace %s: a tour of compile-time groups and representations\n\nGroups:\n", version);
  order_line<Cyclic<8>>();
  order_line<Dihedral<4>>();
  order_line<Symmetric<5>>();
  order_line<Symmetric<10>>();
  order_line<Tetrahedral>();
  order_line<Octahedral>();
  order_line<Icosahedral>();
  order_line<DirectProduct<Dihedral<4>, Symmetric<3>>>();
  std::printf("\n");

  print_cayley_table<Dihedral<4>>();
  std::printf("  (index = flip * 4 + k for r^k s^flip; the group axioms were proven at compile time)\n\n");

  print_irreps<Dihedral<6>>(std::make_index_sequence<irrep_count_v<Dihedral<6>>>{});
  std::printf("\n");
  print_irreps<Cyclic<6>>(std::make_index_sequence<irrep_count_v<Cyclic<6>>>{});
  std::printf("  (the 2-D irreps of C_N are of complex type: <chi, chi> = 2)\n\n");

  std::printf("Equivariant linear maps (dimension of Hom_G, equal to the character inner product):\n");
  hom_line<Regular<Icosahedral>, Regular<Icosahedral>>();
  hom_line<Multiple<Regular<Cyclic<8>>, 16>, Multiple<Regular<Cyclic<8>>, 16>>();
  hom_line<Natural<Symmetric<10>>, Natural<Symmetric<10>>>();
  using NN = TensorProduct<Natural<Symmetric<10>>, Natural<Symmetric<10>>>;
  hom_line<NN, NN>();
  hom_line<Standard<Octahedral>, TensorProduct<Standard<Octahedral>, Standard<Octahedral>>>();
  hom_line<Regular<Dihedral<4>>, DirectSum<Trivial<Dihedral<4>>, Sign<Dihedral<4>>, Standard<Dihedral<4>>>>();
  std::printf("\n");

  // Project a seeded random map onto the equivariant ones and check it on every generator.
  using In = Multiple<Regular<Dihedral<4>>, 2>;
  using Out = DirectSum<Trivial<Dihedral<4>>, Standard<Dihedral<4>>, Quotient<Dihedral<4>, Cyclic<4>>>;
  Rng rng(42);
  const Eigen::MatrixXd w = normal_matrix(Out::dim, In::dim, rng);
  const Eigen::MatrixXd p = reynolds<In, Out>(w);
  std::printf("A random map %s -> %s (seed 42):\n", std::string(rep_name<In>()).c_str(),
              std::string(rep_name<Out>()).c_str());
  std::printf("  equivariance error before projection: %.3e\n", equivariance_error<In, Out>(w));
  std::printf("  after the Reynolds projection:        %.3e\n", equivariance_error<In, Out>(p));
  std::printf("  projecting again changes it by:       %.3e\n", (reynolds<In, Out>(p) - p).norm());
  const Eigen::VectorXd c = equivariant_basis<In, Out>().coefficients(p);
  std::printf("  its %zu coefficients in the equivariant basis reproduce it to %.3e\n", static_cast<std::size_t>(c.size()),
              (equivariant_basis<In, Out>().expand(c) - p).norm());
  const bool ok = equivariance_error<In, Out>(p) < 1e-12;
  std::printf("\n%s\n", ok ? "groups_tour: all checks passed" : "groups_tour: CHECK FAILED");
  return ok ? 0 : 1;
}
