// FNV-1a 64-bit: the one string hash of the learning core. Text features hash
// tokens into buckets with it and the holdout split hashes entities with it, so
// both stay stable across platforms, compilers and releases (std::hash does
// not). Pure function: safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace kennel::ml {

inline constexpr std::uint64_t fnv1a64_offset = 14695981039346656037ULL;
inline constexpr std::uint64_t fnv1a64_prime = 1099511628211ULL;

// Continues a hash over more bytes; start from fnv1a64_offset.
constexpr std::uint64_t fnv1a64_update(std::uint64_t h, std::string_view bytes) {
    for (char c : bytes) {
        h ^= static_cast<unsigned char>(c);
        h *= fnv1a64_prime;
    }
    return h;
}

constexpr std::uint64_t fnv1a64(std::string_view bytes) {
    return fnv1a64_update(fnv1a64_offset, bytes);
}

}  // namespace kennel::ml
