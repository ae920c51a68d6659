// SHA-256 of a byte string, as lowercase hex. Pure function: thread-safe.
// Used for idempotency keys, artifact checksums and API-key hashes.
#pragma once

#include <string>
#include <cstddef>
#include <string_view>

namespace kennel {

std::string sha256_hex(std::string_view bytes);
// The 32 raw digest bytes.
std::string sha256_raw(std::string_view bytes);
std::string hmac_sha256_raw(std::string_view key, std::string_view message);
// PBKDF2-HMAC-SHA256 (RFC 8018) with a 32-byte output, as hex.
std::string pbkdf2_sha256_hex(std::string_view password, std::string_view salt, int iterations);
std::string to_hex(std::string_view bytes);
// Bytes from the kernel's CSPRNG (getrandom), as hex.
std::string random_hex(std::size_t bytes);

}  // namespace kennel
