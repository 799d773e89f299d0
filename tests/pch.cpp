// SPDX-License-Identifier: MIT
// The translation unit that owns the tests' precompiled header (Catch2 and backend_support.hpp).
