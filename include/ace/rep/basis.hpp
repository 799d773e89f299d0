// SPDX-License-Identifier: MIT
// Bases of Hom_G(In, Out), the space of equivariant linear maps W with ρ_out(g) W = W ρ_in(g).
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ace/error.hpp"
#include "ace/group/cayley.hpp"
#include "ace/random.hpp"
#include "ace/rep/character.hpp"
#include "ace/rep/composite.hpp"
#include "ace/rep/concepts.hpp"

namespace ace {

/// The basis of one block Hom_G(atom_in, atom_out) of a structured basis. Either exact — the orbit basis of a pair of
/// permutation representations: entry (i, j) of basis element labels[j*rows + i] is 1, all others 0 — or dense:
/// orthonormal columns (Frobenius) holding the column-major vec of each element.
struct BlockBasis {
  std::size_t rows = 0, cols = 0, size = 0;
  bool exact = true;
  std::vector<std::uint32_t> labels;       ///< exact: orbit of each entry (column-major)
  std::vector<std::uint32_t> orbit_sizes;  ///< exact: entries per orbit
  Eigen::MatrixXd dense;                   ///< dense: (rows*cols) x size, orthonormal columns
};

/// A basis of Hom_G(In, Out) for In, Out of dims cols() and rows(), built block by block: the representations are
/// split into their direct summands ("atoms": DirectSum and Multiple are unfolded), and the basis is the union of
/// the bases of Hom_G(atom_in, atom_out). Elements of different blocks have disjoint supports; within a block they
/// are exact 0/1 orbit matrices (permutation atoms) or orthonormal (others). Element k lives in the block whose
/// [first, first + size) contains k.
class EquivariantBasis {
 public:
  struct Block {
    std::size_t row_offset, col_offset, first;
    std::shared_ptr<const BlockBasis> basis;
  };

  EquivariantBasis(std::size_t rows, std::size_t cols, std::vector<Block> blocks)
      : rows_(rows), cols_(cols), blocks_(std::move(blocks)) {
    for (const auto& b : blocks_) size_ += b.basis->size;
  }

  std::size_t size() const { return size_; }
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  /// Whether every element is an exact 0/1 orbit matrix (no floating-point solve was involved).
  bool exact() const {
    for (const auto& b : blocks_)
      if (!b.basis->exact && b.basis->size > 0) return false;
    return true;
  }

  /// W = Σ_k c_k B_k, written into W (rows x cols, any scalar type and storage order; a Map or a block works too).
  template <class DerivedC, class DerivedW>
  void expand(const Eigen::MatrixBase<DerivedC>& c, const Eigen::MatrixBase<DerivedW>& w_out) const {
    auto& w = const_cast<Eigen::MatrixBase<DerivedW>&>(w_out);  // Eigen's idiom for writable expression arguments
    check_coefficients(static_cast<std::size_t>(c.size()), "expand");
    check_matrix(static_cast<std::size_t>(w.rows()), static_cast<std::size_t>(w.cols()), "expand");
    using Scalar = typename DerivedW::Scalar;
    w.setZero();
    for (const auto& b : blocks_) {
      const BlockBasis& bb = *b.basis;
      if (bb.size == 0) continue;
      if (bb.exact) {
        for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t e) {
          w(r, col) = static_cast<Scalar>(c(idx(b.first + bb.labels[e])));
        });
      } else {
        const Eigen::VectorXd v = bb.dense * c.segment(idx(b.first), idx(bb.size)).template cast<double>();
        for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t e) { w(r, col) = static_cast<Scalar>(v(idx(e))); });
      }
    }
  }
  Eigen::MatrixXd expand(const Eigen::VectorXd& c) const {
    Eigen::MatrixXd w(rows_, cols_);
    expand(c, w);
    return w;
  }

  /// The adjoint of expand: g_k = <B_k, G>_F (the gradient of a loss with respect to the coefficients, given its
  /// gradient G with respect to W).
  template <class DerivedG, class DerivedC>
  void adjoint(const Eigen::MatrixBase<DerivedG>& g, const Eigen::MatrixBase<DerivedC>& out_arg) const {
    auto& out = const_cast<Eigen::MatrixBase<DerivedC>&>(out_arg);
    check_matrix(static_cast<std::size_t>(g.rows()), static_cast<std::size_t>(g.cols()), "adjoint");
    check_coefficients(static_cast<std::size_t>(out.size()), "adjoint");
    using Scalar = typename DerivedC::Scalar;
    out.setZero();
    for (const auto& b : blocks_) {
      const BlockBasis& bb = *b.basis;
      if (bb.size == 0) continue;
      if (bb.exact) {
        for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t e) {
          out(idx(b.first + bb.labels[e])) += static_cast<Scalar>(g(r, col));
        });
      } else {
        Eigen::VectorXd v(idx(bb.rows * bb.cols));
        for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t e) { v(idx(e)) = static_cast<double>(g(r, col)); });
        out.segment(idx(b.first), idx(bb.size)) = (bb.dense.transpose() * v).template cast<Scalar>();
      }
    }
  }
  Eigen::VectorXd adjoint(const Eigen::MatrixXd& g) const {
    Eigen::VectorXd c(size_);
    adjoint(g, c);
    return c;
  }

  /// Coefficients of the orthogonal (Frobenius) projection of W onto the span: orbit means for exact blocks,
  /// inner products for orthonormal ones.
  Eigen::VectorXd coefficients(const Eigen::MatrixXd& w) const {
    Eigen::VectorXd c = adjoint(w);
    for (const auto& b : blocks_)
      if (b.basis->exact)
        for (std::size_t k = 0; k < b.basis->size; ++k) c(idx(b.first + k)) /= static_cast<double>(b.basis->orbit_sizes[k]);
    return c;
  }
  /// The orthogonal projection of W onto Hom_G(In, Out). For orthogonal representations this is the Reynolds
  /// operator (1/|G|) Σ_g ρ_out(g) W ρ_in(g)^T.
  Eigen::MatrixXd project(const Eigen::MatrixXd& w) const { return expand(coefficients(w)); }

  /// E(i, j) = Σ_k B_k(i, j)^2: how much of the basis reaches each entry (1 on every entry of an exact block,
  /// 0 where no equivariant map can be non-zero). Layers use it for variance-preserving initialisation.
  Eigen::MatrixXd entry_energy() const {
    Eigen::MatrixXd e = Eigen::MatrixXd::Zero(idx(rows_), idx(cols_));
    for (const auto& b : blocks_) {
      const BlockBasis& bb = *b.basis;
      if (bb.size == 0) continue;
      for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t k) {
        e(r, col) = bb.exact ? 1.0 : bb.dense.row(idx(k)).squaredNorm();
      });
    }
    return e;
  }

  /// W = Σ_k c_k B_k as a sparse linear map of the coefficients, for backends to run (sparse_map): entry j of W in
  /// row-major order (row * cols() + col) is Σ_{e in [first[j], first[j+1])} weight[e] c[index[e]]. Exact blocks
  /// give one entry of weight 1 per matrix entry; orthonormal blocks give every non-zero of their dense columns.
  struct SparseMap {
    std::vector<std::uint32_t> first, index;
    std::vector<double> weight;
  };
  SparseMap sparse_map() const {
    std::vector<std::vector<std::pair<std::uint32_t, double>>> entries(rows_ * cols_);
    for (const auto& b : blocks_) {
      const BlockBasis& bb = *b.basis;
      if (bb.size == 0) continue;
      for_each_entry(b, [&](Eigen::Index r, Eigen::Index col, std::size_t e) {
        auto& list = entries[static_cast<std::size_t>(r) * cols_ + static_cast<std::size_t>(col)];
        if (bb.exact) {
          list.emplace_back(static_cast<std::uint32_t>(b.first + bb.labels[e]), 1.0);
          return;
        }
        for (std::size_t k = 0; k < bb.size; ++k)
          if (const double w = bb.dense(idx(e), idx(k)); w != 0.0)
            list.emplace_back(static_cast<std::uint32_t>(b.first + k), w);
      });
    }
    SparseMap m;
    m.first.push_back(0);
    for (const auto& list : entries) {
      for (const auto& [k, w] : list) {
        m.index.push_back(k);
        m.weight.push_back(w);
      }
      m.first.push_back(static_cast<std::uint32_t>(m.index.size()));
    }
    return m;
  }

  /// Basis element k as a dense matrix.
  Eigen::MatrixXd element(std::size_t k) const {
    ACE_THROW_IF(k >= size_, invalid_argument, "EquivariantBasis::element: index ", k, " out of range for a basis of ",
                 size_, " elements");
    Eigen::VectorXd c = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(size_));
    c(idx(k)) = 1.0;
    return expand(c);
  }

 private:
  static Eigen::Index idx(std::size_t i) { return static_cast<Eigen::Index>(i); }
  /// f(row, col, e) for every entry of a block: (row, col) in the full matrix, e = j*rows + i within the block
  /// (the column-major position that orbit labels and dense columns use).
  template <class F>
  static void for_each_entry(const Block& b, F&& f) {
    const BlockBasis& bb = *b.basis;
    for (std::size_t j = 0; j < bb.cols; ++j)
      for (std::size_t i = 0; i < bb.rows; ++i) f(idx(b.row_offset + i), idx(b.col_offset + j), j * bb.rows + i);
  }
  void check_matrix(std::size_t r, std::size_t c, const char* what) const {
    ACE_THROW_IF(r != rows_ || c != cols_, shape_error, "EquivariantBasis::", what, ": expected a ", rows_, " x ",
                 cols_, " matrix, got ", r, " x ", c);
  }
  void check_coefficients(std::size_t n, const char* what) const {
    ACE_THROW_IF(n != size_, shape_error, "EquivariantBasis::", what, ": expected ", size_, " coefficients, got ", n);
  }

  std::size_t rows_, cols_, size_ = 0;
  std::vector<Block> blocks_;
};

namespace detail {

/// What the solver needs to know of one atom (a summand that is not a DirectSum or Multiple), type-erased so the
/// solver itself is compiled once. One instance per representation type; its address identifies the type.
struct AtomData {
  std::size_t dim = 0;
  std::string name;
  bool permutation = false;
  std::vector<std::vector<std::uint32_t>> generator_permutations;
  std::vector<Eigen::MatrixXd> generator_matrices;
  std::vector<double> class_characters;
  std::vector<double> class_weights;
  /// x -> ρ(element(i)) x, for groups that can be enumerated (null otherwise). Permutation atoms move rows and
  /// never form their matrix.
  Eigen::MatrixXd (*act_left)(std::size_t element_index, const Eigen::MatrixXd& x) = nullptr;
  /// ρ(element(i)) as a dense matrix, for enumerable groups (null otherwise).
  Eigen::MatrixXd (*matrix_of)(std::size_t element_index) = nullptr;
};

template <Representation R>
const AtomData& atom_data() {
  static const AtomData data = [] {
    using Grp = typename R::group;
    AtomData a;
    a.dim = R::dim;
    a.name = std::string(rep_name<R>());
    a.permutation = PermutationRepresentation<R>;
    for (const auto& s : Grp::generators()) {
      a.generator_matrices.push_back(rep_matrix_dynamic<R>(s));
      if constexpr (PermutationRepresentation<R>) {
        const auto p = R::permutation(s);
        a.generator_permutations.emplace_back(p.begin(), p.end());
      }
    }
    a.class_characters = class_characters<R>();
    a.class_weights = class_weights<Grp>();
    if constexpr (enumerable_v<Grp>) {
      a.matrix_of = [](std::size_t i) { return rep_matrix_dynamic<R>(Grp::element(i)); };
      a.act_left = [](std::size_t i, const Eigen::MatrixXd& x) -> Eigen::MatrixXd {
        if constexpr (PermutationRepresentation<R>) {
          const auto p = R::permutation(Grp::element(i));
          Eigen::MatrixXd y(x.rows(), x.cols());
          for (std::size_t r = 0; r < R::dim; ++r) y.row(static_cast<Eigen::Index>(p[r])) = x.row(static_cast<Eigen::Index>(r));
          return y;
        } else {
          return rep_matrix<R>(Grp::element(i)) * x;
        }
      };
    }
    return a;
  }();
  return data;
}

struct Atom {
  std::size_t offset;
  const AtomData* data;
};

template <class R> struct is_direct_sum : std::false_type {};
template <class... Rs> struct is_direct_sum<DirectSum<Rs...>> : std::true_type {};
template <class R> struct is_multiple : std::false_type {};
template <class R, std::size_t K> struct is_multiple<Multiple<R, K>> : std::true_type {};

template <class R>
void collect_atoms(std::vector<Atom>& out, std::size_t& offset) {
  if constexpr (is_direct_sum<R>::value) {
    [&]<class... Rs>(DirectSum<Rs...>*) { (collect_atoms<Rs>(out, offset), ...); }(static_cast<R*>(nullptr));
  } else if constexpr (is_multiple<R>::value) {
    for (std::size_t c = 0; c < R::copies; ++c) collect_atoms<typename R::base>(out, offset);
  } else {
    out.push_back({offset, &atom_data<R>()});
    offset += R::dim;
  }
}

/// Exact orbit basis of Hom_G(in, out) for permutation atoms: the orbits of G on index pairs (i, j), found by
/// union-find over the generators only (never enumerating G). #orbits = <χ_in, χ_out> by Burnside's lemma.
inline BlockBasis orbit_basis(const AtomData& out, const AtomData& in) {
  BlockBasis b;
  b.rows = out.dim;
  b.cols = in.dim;
  DisjointSets sets(b.rows * b.cols);
  for (std::size_t s = 0; s < out.generator_permutations.size(); ++s) {
    const auto& po = out.generator_permutations[s];
    const auto& pi = in.generator_permutations[s];
    for (std::size_t j = 0; j < b.cols; ++j)
      for (std::size_t i = 0; i < b.rows; ++i) sets.unite(j * b.rows + i, pi[j] * b.rows + po[i]);
  }
  b.size = sets.labels(b.labels);
  b.orbit_sizes.assign(b.size, 0);
  for (std::uint32_t l : b.labels) ++b.orbit_sizes[l];
  return b;
}

/// Hom dimension of a pair of atoms from their class characters.
inline std::size_t atom_hom_dim(const AtomData& out, const AtomData& in) {
  double s = 0.0;
  for (std::size_t c = 0; c < in.class_weights.size(); ++c)
    s += in.class_weights[c] * in.class_characters[c] * out.class_characters[c];
  return integer_inner_product(s, "equivariant_basis(" + in.name + " -> " + out.name + ")");
}

/// Unknowns up to which the generator-constraint nullspace is solved with a dense eigensolver.
inline constexpr std::size_t max_nullspace_unknowns = 1024;
/// Tolerance of the nullspace solve, relative to the largest eigenvalue of the constraint Gram matrix.
inline constexpr double nullspace_tolerance = 1e-9;

/// Dense orthonormal basis of Hom_G(in, out), k = hom_dim elements. Small problems (rows*cols <= 1024 unknowns):
/// the nullspace of the stacked generator constraints C_s vec(W) = 0, C_s = I ⊗ ρ_out(s) - ρ_in(s)^T ⊗ I, from the
/// eigenvectors of Σ_s C_s^T C_s; eigenvalues below 1e-9 * max(1, λ_max) count as zero, and their number must equal
/// k with a clear gap, otherwise numerical_error is thrown. Larger problems on enumerable groups: the Reynolds
/// average of k + 4 seeded random matrices, whose numerical rank must be k, orthonormalised through the eigenvectors
/// of their Gram matrix and one Gram–Schmidt pass. A template on the solver only so that translation units that
/// never need a dense basis (all-permutation representations) do not pay for compiling Eigen's eigensolver.
template <class Solver = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>>
BlockBasis dense_basis(const AtomData& out, const AtomData& in) {
  BlockBasis b;
  b.rows = out.dim;
  b.cols = in.dim;
  b.exact = false;
  const std::size_t k = atom_hom_dim(out, in);
  const auto n = static_cast<Eigen::Index>(b.rows * b.cols);
  const auto r = static_cast<Eigen::Index>(b.rows), c = static_cast<Eigen::Index>(b.cols);
  b.size = k;
  if (k == 0) {
    b.dense.resize(n, 0);
    return b;
  }
  const std::string what = "equivariant_basis(" + in.name + " -> " + out.name + ")";
  ACE_THROW_IF(k > b.rows * b.cols, numerical_error, what, ": the characters give ", k, " equivariant maps, more than the ",
               b.rows * b.cols, " entries of a map; the representation matrices are not a homomorphism");
  if (static_cast<std::size_t>(n) <= max_nullspace_unknowns || in.act_left == nullptr) {
    ACE_THROW_IF(static_cast<std::size_t>(n) > 4 * max_nullspace_unknowns, unsupported, what, ": ", n,
                 " unknowns is too many for a dense nullspace solve and the group is too large to average over; "
                 "split the representations into smaller summands");
    Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(n, n);
    Eigen::MatrixXd cs(n, n);
    for (std::size_t s = 0; s < in.generator_matrices.size(); ++s) {
      const Eigen::MatrixXd& ro = out.generator_matrices[s];
      const Eigen::MatrixXd& ri = in.generator_matrices[s];
      cs.setZero();
      // column-major vec: vec(ρ_out W) = (I ⊗ ρ_out) vec W, vec(W ρ_in) = (ρ_in^T ⊗ I) vec W
      for (Eigen::Index j = 0; j < c; ++j) cs.block(j * r, j * r, r, r) += ro;
      for (Eigen::Index j = 0; j < c; ++j)
        for (Eigen::Index l = 0; l < c; ++l) cs.block(j * r, l * r, r, r).diagonal().array() -= ri(l, j);
      gram.noalias() += cs.transpose() * cs;
    }
    Solver eig(gram);
    const Eigen::VectorXd& lambda = eig.eigenvalues();
    const double tol = nullspace_tolerance * std::max(1.0, lambda(n - 1));
    const auto kk = static_cast<Eigen::Index>(k);
    ACE_THROW_IF(lambda(kk - 1) > tol || (kk < n && lambda(kk) <= tol), numerical_error, what,
                 ": the constraint nullspace does not have the dimension ", k, " given by the characters (eigenvalue ",
                 k, " = ", lambda(kk - 1), ", next = ", (kk < n ? lambda(kk) : 0.0), ", tolerance ", tol, ")");
    b.dense = eig.eigenvectors().leftCols(kk);
    return b;
  }
  const std::size_t order = static_cast<std::size_t>(std::llround(1.0 / in.class_weights.front()));  // identity class
  Rng rng(0x5eed0fba515ULL);
  const Eigen::Index samples = static_cast<Eigen::Index>(k) + 4;
  Eigen::MatrixXd spans(n, samples);
  Eigen::MatrixXd avg(r, c);
  for (Eigen::Index t = 0; t < samples; ++t) {
    const Eigen::MatrixXd w = normal_matrix(r, c, rng);
    avg.setZero();
    for (std::size_t g = 0; g < order; ++g)  // ρ_out(g) W ρ_in(g)^T = ρ_out(g) (ρ_in(g) W^T)^T
      avg += out.act_left(g, in.act_left(g, w.transpose()).transpose());
    spans.col(t) = Eigen::Map<const Eigen::VectorXd>(avg.data(), n) / static_cast<double>(order);
  }
  // Thin SVD through the small Gram matrix: spans = U S V^T, spans^T spans = V S^2 V^T.
  Solver eig(spans.transpose() * spans);
  const Eigen::VectorXd& s2 = eig.eigenvalues();  // ascending
  const double tol = 1e-12 * s2(samples - 1);
  const auto kk = static_cast<Eigen::Index>(k);
  ACE_THROW_IF(s2(samples - kk) <= tol || (kk < samples && s2(samples - kk - 1) > tol), numerical_error, what,
               ": the averaged samples do not span a space of the dimension ", k, " given by the characters");
  b.dense = spans * eig.eigenvectors().rightCols(kk);
  for (Eigen::Index a = 0; a < kk; ++a) {  // Gram–Schmidt clean-up of the (already nearly orthogonal) columns
    for (Eigen::Index p = 0; p < a; ++p) b.dense.col(a) -= b.dense.col(p).dot(b.dense.col(a)) * b.dense.col(p);
    b.dense.col(a).normalize();
  }
  return b;
}

template <Representation R>
std::vector<Atom> atoms_of() {
  std::vector<Atom> atoms;
  std::size_t offset = 0;
  collect_atoms<R>(atoms, offset);
  return atoms;
}

template <Representation In, Representation Out>
EquivariantBasis build_equivariant_basis() {
  static_assert(check_representation<In>() && check_representation<Out>());
  static_assert(same_group_v<In, Out>, "ace: equivariant maps In -> Out need In and Out to represent the same group.");
  const std::vector<Atom> ins = atoms_of<In>(), outs = atoms_of<Out>();
  std::map<std::pair<const AtomData*, const AtomData*>, std::shared_ptr<const BlockBasis>> cache;
  std::vector<EquivariantBasis::Block> blocks;
  blocks.reserve(ins.size() * outs.size());
  std::size_t first = 0;
  for (const Atom& o : outs)
    for (const Atom& i : ins) {
      auto& slot = cache[{o.data, i.data}];
      if (!slot) {
        if constexpr (PermutationRepresentation<In> && PermutationRepresentation<Out>) {
          slot = std::make_shared<const BlockBasis>(orbit_basis(*o.data, *i.data));
        } else {
          slot = std::make_shared<const BlockBasis>(o.data->permutation && i.data->permutation
                                                        ? orbit_basis(*o.data, *i.data)
                                                        : dense_basis(*o.data, *i.data));
        }
      }
      blocks.push_back({o.offset, i.offset, first, slot});
      first += slot->size;
    }
  return EquivariantBasis(Out::dim, In::dim, std::move(blocks));
}

}  // namespace detail

/// A basis of Hom_G(In, Out), computed on first use and cached for the program's lifetime (thread-safe). Its size
/// equals hom_dim<In, Out>(). Exact 0/1 orbit matrices for permutation representations (no SVD), an orthonormal
/// nullspace basis otherwise (see detail::dense_basis for the tolerance).
template <Representation In, Representation Out>
const EquivariantBasis& equivariant_basis() {
  static const EquivariantBasis basis = detail::build_equivariant_basis<In, Out>();
  return basis;
}

/// The same basis, computed afresh (no cache): for benchmarks and for callers that manage their own storage.
template <Representation In, Representation Out>
EquivariantBasis make_equivariant_basis() {
  return detail::build_equivariant_basis<In, Out>();
}

}  // namespace ace
