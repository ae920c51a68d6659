// The schema: numbered, forward-only SQL migrations compiled into the binary
// (migrations/NNNN_name.sql), applied in one transaction when a database is
// opened for writing.
//
// The file is marked with Kennel's application_id; PRAGMA user_version holds
// the highest applied migration. A database from a newer Kennel (a
// user_version above what this binary knows) or from another program is
// refused. Call from one thread, on the writer's connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/status.h"

namespace kennel {

class connection;

constexpr std::int32_t kennel_application_id = 0x4B4E4E4C;  // "KNNL"

struct migration {
    int number;
    std::string name;  // "0001_facts"
    std::string sql;
};

struct migration_state {
    int number;
    std::string name;
    std::optional<std::string> applied_at;  // RFC 3339, or empty when pending
};

// The migrations compiled into this binary, in order.
const std::vector<migration>& known_migrations();

// Switches the file to WAL mode and applies every pending migration in one
// transaction. Refuses a foreign or newer database without touching it (open
// its connection with open_options::wal false, so that opening does not).
status migrate(connection& conn);

// How many migrations this binary would apply (0: the schema is current).
// Refuses a foreign or newer database, as migrate does; writes nothing.
result<int> pending_migrations(connection& conn);

// What is applied and what is pending, for `kennel migrate --status`.
result<std::vector<migration_state>> migration_status(connection& conn);

}  // namespace kennel
