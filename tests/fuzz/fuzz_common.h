// Shared by the fuzz targets (tests/fuzz, built with -DKENNEL_FUZZ=ON and
// clang): a failed property is reported as a crash, which libFuzzer keeps
// as a reproducer.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace kennel::fuzz {

// Like assert, but on in every build type and with the input's own words.
[[noreturn]] inline void fail(std::string_view what) {
    std::fprintf(stderr, "fuzz property failed: %.*s\n", static_cast<int>(what.size()),
                 what.data());
    std::abort();
}

inline void require(bool ok, std::string_view what) {
    if (!ok) fail(what);
}

}  // namespace kennel::fuzz
