#include "store/db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

namespace kennel {
namespace {

[[noreturn]] void fail(sqlite3* db, int rc, std::string_view context) {
    std::string msg(context);
    msg += ": ";
    msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    throw db_error(rc, msg);
}

}  // namespace

bool db_error::is_constraint() const { return (code_ & 0xff) == SQLITE_CONSTRAINT; }
bool db_error::is_busy() const {
    return (code_ & 0xff) == SQLITE_BUSY || (code_ & 0xff) == SQLITE_LOCKED;
}

connection::connection(const std::string& path, const open_options& options) : path_(path) {
    // SQLite's memory statistics take a process-wide mutex on every
    // allocation; Kennel never reads them. Must precede SQLite's
    // initialisation, so it is done before the first connection opens (a
    // later call would only return SQLITE_MISUSE).
    static const bool configured = [] {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        return true;
    }();
    (void)configured;
    int flags = SQLITE_OPEN_NOMUTEX;  // one thread per connection, by design
    flags |= options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (!options.read_only && options.create) flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        throw db_error(rc, "cannot open database " + path + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    // A destructor does not run for a constructor that throws: a failure
    // below (a file that is not a database, a malformed one) closes here,
    // and says which file it was.
    try {
        configure(options);
    } catch (const db_error& e) {
        sqlite3_close(db_);
        db_ = nullptr;
        throw db_error(e.code(), "database " + path + ": " + e.what());
    }
}

void connection::configure(const open_options& options) {
    exec("PRAGMA foreign_keys = ON");
    // Without it, INSERT OR REPLACE deletes a row without firing DELETE
    // triggers, which would let it overwrite an immutable fact.
    exec("PRAGMA recursive_triggers = ON");
    if (options.cache_kib > 0) exec("PRAGMA cache_size = -" + std::to_string(options.cache_kib));
    if (!options.read_only) {
        if (options.wal) exec("PRAGMA journal_mode = WAL");
        exec("PRAGMA journal_size_limit = " + std::to_string(options.journal_size_limit));
        switch (options.sync) {
            case sync_mode::full: exec("PRAGMA synchronous = FULL"); break;
            case sync_mode::normal: exec("PRAGMA synchronous = NORMAL"); break;
            case sync_mode::off: exec("PRAGMA synchronous = OFF"); break;
        }
    }
}

bool connection::read_only() const {
    return sqlite3_db_readonly(db_, "main") == 1;
}

void connection::watch_wal() {
    // A WAL hook replaces the automatic checkpoint (which is itself one).
    sqlite3_wal_hook(
        db_,
        [](void* self, sqlite3*, const char*, int frames) {
            static_cast<connection*>(self)->wal_frames_ = frames;
            return SQLITE_OK;
        },
        this);
}

connection::~connection() {
    // Statements are RAII too and are destroyed before their connection; v2
    // defers the close if any were leaked rather than failing.
    cache_.clear();
    if (db_) sqlite3_close_v2(db_);
}

statement& connection::cached(std::string_view sql) {
    for (auto& [text, st] : cache_) {
        if (text == sql) {
            st->reset();
            return *st;
        }
    }
    auto st = std::make_unique<statement>(*this, sql);
    return *cache_.emplace_back(std::string(sql), std::move(st)).second;
}

void connection::exec_cached(std::string_view sql) {
    statement& st = cached(sql);
    st.run();
    st.reset();  // done: holds nothing until its next use
}

void connection::exec(std::string_view sql) {
    std::string s(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        throw db_error(rc, msg);
    }
}

statement connection::prepare(std::string_view sql) { return statement(*this, sql); }

std::int64_t connection::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int connection::changes() const { return sqlite3_changes(db_); }

std::int64_t connection::pragma_int(std::string_view name) {
    statement st(*this, "PRAGMA " + std::string(name));
    return st.step() ? st.column_int(0) : 0;
}

statement::statement(connection& conn, std::string_view sql) : conn_(&conn) {
    int rc = sqlite3_prepare_v3(conn.raw(), sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(conn.raw(), rc, "prepare");
}

statement::~statement() {
    if (stmt_) sqlite3_finalize(stmt_);
}

statement::statement(statement&& other) noexcept : conn_(other.conn_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
}

statement& statement::bind(int index, std::int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind(int index, double value) {
    int rc = sqlite3_bind_double(stmt_, index, value);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind(int index, std::string_view value) {
    int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind_static(int index, std::string_view value) {
    int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind_blob(int index, std::string_view bytes) {
    int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind_blob_static(int index, std::string_view bytes) {
    int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

statement& statement::bind_null(int index) {
    int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK) fail(conn_->raw(), rc, "bind");
    return *this;
}

bool statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    // Reset so the statement can be reused after a constraint failure.
    sqlite3_reset(stmt_);
    fail(conn_->raw(), rc, "step");
}

void statement::run() {
    while (step()) {
    }
}

void statement::reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

bool statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
std::int64_t statement::column_int(int col) const { return sqlite3_column_int64(stmt_, col); }
double statement::column_double(int col) const { return sqlite3_column_double(stmt_, col); }

std::string statement::column_text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : "";
}

std::string statement::column_blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : "";
}

std::optional<std::int64_t> statement::column_opt_int(int col) const {
    if (is_null(col)) return std::nullopt;
    return column_int(col);
}
std::optional<double> statement::column_opt_double(int col) const {
    if (is_null(col)) return std::nullopt;
    return column_double(col);
}
std::optional<std::string> statement::column_opt_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return column_text(col);
}

transaction::transaction(connection& conn) : conn_(conn) {
    conn_.exec_cached("BEGIN IMMEDIATE");
}

transaction::~transaction() {
    if (!done_) {
        try {
            conn_.exec_cached("ROLLBACK");
        } catch (const db_error&) {
            // Nothing more to do: SQLite already rolled back (e.g. on I/O error).
        }
    }
}

void transaction::commit() {
    conn_.exec_cached("COMMIT");
    done_ = true;
}

read_snapshot::read_snapshot(connection& conn) : conn_(conn) {
    conn_.exec_cached("BEGIN");
}

read_snapshot::~read_snapshot() {
    try {
        conn_.exec_cached("COMMIT");  // it wrote nothing: this only ends it
    } catch (const db_error&) {
        try {
            conn_.exec_cached("ROLLBACK");
        } catch (const db_error&) {
            // Already ended by SQLite (an I/O error): nothing is held.
        }
    }
}

savepoint::savepoint(connection& conn, const char* name) : conn_(conn), name_(name) {
    conn_.exec_cached("SAVEPOINT " + name_);
}

savepoint::~savepoint() {
    if (!done_) {
        try {
            conn_.exec_cached("ROLLBACK TO " + name_);
            conn_.exec_cached("RELEASE " + name_);
        } catch (const db_error&) {
        }
    }
}

void savepoint::release() {
    conn_.exec_cached("RELEASE " + name_);
    done_ = true;
}

result<std::unique_ptr<db_lock>> db_lock::acquire(const std::string& db_path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    // The file itself, wherever links lead; for a new database, its parent
    // directory's real path and the name.
    fs::path target = fs::weakly_canonical(fs::absolute(db_path, ec), ec);
    if (ec) return status(error_kind::internal, "cannot resolve " + db_path + ": " + ec.message());
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            return status(error_kind::invalid_argument, db_path + " is not a database file");
        }
        // An empty file is a new database to SQLite; anything else must
        // start with SQLite's header.
        if (st.st_size > 0) {
            char header[16] = {};
            int fd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
            bool sqlite = fd >= 0 && ::pread(fd, header, sizeof header, 0) == sizeof header &&
                          std::memcmp(header, "SQLite format 3", 16) == 0;
            if (fd >= 0) ::close(fd);
            if (!sqlite) {
                return status(error_kind::invalid_argument, db_path + " is not an SQLite database");
            }
        }
    } else if (int err = errno; err != ENOENT || !fs::is_directory(target.parent_path(), ec)) {
        return status(error_kind::invalid_argument,
                      "cannot open database " + db_path + ": " +
                          (err != ENOENT ? std::strerror(err) : "no such directory"));
    }
    std::string path = target.string() + ".lock";
    // The file may be removed by the holder between our open and our flock;
    // the lock is then on a name nobody else can find, so try again.
    for (int attempt = 0; attempt < 100; ++attempt) {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            return status(error_kind::internal,
                          "cannot open " + path + ": " + std::strerror(errno));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {};
            ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
            ::close(fd);
            std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) {
                holder.pop_back();
            }
            return status(error_kind::conflict, "database " + db_path +
                                                    " is in use by another Kennel process (pid " +
                                                    holder + ")");
        }
        struct stat held {
        }, named{};
        if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &named) != 0 ||
            held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
            ::close(fd);
            continue;
        }
        std::string pid = std::to_string(::getpid()) + "\n";
        if (::ftruncate(fd, 0) == 0) {
            [[maybe_unused]] ssize_t w = ::pwrite(fd, pid.data(), pid.size(), 0);
        }
        std::unique_ptr<db_lock> lock(new db_lock(fd, path));
        if (status s = lock->hold_file(target.string(), db_path); !s) return s;
        return lock;
    }
    return status(error_kind::internal, "cannot lock " + path + ": it keeps changing");
}

status db_lock::hold_file(const std::string& target, const std::string& db_path) {
    // The lock file above is found by name, so a hard link (another name for
    // the same inode) gets a lock file of its own. This lock is on the
    // database file itself, so it holds per device and inode whatever names
    // it. A new database is created empty here (SQLite takes an empty file
    // as new) so that it has an identity to lock from the start.
    int fd = ::open(target.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        created_ = true;
    } else if (errno == EEXIST) {
        fd = ::open(target.c_str(), O_RDWR | O_CLOEXEC);
    }
    if (fd < 0) {
        int err = errno;
        if (err == EACCES || err == EPERM || err == EROFS) {
            return status(error_kind::failed_precondition,
                          "database " + db_path + " is read-only (" + std::strerror(err) +
                              "); Kennel must be able to write it");
        }
        return status(error_kind::internal,
                      "cannot open database " + db_path + ": " + std::strerror(err));
    }
    db_fd_ = fd;
    db_file_ = target;
    // An open-file-description lock: unlike SQLite's own POSIX locks it is
    // not dropped when another descriptor of the file in this process
    // closes, and it conflicts between descriptors of one process too. One
    // byte far beyond SQLite's lock bytes (512 from offset 0x40000000), so
    // it never meets them; a lock beyond the end of a file is allowed.
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = identity_lock_offset;
    fl.l_len = 1;
    if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int err = errno;
        if (err == EAGAIN || err == EACCES) {
            return status(error_kind::conflict,
                          "database " + db_path +
                              " is in use by another Kennel process (through another name for "
                              "the same file, such as a hard link)");
        }
        return status(error_kind::internal,
                      "cannot lock database " + db_path + ": " + std::strerror(err));
    }
    return status::ok();
}

db_lock::~db_lock() {
    if (db_fd_ >= 0) {
        // A database this lock created and nobody wrote (a start that failed
        // before SQLite opened it) is removed, as if never created.
        struct stat st {};
        std::error_code ec;
        if (created_ && ::fstat(db_fd_, &st) == 0 && st.st_size == 0 &&
            !std::filesystem::exists(db_file_ + "-wal", ec)) {
            ::unlink(db_file_.c_str());
        }
        // Closed after every connection of this process (the lock outlives
        // them): closing a descriptor drops the process's POSIX locks on the
        // file, SQLite's included.
        ::close(db_fd_);
    }
    // Removed while still held: whoever opens the name next gets a new file,
    // and one who opened the old file sees it is no longer named (above).
    ::unlink(path_.c_str());
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
}

void online_backup(connection& from, const std::string& to_path,
                   const std::function<void(int remaining, int total)>& progress) {
    open_options opts;
    opts.sync = sync_mode::full;
    // Not WAL: in WAL mode the pages went to the -wal file and reached the
    // copy only in the checkpoint at close, whose failure (a full disk)
    // nothing reported, and the copy's own checks read through the WAL, so a
    // truncated file passed them and was named a backup. With a rollback
    // journal every page is in the file, synced, when the step returns.
    opts.wal = false;
    connection to(to_path, opts);
    sqlite3_backup* b = sqlite3_backup_init(to.raw(), "main", from.raw(), "main");
    if (!b) fail(to.raw(), sqlite3_errcode(to.raw()), "backup");
    int rc;
    // All pages in one step, inside one read transaction: in WAL mode that
    // does not block the writer, while copying in slices would restart from
    // the beginning every time the server commits between two slices.
    while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (progress) progress(sqlite3_backup_remaining(b), sqlite3_backup_pagecount(b));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (progress) progress(0, sqlite3_backup_pagecount(b));
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) fail(to.raw(), rc, "backup");
}

std::string database_file_named(const std::string& path, const std::string& db) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path out = fs::weakly_canonical(path, ec);
    const fs::path base = fs::weakly_canonical(db, ec);
    for (const char* suffix : {"", "-wal", "-shm", "-journal", ".lock"}) {
        const fs::path other = base.string() + suffix;
        if ((!out.empty() && out == other) || fs::equivalent(path, other, ec))
            return other.string();
    }
    return {};
}

}  // namespace kennel
