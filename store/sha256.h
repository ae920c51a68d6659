// SHA-256 of a byte string, as lowercase hex. Pure function: thread-safe.
// Used for idempotency keys, artifact checksums and API-key hashes.
#pragma once

#include <string>
#include <string_view>

namespace kennel {

std::string sha256_hex(std::string_view bytes);

}  // namespace kennel
