// `kennel import`, `kennel export` and `kennel backup`: moving facts in and
// out of a database file from the command line. Single-threaded helpers for
// the CLI; they take the same database lock as the server where they write.
#pragma once

#include <cstddef>
#include <fstream>
#include <iosfwd>
#include <memory>
#include <string>

#include "store/db.h"

namespace kennel {

struct import_options {
    std::string db;
    std::string file;
    std::string format = "auto";  // auto | ndjson | csv
    std::string stream;           // CSV: required; NDJSON: used when a line has none
    std::string entity_column = "entity";
    std::string time_column;      // CSV: optional
    std::size_t batch = 1000;
    sync_mode sync = sync_mode::full;
    bool progress = true;         // drawn only when stderr is a terminal
};

int run_import(const import_options& options);

struct export_options {
    std::string db;
    std::string stream;  // empty: every stream
    std::string out;     // empty or "-": stdout
};

int run_export(const export_options& options);

int run_backup(const std::string& db, const std::string& to_path);

// The stream a command reads or writes: stdin or stdout for "" and "-", else
// the file (an output file is truncated), held by `file`. Null, after a
// message naming `command` on stderr (with the system's reason), when the
// file cannot be opened, or when the output would be the database `db` or
// one of its files (-wal, -shm, -journal, .lock): truncated, it took every
// fact with it, under a running server too.
std::istream* open_cli_input(const std::string& path, std::unique_ptr<std::ifstream>& file,
                             const char* command);
std::ostream* open_cli_output(const std::string& path, std::unique_ptr<std::ofstream>& file,
                              const char* command, const std::string& db);
// After a write to what open_cli_output gave failed: says so on stderr with
// the system's reason and what was written (`progress`, e.g. "after 12
// facts"), and removes an output file that is a regular file, which would
// pass for a whole one.
// Call it at once, while errno still holds the write's error.
void report_cli_write_failure(const std::string& path, std::unique_ptr<std::ofstream>& file,
                              const char* command, const std::string& progress);

}  // namespace kennel
