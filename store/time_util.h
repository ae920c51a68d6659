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
// Rejects anything else, including out-of-range fields.
std::optional<micros> parse_rfc3339(std::string_view text);

// Always UTC with a "Z"; fractional seconds only when non-zero (milliseconds
// or microseconds as needed).
std::string format_rfc3339(micros t);

}  // namespace kennel
