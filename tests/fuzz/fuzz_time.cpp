// RFC 3339 times (store/time_util.h): an instant that parses is within the
// documented range and writes back as text that parses to the same instant.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "store/time_util.h"
#include "tests/fuzz/fuzz_common.h"

using namespace kennel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto t = parse_rfc3339(text);
    if (!t) return 0;
    fuzz::require(*t >= min_rfc3339_time && *t <= max_rfc3339_time, "an instant out of range");
    auto back = parse_rfc3339(format_rfc3339(*t));
    fuzz::require(back && *back == *t, "a written time reads back as another");
    return 0;
}
