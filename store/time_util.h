// Timestamps: Kennel stores times as microseconds since the Unix epoch (UTC)
// and speaks RFC 3339 at the edges. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kennel {

using micros = std::int64_t;

micros now_micros();

// Parses "2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123+02:00",
// "2026-11-20 10:00:00Z" and a plain date "2026-11-20" (midnight UTC).
// Rejects anything else, including out-of-range fields and an instant whose
// UTC date is outside years 0000-9999 ("0000-01-01T00:00:00+00:01"), which
// format_rfc3339 could not write back as four digits.
std::optional<micros> parse_rfc3339(std::string_view text);

// The instants parse_rfc3339 accepts: 0000-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999Z.
constexpr micros min_rfc3339_time = -62167219200LL * 1000000;
constexpr micros max_rfc3339_time = 253402300800LL * 1000000 - 1;

// Always UTC with a "Z"; fractional seconds only when non-zero (milliseconds
// or microseconds as needed).
std::string format_rfc3339(micros t);

}  // namespace kennel
