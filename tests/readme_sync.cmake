# SPDX-License-Identifier: MIT
# Fails when the C++ block of README.md differs from examples/readme_example.cpp without its two comment lines.
file(READ "${ACE_ROOT}/README.md" readme)
string(FIND "${readme}" "```cpp\n" start)
if(start EQUAL -1)
  message(FATAL_ERROR "README.md has no ```cpp block")
endif()
math(EXPR start "${start} + 7")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "```" stop)
string(SUBSTRING "${rest}" 0 ${stop} block)

file(READ "${ACE_ROOT}/examples/readme_example.cpp" body)
foreach(line 1 2)  # drop the SPDX line and the comment line
  string(FIND "${body}" "\n" eol)
  math(EXPR eol "${eol} + 1")
  string(SUBSTRING "${body}" ${eol} -1 body)
endforeach()
string(STRIP "${body}" body)
string(STRIP "${block}" block)
if(NOT body STREQUAL block)
  message(FATAL_ERROR "README.md's usage block differs from examples/readme_example.cpp; copy the file into it")
endif()
message(STATUS "README usage block matches examples/readme_example.cpp")
