// SPDX-License-Identifier: MIT
// The irreducible representations of O(3) for l <= 3: real spherical harmonics, real Wigner D matrices with parity,
// real Clebsch-Gordan coefficients, and multisets of irreps as compile-time types ("28x0e + 28x1o"), the toolbox of
// steerable E(3) networks (docs/representations.md, "O(3) irreps").
//
// Conventions (one basis throughout):
//  * Y^l(x) is the real spherical harmonic of degree l as a homogeneous polynomial of x (|x|^l Y^l(x/|x|)), in
//    "component" normalisation: every component has mean square 1 over the unit sphere, so Σ_m Y^l_m(u)² = 2l + 1
//    for a unit u. The components run m = -l ... l in the usual real order, except l = 1, which is ordered
//    (x, y, z): Y^1(x) = √3 x, so that D^1(R) = R.
//  * D^l(R) is the real matrix with Y^l(R x) = D^l(R) Y^l(x) (orthogonal, a homomorphism). An irrep l with parity p
//    (even "e": +1, odd "o": -1) maps an improper R (det -1) to p D^l(-R); the spherical harmonics carry parity
//    (-1)^l ("0e", "1o", "2e", "3o").
//  * C(l1, l2 -> l3)[m1][m2][m3] is the real coupling with Σ D1 D2 C D3^T = C (the equivariant bilinear map
//    l1 x l2 -> l3), normalised so that Σ_{m1 m2} C[m1][m2][m3] C[m1][m2][m3'] = δ(m3, m3') and signed so that its
//    first non-zero entry (in index order) is positive. In this basis C(1, 1 -> 0) = δ_ij / √3 and
//    C(1, 1 -> 1) = ε_ijk / √2.
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <map>
#include <mutex>
#include <numbers>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ace/backend/o3_ops.hpp"
#include "ace/error.hpp"

namespace ace {

// "Lazy": the functions below that run Eigen's dynamic-size products and eigensolver are function templates with an
// unused, defaulted parameter (called as plain functions: wigner_d(l, r)). An inline non-template function would make
// every translation unit that includes this header instantiate those Eigen templates (~8 s of g++ per unit, used or
// not); a template instantiates them only where it is called.

/// The largest degree the spherical harmonics, Wigner D matrices and Clebsch-Gordan coefficients are implemented for.
inline constexpr int o3_max_l = 3;

namespace detail {
inline void check_degree(int l, const char* who) {
  ACE_THROW_IF(l < 0 || l > o3_max_l, invalid_argument, who, ": degree l = ", l, " outside 0 ... ", o3_max_l);
}
}  // namespace detail

/// Y^l(x) for l = 0 ... 3 (homogeneous of degree l; component normalisation; see the conventions above).
inline Eigen::VectorXd spherical_harmonics(int l, const Eigen::Vector3d& p) {
  detail::check_degree(l, "spherical_harmonics");
  const double x = p.x(), y = p.y(), z = p.z(), r2 = p.squaredNorm();
  Eigen::VectorXd out(2 * l + 1);
  spherical_harmonic_polynomials(l, x, y, z, r2, out.data());
  return out;
}

/// Throws invalid_argument, with the deviation max |R^T R - I|, unless R is orthogonal to `tolerance`.
inline void check_orthogonal(const Eigen::Matrix3d& r, double tolerance = 1e-8) {
  const double deviation = (r.transpose() * r - Eigen::Matrix3d::Identity()).cwiseAbs().maxCoeff();
  ACE_THROW_IF(!(deviation <= tolerance), invalid_argument, "O(3): the matrix is not orthogonal: max |R^T R - I| = ",
               deviation, " (tolerance ", tolerance, ")");
}

namespace detail {
// Y^l at fixed points spread over the sphere, and the left inverse that recovers D from Y at the rotated points:
// D = Y(R P) pinv(Y(P)), exact (up to rounding) because Y^l(R x) = D^l(R) Y^l(x) for every x.
struct WignerSamples {
  Eigen::MatrixXd points;  // 3 x n
  Eigen::MatrixXd pinv;    // n x (2l + 1)
};
template <class Lazy = void>  // see "Lazy" above
const WignerSamples& wigner_samples(int l) {
  static const std::array<WignerSamples, o3_max_l + 1> samples = [] {
    std::array<WignerSamples, o3_max_l + 1> all;
    for (int d = 0; d <= o3_max_l; ++d) {
      const int n = 4 * d + 5;  // more points than components: a well-conditioned least-squares fit
      WignerSamples& s = all[static_cast<std::size_t>(d)];
      s.points.resize(3, n);
      Eigen::MatrixXd y(2 * d + 1, n);
      for (int k = 0; k < n; ++k) {  // a Fibonacci sphere
        const double h = 1.0 - 2.0 * (k + 0.5) / n, rho = std::sqrt(1.0 - h * h);
        const double phi = 2.0 * std::numbers::pi * k / std::numbers::phi;
        s.points.col(k) = Eigen::Vector3d(rho * std::cos(phi), rho * std::sin(phi), h);
        y.col(k) = spherical_harmonics(d, s.points.col(k));
      }
      s.pinv = y.transpose() * (y * y.transpose()).inverse();
    }
    return all;
  }();
  return samples[static_cast<std::size_t>(l)];
}
}  // namespace detail

/// D^l(R) for a rotation R (det +1), l = 0 ... 3: Y^l(R x) = D^l(R) Y^l(x).
template <class Lazy = void>  // see "Lazy" above
Eigen::MatrixXd wigner_d(int l, const Eigen::Matrix3d& r) {
  detail::check_degree(l, "wigner_d");
  check_orthogonal(r);
  ACE_THROW_IF(r.determinant() < 0.0, invalid_argument, "wigner_d: R is improper (det -1); use O3Irrep::matrix, "
               "which applies the parity");
  const detail::WignerSamples& s = detail::wigner_samples(l);
  const Eigen::MatrixXd moved = r * s.points;
  Eigen::MatrixXd y(2 * l + 1, moved.cols());
  for (Eigen::Index k = 0; k < moved.cols(); ++k) y.col(k) = spherical_harmonics(l, moved.col(k));
  return y * s.pinv;
}

enum class Parity : int { even = 1, odd = -1 };

/// The matrix of the O(3) irrep (l, p) at an orthogonal R: D^l(R) for a rotation, p D^l(-R) for an improper R.
template <class Lazy = void>  // see "Lazy" above
Eigen::MatrixXd o3_irrep_matrix(int l, Parity p, const Eigen::Matrix3d& r) {
  check_orthogonal(r);
  if (r.determinant() > 0.0) return wigner_d(l, r);
  Eigen::MatrixXd d = wigner_d(l, Eigen::Matrix3d(-r));
  if (p == Parity::odd) d = -d;
  return d;
}

/// The real Clebsch-Gordan coefficients C(l1, l2 -> l3) (conventions above), as [m1][m2][m3] in a flat row-major
/// vector of (2 l1 + 1)(2 l2 + 1)(2 l3 + 1) entries; computed once per triple (the invariant of D1 x D2 x D3 over
/// sampled rotations) and cached. A triple outside |l1 - l2| <= l3 <= l1 + l2 throws.
template <class Lazy = void>  // see "Lazy" above
const std::vector<double>& clebsch_gordan(int l1, int l2, int l3) {
  for (int l : {l1, l2, l3}) detail::check_degree(l, "clebsch_gordan");
  ACE_THROW_IF(l3 < std::abs(l1 - l2) || l3 > l1 + l2, invalid_argument, "clebsch_gordan: l3 = ", l3,
               " is outside |l1 - l2| ... l1 + l2 for l1 = ", l1, ", l2 = ", l2);
  static std::mutex mutex;
  static std::map<std::tuple<int, int, int>, std::vector<double>> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::tuple{l1, l2, l3};
  if (const auto it = cache.find(key); it != cache.end()) return it->second;
  const Eigen::Index d1 = 2 * l1 + 1, d2 = 2 * l2 + 1, d3 = 2 * l3 + 1, n = d1 * d2 * d3;
  // G = Σ_R (K_R - I)^T (K_R - I), K_R = D1(R) ⊗ D2(R) ⊗ D3(R): its null space is the invariant space, of dimension
  // one for an allowed triple. Three fixed generic rotations generate a dense subgroup of SO(3).
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(n, n);
  const std::array<Eigen::Vector4d, 3> quaternions{Eigen::Vector4d(0.81, 0.23, -0.47, 0.27),
                                                   Eigen::Vector4d(-0.35, 0.61, 0.52, -0.48),
                                                   Eigen::Vector4d(0.12, -0.74, 0.33, 0.57)};
  for (const Eigen::Vector4d& q : quaternions) {
    const Eigen::Vector4d u = q.normalized();
    const double w = u[0], x = u[1], y = u[2], z = u[3];
    Eigen::Matrix3d r;
    r << 1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), 2 * (x * y + z * w),
        1 - 2 * (x * x + z * z), 2 * (y * z - x * w), 2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y);
    const Eigen::MatrixXd a = wigner_d(l1, r), b = wigner_d(l2, r), c = wigner_d(l3, r);
    Eigen::MatrixXd k(n, n);
    for (Eigen::Index i1 = 0; i1 < d1; ++i1)
      for (Eigen::Index i2 = 0; i2 < d2; ++i2)
        for (Eigen::Index i3 = 0; i3 < d3; ++i3)
          for (Eigen::Index j1 = 0; j1 < d1; ++j1)
            for (Eigen::Index j2 = 0; j2 < d2; ++j2)
              for (Eigen::Index j3 = 0; j3 < d3; ++j3)
                k((i1 * d2 + i2) * d3 + i3, (j1 * d2 + j2) * d3 + j3) = a(i1, j1) * b(i2, j2) * c(i3, j3);
    k -= Eigen::MatrixXd::Identity(n, n);
    g += k.transpose() * k;
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eigen(g);
  ACE_THROW_IF(!(eigen.eigenvalues()[0] < 1e-9) || (n > 1 && !(eigen.eigenvalues()[1] > 1e-4)), numerical_error,
               "clebsch_gordan(", l1, ", ", l2, ", ", l3, "): expected a one-dimensional invariant space, the smallest "
               "eigenvalues are ", eigen.eigenvalues()[0], " and ", n > 1 ? eigen.eigenvalues()[1] : 0.0);
  Eigen::VectorXd c = eigen.eigenvectors().col(0);
  c *= std::sqrt(static_cast<double>(d3)) / c.norm();  // Σ_{m1 m2} C[.][.][m3]² = 1 for every m3 (Schur)
  for (Eigen::Index i = 0; i < n; ++i) {
    if (std::abs(c[i]) > 1e-9) {
      if (c[i] < 0.0) c = -c;
      break;
    }
  }
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::abs(c[i]) < 1e-14) c[i] = 0.0;  // exact zeros where the coupling vanishes
  return cache.emplace(key, std::vector<double>(c.data(), c.data() + n)).first->second;
}

// ---- compile-time irreps ----------------------------------------------------------------------------------------

/// The O(3) irrep of degree L and parity P ("1o" = O3Irrep<1, Parity::odd>), dimension 2L + 1.
template <int L, Parity P>
struct O3Irrep {
  static_assert(L >= 0 && L <= o3_max_l, "ace: O3Irrep<L, P> supports degrees L = 0 ... 3 (those of the "
                "implemented spherical harmonics and Wigner D matrices).");
  static constexpr int l = L;
  static constexpr Parity parity = P;
  static constexpr std::size_t dim = static_cast<std::size_t>(2 * L + 1);
  static Eigen::MatrixXd matrix(const Eigen::Matrix3d& r) { return o3_irrep_matrix(L, P, r); }
  static std::string name() { return std::to_string(L) + (P == Parity::even ? "e" : "o"); }
};
using Scalar0e = O3Irrep<0, Parity::even>;
using Vector1o = O3Irrep<1, Parity::odd>;

/// N copies of an O(3) irrep.
template <std::size_t N, class Irrep>
struct Mul {
  static_assert(N >= 1, "ace: Mul<N, Irrep> needs N >= 1 copies.");
  static constexpr std::size_t count = N;
  using irrep = Irrep;
  static constexpr std::size_t dim = N * Irrep::dim;
};

/// One term "count x l p" of an irreps sum as data.
struct O3Term {
  std::size_t count = 0;
  int l = 0;
  Parity parity = Parity::even;
  constexpr std::size_t dim() const { return count * static_cast<std::size_t>(2 * l + 1); }
  constexpr bool same_irrep(const O3Term& o) const { return l == o.l && parity == o.parity; }
};

/// Whether the tensor product of irreps a and b has a c component: the triangle rule |l_a - l_b| <= l_c <= l_a + l_b
/// and the parity rule p_a p_b = p_c (copies do not matter).
constexpr bool o3_couples(const O3Term& a, const O3Term& b, const O3Term& c) {
  const int low = a.l > b.l ? a.l - b.l : b.l - a.l;
  return c.l >= low && c.l <= a.l + b.l &&
         static_cast<int>(a.parity) * static_cast<int>(b.parity) == static_cast<int>(c.parity);
}

/// A direct sum of irreps as a type, e.g. O3Irreps<Mul<28, Scalar0e>, Mul<28, Vector1o>> ("28x0e + 28x1o"): its
/// dimension is a compile-time constant, so layer shapes built from it are checked at compile time.
template <class... Muls>
struct O3Irreps {
  static_assert(sizeof...(Muls) >= 1, "ace: O3Irreps needs at least one Mul<N, O3Irrep<L, P>>.");
  static constexpr std::size_t dim = (Muls::dim + ...);
  static constexpr std::size_t terms = sizeof...(Muls);
  /// "28x0e + 28x1o".
  static std::string name() {
    std::string s;
    ((s += (s.empty() ? "" : " + ") + std::to_string(Muls::count) + "x" + Muls::irrep::name()), ...);
    return s;
  }
  /// The matrix of the sum at an orthogonal R in the layout of ace's steerable features (backend/o3_ops.hpp): the
  /// terms' blocks in order, each component-major, so term "m x l" contributes D^l(R) ⊗ I_m.
  static Eigen::MatrixXd matrix(const Eigen::Matrix3d& r) {
    Eigen::MatrixXd out = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(dim), static_cast<Eigen::Index>(dim));
    Eigen::Index at = 0;
    const auto place = [&]<class M>(std::type_identity<M>) {
      const Eigen::MatrixXd d = M::irrep::matrix(r);
      const auto m = static_cast<Eigen::Index>(M::count);
      for (Eigen::Index k = 0; k < d.rows(); ++k)
        for (Eigen::Index k2 = 0; k2 < d.cols(); ++k2)
          for (Eigen::Index w = 0; w < m; ++w) out(at + k * m + w, at + k2 * m + w) = d(k, k2);
      at += d.rows() * m;
    };
    (place(std::type_identity<Muls>{}), ...);
    return out;
  }
  /// The terms as data (copies, degree, parity), in order.
  static constexpr std::array<O3Term, terms> term_list{O3Term{Muls::count, Muls::irrep::l, Muls::irrep::parity}...};
};

/// Whether the tensor product of irreps A and B has a C component (o3_couples for irrep types).
template <class A, class B, class C>
inline constexpr bool o3_path_allowed =
    o3_couples(O3Term{1, A::l, A::parity}, O3Term{1, B::l, B::parity}, O3Term{1, C::l, C::parity});

/// C(A, B -> C) for irreps known at compile time; a forbidden path does not compile.
template <class A, class B, class C>
const std::vector<double>& clebsch_gordan() {
  static_assert(C::l >= (A::l > B::l ? A::l - B::l : B::l - A::l) && C::l <= A::l + B::l,
                "ace: this tensor product path breaks the triangle rule |l1 - l2| <= l3 <= l1 + l2.");
  static_assert(static_cast<int>(A::parity) * static_cast<int>(B::parity) == static_cast<int>(C::parity),
                "ace: this tensor product path breaks the parity rule p1 p2 = p3.");
  return clebsch_gordan(A::l, B::l, C::l);
}

// ---- irreps arithmetic at compile time -------------------------------------------------------------------------

/// The parity of the spherical harmonics of degree l: (-1)^l.
constexpr Parity spherical_harmonics_parity(int l) { return l % 2 == 0 ? Parity::even : Parity::odd; }

namespace detail {
template <class... S>
struct o3_concat;
template <class... X>
struct o3_concat<O3Irreps<X...>> {
  using type = O3Irreps<X...>;
};
template <class... X, class... Y, class... Rest>
struct o3_concat<O3Irreps<X...>, O3Irreps<Y...>, Rest...> : o3_concat<O3Irreps<X..., Y...>, Rest...> {};

template <std::size_t N, class Seq>
struct uniform_sh;
template <std::size_t N, int... L>
struct uniform_sh<N, std::integer_sequence<int, L...>> {
  using type = O3Irreps<Mul<N, O3Irrep<L, spherical_harmonics_parity(L)>>...>;
};

template <class Out>
struct o3_gate_input {
  static_assert(sizeof(Out) == 0, "ace: a gate's output must be an O3Irreps whose first term holds the scalars "
                "(Mul<m, Scalar0e>), followed by the gated terms.");
};
template <std::size_t S>
struct o3_gate_input<O3Irreps<Mul<S, Scalar0e>>> {
  using type = O3Irreps<Mul<S, Scalar0e>>;
};
template <std::size_t S, class First, class... Gated>
struct o3_gate_input<O3Irreps<Mul<S, Scalar0e>, First, Gated...>> {
  static_assert(First::irrep::l > 0 && ((Gated::irrep::l > 0) && ...),
                "ace: a gate's output must be its scalars (the first term, m x 0e) followed by the gated terms of "
                "degree l >= 1; merge the 0e terms into the first.");
  using type = O3Irreps<Mul<S, Scalar0e>, Mul<First::count + (Gated::count + ... + 0), Scalar0e>, First, Gated...>;
};
}  // namespace detail

/// The irreps sums A, B, ... one after the other (terms kept apart: "m x l" blocks of equal irreps are not merged,
/// as the features' memory holds them apart).
template <class... S>
using o3_concat_t = typename detail::o3_concat<S...>::type;

/// N copies of each spherical-harmonics irrep 0e, 1o, 2e, ... up to degree L.
template <std::size_t N, int L>
using o3_spherical_harmonics_t = typename detail::uniform_sh<N, std::make_integer_sequence<int, L + 1>>::type;

/// The number of weights of the fully connected tensor product In1 x In2 -> Out: one per allowed path (a term of In1,
/// a term of In2 and a term of Out obeying the triangle and parity rules) and per copy triple.
template <class In1, class In2, class Out>
inline constexpr std::size_t o3_tensor_product_weights = [] {
  std::size_t n = 0;
  for (const O3Term& a : In1::term_list)
    for (const O3Term& b : In2::term_list)
      for (const O3Term& c : Out::term_list)
        if (o3_couples(a, b, c)) n += a.count * b.count * c.count;
  return n;
}();

namespace detail {
template <std::size_t Width, int L, class Attr>
constexpr std::size_t weight_balanced_copies() {
  // with n copies of each irrep, hidden x Attr -> hidden has n² P weights, P the weights at n = 1
  constexpr std::size_t paths =
      o3_tensor_product_weights<typename uniform_sh<1, std::make_integer_sequence<int, L + 1>>::type, Attr,
                                typename uniform_sh<1, std::make_integer_sequence<int, L + 1>>::type>;
  static_assert(paths > 0, "ace: o3_weight_balanced_t: the attributes reach no hidden irrep.");
  std::size_t n = 1;
  while (n * n * paths < Width * Width) ++n;
  return n;
}
}  // namespace detail

/// SEGNN's "weight-balanced" hidden irreps for a width and degree L with attributes Attr: n copies of each of 0e, 1o,
/// ... up to L, n the smallest whose tensor product hidden x Attr -> hidden has at least as many weights as a dense
/// layer Width -> Width (Width x 0e times 1 x 0e). Width 64, L = 1, Attr = Y^{<=1}: 32x0e + 32x1o.
template <std::size_t Width, int L, class Attr>
using o3_weight_balanced_t = o3_spherical_harmonics_t<detail::weight_balanced_copies<Width, L, Attr>(), L>;

/// The input irreps of the gate whose output is Out = "S x 0e + gated terms": S scalars, then one 0e gate per gated
/// copy, then the gated terms (Out itself when it holds only scalars).
template <class Out>
using o3_gate_input_t = typename detail::o3_gate_input<Out>::type;


}  // namespace ace
