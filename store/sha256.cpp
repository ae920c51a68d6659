// SHA-256 as specified in FIPS 180-4.
#include "store/sha256.h"

#include <array>
#include <cstdint>
#include <sys/random.h>

namespace kennel {
namespace {

constexpr std::array<std::uint32_t, 64> k_round = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

using state = std::array<std::uint32_t, 8>;
constexpr state initial_state = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

void compress(state& h, const unsigned char* block) {
    std::array<std::uint32_t, 64> w{};
    for (int i = 0; i < 16; ++i) {
        w[i] = (std::uint32_t(block[4 * i]) << 24) | (std::uint32_t(block[4 * i + 1]) << 16) |
               (std::uint32_t(block[4 * i + 2]) << 8) | std::uint32_t(block[4 * i + 3]);
    }
    for (int i = 16; i < 64; ++i) {
        std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
        std::uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        std::uint32_t ch = (e & f) ^ (~e & g);
        std::uint32_t t1 = hh + s1 + ch + k_round[i] + w[i];
        std::uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        std::uint32_t t2 = s0 + maj;
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

void digest_bytes(const state& h, unsigned char* out) {
    for (std::size_t i = 0; i < 8; ++i) {
        for (int b = 0; b < 4; ++b)
            out[4 * i + b] = static_cast<unsigned char>(h[i] >> (24 - 8 * b));
    }
}

// Hashes `n` bytes on from `h`, the state after `before` bytes (whole
// blocks) already hashed, and writes the 32-byte digest to `out`.
void hash_on(state h, std::uint64_t before, const unsigned char* p, std::size_t n,
             unsigned char* out) {
    const std::size_t full = n / 64;
    for (std::size_t i = 0; i < full; ++i) compress(h, p + 64 * i);
    // Final block(s): the remainder, a 1 bit, zero padding, the bit length.
    unsigned char tail[128] = {};
    const std::size_t rem = n - full * 64;
    for (std::size_t i = 0; i < rem; ++i) tail[i] = p[full * 64 + i];
    tail[rem] = 0x80;
    const std::size_t tail_len = rem < 56 ? 64 : 128;
    const std::uint64_t bits = (before + n) * 8;
    for (int i = 0; i < 8; ++i)
        tail[tail_len - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
    compress(h, tail);
    if (tail_len == 128) compress(h, tail + 64);
    digest_bytes(h, out);
}

const unsigned char* bytes_of(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

// HMAC-SHA256's two key blocks, hashed: the states its inner and outer
// hashes go on from (PBKDF2 reuses them for every iteration).
struct hmac_key {
    state inner = initial_state;
    state outer = initial_state;

    explicit hmac_key(std::string_view key) {
        unsigned char k[64] = {};
        if (key.size() > 64) {
            hash_on(initial_state, 0, bytes_of(key), key.size(), k);
        } else {
            for (std::size_t i = 0; i < key.size(); ++i) k[i] = static_cast<unsigned char>(key[i]);
        }
        unsigned char pad[64];
        for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x36;
        compress(inner, pad);
        for (int i = 0; i < 64; ++i) pad[i] = k[i] ^ 0x5c;
        compress(outer, pad);
    }

    void mac(const unsigned char* message, std::size_t n, unsigned char* out) const {
        unsigned char inner_digest[32];
        hash_on(inner, 64, message, n, inner_digest);
        hash_on(outer, 64, inner_digest, sizeof inner_digest, out);
    }
};

}  // namespace

std::string sha256_hex(std::string_view bytes) { return to_hex(sha256_raw(bytes)); }

std::string to_hex(std::string_view bytes) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xf]);
    }
    return out;
}

std::string hmac_sha256_raw(std::string_view key, std::string_view message) {
    unsigned char out[32];
    hmac_key(key).mac(bytes_of(message), message.size(), out);
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string pbkdf2_sha256_hex(std::string_view password, std::string_view salt, int iterations) {
    // One 32-byte block: T1 = U1 ^ U2 ^ ... ^ Uc, U1 = PRF(P, S || INT(1)),
    // Ui = PRF(P, Ui-1). The key's blocks are hashed once for every
    // iteration: each costs two compressions, not four, and no allocation.
    const hmac_key key(password);
    std::string s(salt);
    s.append("\0\0\0\1", 4);
    unsigned char u[32], t[32];
    key.mac(bytes_of(s), s.size(), u);
    for (int j = 0; j < 32; ++j) t[j] = u[j];
    for (int i = 1; i < iterations; ++i) {
        key.mac(u, sizeof u, u);
        for (int j = 0; j < 32; ++j) t[j] ^= u[j];
    }
    return to_hex(std::string_view(reinterpret_cast<const char*>(t), sizeof t));
}

std::string random_hex(std::size_t n) {
    std::string bytes(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::getrandom(bytes.data() + got, n - got, 0);
        if (r > 0) got += static_cast<std::size_t>(r);
    }
    return to_hex(bytes);
}

std::string sha256_raw(std::string_view bytes) {
    unsigned char out[32];
    hash_on(initial_state, 0, bytes_of(bytes), bytes.size(), out);
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

}  // namespace kennel
