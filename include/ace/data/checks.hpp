// SPDX-License-Identifier: MIT
// Checks the data loaders run before anything trains: a value that is not a number is an io_error that names the
// file and the index, not a NaN loss many steps later.
#pragma once

#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "ace/error.hpp"

namespace ace::data {

/// Throws io_error naming `file` and the index of the first entry of `values` (row-major with `shape`, one name per
/// axis in `axes`) that is NaN or infinite: "trial_03.npy: frame 17, joint 4, axis 2 is nan".
inline void require_finite(std::span<const double> values, std::span<const std::size_t> shape,
                           std::initializer_list<std::string_view> axes, const std::string& file) {
  ACE_THROW_IF(axes.size() != shape.size(), invalid_argument, "require_finite: ", axes.size(), " axis names for ",
               shape.size(), " axes");
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isfinite(values[i])) continue;
    std::string where;
    std::size_t rest = i, stride = values.size();
    auto name = axes.begin();
    for (std::size_t a = 0; a < shape.size(); ++a, ++name) {
      stride /= shape[a] == 0 ? 1 : shape[a];
      where += ::ace::detail::concat(a == 0 ? "" : ", ", *name, " ", rest / stride);
      rest %= stride;
    }
    throw io_error(::ace::detail::concat(file, ": ", where, " is ", values[i],
                                         " (the data must be finite: repair or regenerate the file)"));
  }
}

}  // namespace ace::data
