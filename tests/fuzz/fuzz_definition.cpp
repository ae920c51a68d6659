// Model definitions (ml/definition_json.h): any text parses or is refused
// by field, and a definition that is taken writes a canonical form that
// parses back to the same canonical form (equal definitions must be equal
// strings: a change makes a new revision).
#include <cstddef>
#include <cstdint>
#include <string>

#include "ml/definition_json.h"
#include "tests/fuzz/fuzz_common.h"

using namespace kennel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    parsed_definition p = parse_definition(text);
    if (!p.errors.empty()) {
        (void)field_errors_json(p.errors);
        return 0;
    }
    std::vector<field_error> errors;
    check_new_definition(p.definition, errors);
    if (!errors.empty()) return 0;
    const std::string canonical = canonical_definition_json(p.definition);
    parsed_definition again = parse_definition(canonical);
    fuzz::require(again.errors.empty(), "a canonical definition is refused");
    fuzz::require(canonical_definition_json(again.definition) == canonical,
                  "a canonical definition reads back as another");
    return 0;
}
