// FNV-1a 64-bit: the one string hash of the learning core. Text features hash
// tokens into buckets with it and the holdout split hashes entities with it
// (then mixed by fmix64), so both stay stable across platforms, compilers and
// releases (std::hash does not). Pure functions: safe from any thread.
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

// MurmurHash3's 64-bit finalizer (fmix64). FNV-1a's high bits barely depend on
// the last bytes, so ids that differ only at the end ("entity-1",
// "entity-2", ...) bunch together when the hash is read as a fraction of 2^64
// (29% instead of 20% below 0.2 for 10,000 sequential ids); this bijective
// mix spreads them evenly. Use it wherever a hash is compared to a share.
constexpr std::uint64_t fmix64(std::uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

}  // namespace kennel::ml
