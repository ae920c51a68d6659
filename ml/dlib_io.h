// Fixed-width integers in Dlib's serialization format, the one artifacts use.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>

#include <dlib/serialize.h>

namespace kennel::ml {

inline void write_u64(std::uint64_t v, std::ostream& out) {
    dlib::serialize(v, out);
}

inline std::uint64_t read_u64(std::istream& in) {
    std::uint64_t v = 0;
    dlib::deserialize(v, in);
    return v;
}

}  // namespace kennel::ml
