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
class partial_signal_guard;

// Where export and predict write (--out): standard output for "" and "-",
// else a file written under a name of its own (FILE.partial-PID) that
// becomes FILE only once whole (finish): an error or a stop signal (Ctrl-C,
// a scheduler's SIGTERM) left FILE cut short at a whole line, with nothing
// to tell it from a complete one. A path that exists and is not a regular
// file (a FIFO, a device), or is a symbolic link (/dev/stdout), is written
// as it is. Messages name `command`.
class cli_output {
public:
    cli_output(const char* command, std::string db);
    ~cli_output();  // removes a partial file not finished
    cli_output(const cli_output&) = delete;
    cli_output& operator=(const cli_output&) = delete;

    // Null, after a message on stderr (with the system's reason), when the
    // file cannot be written, or when it would be the database `db` or one
    // of its files (-wal, -shm, -journal, .lock): truncated, it took every
    // fact with it, under a running server too.
    std::ostream* open(const std::string& path);
    // Flushes and names the file. False after a message with the system's
    // reason and what was written (`progress`, e.g. "after 12 facts"), the
    // partial file removed. Call it at once after the last write, while
    // errno still holds a failed write's error.
    bool finish(const std::string& progress);

private:
    void discard();

    const char* command_;
    std::string db_;
    std::string path_;     // as given
    std::string partial_;  // written, then renamed to path_; empty: written in place
    std::unique_ptr<std::ofstream> file_;
    std::unique_ptr<partial_signal_guard> guard_;
};

}  // namespace kennel
