// The strict JSON reader every edge uses (store/json_input.h): what it takes
// is UTF-8 and reads back the same after writing; what it refuses can be
// located without a crash; and the text checks never fail on any bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "store/json_input.h"
#include "tests/fuzz/fuzz_common.h"

using namespace kennel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_json_input(text);
    if (parsed) {
        fuzz::require(is_utf8(text), "a text that is not UTF-8 was taken as JSON");
        auto again = parse_json_input(parsed->dump());
        fuzz::require(again.is_ok(), "a document's own text is refused");
        fuzz::require(*again == *parsed, "a document reads back as another");
        fuzz::require(json_error_path(text).empty(), "a text that parses has an error path");
    } else {
        (void)json_error_path(text);
        (void)json_error_instance(text);
    }
    (void)check_text(text, true);
    (void)check_text(text, false);
    return 0;
}
