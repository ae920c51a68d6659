// Fact bodies (server/fact_json.h): a JSON or NDJSON body is read, item by
// item, without a crash; an NDJSON body read a slice at a time (as the
// server writes large ones) gives the same items as read whole.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/fact_json.h"
#include "tests/fuzz/fuzz_common.h"

using namespace kennel;

namespace {

bool same_item(const parsed_item& a, const parsed_item& b) {
    return a.index == b.index && a.line == b.line && a.error.is_ok() == b.error.is_ok() &&
           a.error.to_string() == b.error.to_string() && a.fact.stream == b.fact.stream &&
           a.fact.entity == b.fact.entity && a.fact.data_json == b.fact.data_json &&
           a.fact.event_time == b.fact.event_time &&
           a.fact.idempotency_key == b.fact.idempotency_key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string body(reinterpret_cast<const char*>(data), size);
    const micros now = 1'790'000'000'000'000;
    const fact_limits limits;
    (void)parse_fact_body(body, body_format::json, limits, now);
    auto whole = parse_fact_body(body, body_format::ndjson, limits, now);
    ndjson_reader reader(body, now);
    const status checked = reader.check(limits);
    fuzz::require(checked.is_ok() == whole.is_ok(), "the slice reader and the whole body disagree");
    if (!whole) return 0;
    std::vector<parsed_item> sliced;
    while (reader.read(3, sliced)) {
    }
    fuzz::require(sliced.size() == whole->items.size(), "the slices hold another count of facts");
    for (std::size_t i = 0; i < sliced.size(); ++i)
        fuzz::require(same_item(sliced[i], whole->items[i]), "a slice reads a fact differently");
    return 0;
}
