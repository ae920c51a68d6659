// A small RAII layer over SQLite: a connection, prepared statements and
// transactions that roll back unless committed.
//
// Threads: a `connection` and its statements belong to one thread at a time
// (Kennel gives the writer thread its own connection and each reader its
// own; WAL lets them run side by side). SQLite errors become `db_error`
// exceptions inside this layer; callers at the store boundary catch them and
// return a `status`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kennel {

class db_error : public std::runtime_error {
public:
    db_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const { return code_; }
    // The constraint a failed write broke (UNIQUE, FOREIGN KEY, a trigger).
    bool is_constraint() const;
    bool is_busy() const;

private:
    int code_;
};

enum class sync_mode { full, normal, off };

struct open_options {
    bool read_only = false;
    bool create = true;
    // Read-write connections: switch the file to WAL mode on opening. False
    // for the first connection to a file not yet known to be Kennel's:
    // migrate() switches it once it is, so a foreign database is refused
    // unchanged (the journal mode is written into the file).
    bool wal = true;
    sync_mode sync = sync_mode::full;
    int busy_timeout_ms = 5000;
    // Page cache in KiB (0: SQLite's default, 2 MiB). The writer uses a larger
    // one: measured in bench/ingest, it cut the writer's CPU per batched fact
    // by a third.
    int cache_kib = 0;
    // Read-write connections: the bytes a WAL file is cut back to when a
    // commit on this connection restarts it after a complete checkpoint. A
    // reader holding an old snapshot (a long export or backup) stops
    // checkpoints from completing and so lets the WAL grow; without a limit
    // SQLite reuses the file and never shrinks it.
    std::int64_t journal_size_limit = 64 * 1024 * 1024;
};

class statement;

class connection {
public:
    connection(const std::string& path, const open_options& options);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Runs one or more statements that return no rows.
    void exec(std::string_view sql);
    statement prepare(std::string_view sql);
    // A statement prepared once on this connection and kept, reset and ready
    // to bind: for the few whose fixed SQL runs many times a second
    // (transactions, savepoints, the prediction log's insert), where SQLite's
    // parser was a measurable share of the writer's CPU under bench/predict.
    // Valid until the connection closes; one user at a time, as the
    // connection itself.
    statement& cached(std::string_view sql);
    // Runs a cached statement that takes no parameters and returns no rows.
    void exec_cached(std::string_view sql);

    std::int64_t last_insert_rowid() const;
    int changes() const;
    const std::string& path() const { return path_; }
    sqlite3* raw() { return db_; }
    // True when SQLite opened the database read-only: asked read-write, it
    // quietly falls back to that for a file it may not write.
    bool read_only() const;

    // PRAGMA helpers for the few integer pragmas Kennel reads.
    std::int64_t pragma_int(std::string_view name);

    // Turns SQLite's automatic checkpoints off for this connection and
    // records instead how many frames the WAL holds after each commit
    // (wal_frames()), for a caller that checkpoints on another connection.
    void watch_wal();
    int wal_frames() const { return wal_frames_; }

private:
    void configure(const open_options& options);  // the PRAGMAs an open connection gets

    sqlite3* db_ = nullptr;
    std::string path_;
    int wal_frames_ = 0;
    std::vector<std::pair<std::string, std::unique_ptr<statement>>> cache_;
};

// A prepared statement. Bind with 1-based indexes, step, read columns with
// 0-based indexes. reset() makes it reusable with new bindings.
class statement {
public:
    statement(connection& conn, std::string_view sql);
    ~statement();
    statement(statement&& other) noexcept;
    statement& operator=(statement&&) = delete;
    statement(const statement&) = delete;

    statement& bind(int index, std::int64_t value);
    statement& bind(int index, int value) { return bind(index, std::int64_t{value}); }
    statement& bind(int index, double value);
    statement& bind(int index, std::string_view value);
    // As bind, without SQLite's copy: the bytes must stay alive and unchanged
    // until the statement is stepped and reset (hot inserts of many rows).
    statement& bind_static(int index, std::string_view value);
    statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
    statement& bind_blob(int index, std::string_view bytes);
    // As bind_blob, without SQLite's copy (a model artifact can be 100 MB),
    // on the same terms as bind_static.
    statement& bind_blob_static(int index, std::string_view bytes);
    statement& bind_null(int index);
    template <class T>
    statement& bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind_null(index);
    }

    // Returns true while there is a row to read.
    bool step();
    // Steps a statement that returns no rows.
    void run();
    void reset();

    bool is_null(int col) const;
    std::int64_t column_int(int col) const;
    double column_double(int col) const;
    std::string column_text(int col) const;
    std::string column_blob(int col) const;
    std::optional<std::int64_t> column_opt_int(int col) const;
    std::optional<double> column_opt_double(int col) const;
    std::optional<std::string> column_opt_text(int col) const;

private:
    connection* conn_;
    sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE on construction; ROLLBACK in the destructor unless
// commit() was called. Savepoints nest inside for per-item atomicity.
class transaction {
public:
    explicit transaction(connection& conn);
    ~transaction();
    transaction(const transaction&) = delete;
    transaction& operator=(const transaction&) = delete;
    void commit();

private:
    connection& conn_;
    bool done_ = false;
};

// A read transaction: every read on the connection until it ends sees one
// snapshot, and SQLite takes its shared lock once instead of once per
// statement (a file lock and unlock, two system calls, each time: most of a
// read of many small lookups). Ends when it goes out of scope.
class read_snapshot {
public:
    explicit read_snapshot(connection& conn);
    ~read_snapshot();
    read_snapshot(const read_snapshot&) = delete;
    read_snapshot& operator=(const read_snapshot&) = delete;

private:
    connection& conn_;
};

class savepoint {
public:
    savepoint(connection& conn, const char* name);
    ~savepoint();
    savepoint(const savepoint&) = delete;
    savepoint& operator=(const savepoint&) = delete;
    void release();

private:
    connection& conn_;
    std::string name_;
    bool done_ = false;
};

// An exclusive flock on "<the database's canonical path>.lock", held while a
// process writes the database, so two processes never write one file (a
// symlink or another path to the same file takes the same lock), and an
// open-file-description lock on one byte of the database file itself, far
// past SQLite's lock bytes, so a hard link (another name for the same
// device and inode) is refused too. acquire() refuses, creating nothing, a
// path that exists and is not an SQLite database, or whose directory is
// missing, and a database it cannot write. It creates a new database as an
// empty file (to have a file to lock), removed again at release if still
// empty. The lock file is removed when the lock is released (normal exit or
// a failed start; one left by a crash is harmless: the lock is the flock,
// not the file). Release it after the process's connections to the
// database closed. Readers (export, backup, offline predict) take no lock.
// Not shared between threads.
class db_lock {
public:
    static result<std::unique_ptr<db_lock>> acquire(const std::string& db_path);
    ~db_lock();
    db_lock(const db_lock&) = delete;
    db_lock& operator=(const db_lock&) = delete;
    const std::string& path() const { return path_; }

private:
    db_lock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    status hold_file(const std::string& target, const std::string& db_path);
    // Past any real database (SQLite's own locks start at 2^30).
    static constexpr std::int64_t identity_lock_offset = std::int64_t{1} << 62;
    int fd_;
    std::string path_;  // the lock file
    int db_fd_ = -1;    // the database file, holding the identity lock
    std::string db_file_;
    bool created_ = false;
};

// The file of the database `db` that `path` names (the database itself, its
// -wal, -shm, -journal or .lock), by name or by identity (a hard link, a
// symlink, another path to it); empty when it names none. What Kennel
// writes (an export, answers, the access log) must never go there.
std::string database_file_named(const std::string& path, const std::string& db);

// Copies the database at `from` into `to_path` with SQLite's online backup
// API, page batches at a time, so a running server keeps writing.
void online_backup(connection& from, const std::string& to_path,
                   const std::function<void(int remaining, int total)>& progress);

}  // namespace kennel
