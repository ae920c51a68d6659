// Files compiled into the binary by scripts/embed.cmake (migrations, web
// assets). The tables are immutable static data: safe from any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace kennel {

struct embedded_file {
    const char* path;  // path relative to the source tree, e.g. "migrations/0001_facts.sql"
    const unsigned char* bytes;
    std::size_t size;
    const char* content_type;
    const char* etag;  // quoted, ready for an ETag header

    std::string_view text() const {
        return {reinterpret_cast<const char*>(bytes), size};
    }
};

std::span<const embedded_file> embedded_migrations();
std::span<const embedded_file> embedded_web();

}  // namespace kennel
