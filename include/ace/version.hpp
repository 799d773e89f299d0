// SPDX-License-Identifier: MIT
#pragma once

#define ACE_VERSION_MAJOR 0
#define ACE_VERSION_MINOR 1
#define ACE_VERSION_PATCH 0

namespace ace {
inline constexpr const char* version = "0.1.0";
}  // namespace ace
