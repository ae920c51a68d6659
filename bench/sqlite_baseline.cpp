// Plain-SQLite baseline for bench/ingest: how fast can one connection insert
// the rows Kennel stores, with Kennel's PRAGMAs, without HTTP, JSON or the
// writer thread in the way?
//
// The database must already have Kennel's schema (`kennel migrate --db FILE`),
// so the table, its indexes and its triggers are exactly Kennel's. Each row
// looks like what POST /v1/facts stores for the facts bench/ingest sends:
// stream "posts", a unique entity, event and ingest time "now", the same
// canonical data JSON, and an idempotency key shaped like Kennel's derived
// key ("derived:" + the event time in 16 hex digits + ":" + 32 hex digits of
// hash, uniformly spread, so the UNIQUE index sees the same insert pattern).
// The INSERT statement is Kennel's own.
//
// usage: kennel_sqlite_baseline --db FILE --mode row|batch [--batch 1000]
//                               [--seconds 10] [--max-rows N] [--pragma P]...
//   row:   one BEGIN IMMEDIATE ... COMMIT per row (one durable commit per row)
//   batch: --batch rows per BEGIN IMMEDIATE ... COMMIT
// Runs until --seconds have passed (finishing the current commit) or
// --max-rows rows are in, then prints one JSON line with rows/s.
// --pragma "name=value" (repeatable) runs PRAGMA name=value after Kennel's
// settings; bench/ingest never passes it (it is for what-if experiments,
// e.g. --pragma cache_size=-65536).
#include <sqlite3.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(sqlite3* db, const char* what) {
    std::fprintf(stderr, "kennel_sqlite_baseline: %s: %s\n", what,
                 db ? sqlite3_errmsg(db) : "error");
    std::exit(1);
}

void exec(sqlite3* db, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::fprintf(stderr, "kennel_sqlite_baseline: %s: %s\n", sql, err ? err : "?");
        std::exit(1);
    }
}

std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

std::int64_t now_micros() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

void usage() {
    std::fprintf(stderr,
                 "usage: kennel_sqlite_baseline --db FILE --mode row|batch [--batch 1000] "
                 "[--seconds 10] [--max-rows N] [--pragma name=value]...\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string db_path, mode;
    long batch = 1000;
    double seconds = 10;
    long long max_rows = 0;
    std::vector<std::string> pragmas;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--db") db_path = next();
        else if (a == "--mode") mode = next();
        else if (a == "--batch") batch = std::atol(next().c_str());
        else if (a == "--seconds") seconds = std::atof(next().c_str());
        else if (a == "--max-rows") max_rows = std::atoll(next().c_str());
        else if (a == "--pragma") pragmas.push_back(next());
        else usage();
    }
    if (db_path.empty() || (mode != "row" && mode != "batch") || batch < 1 || seconds <= 0) usage();
    const long per_commit = mode == "row" ? 1 : batch;

    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        die(db, "open");
    }
    // Kennel's connection settings (store/db.cpp), for --sync full.
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    exec(db, "PRAGMA foreign_keys = ON");
    exec(db, "PRAGMA journal_mode = WAL");
    exec(db, "PRAGMA synchronous = FULL");
    for (const std::string& p : pragmas) exec(db, ("PRAGMA " + p).c_str());

    // Kennel's insert (store/facts.cpp), prepared once.
    sqlite3_stmt* ins = nullptr;
    const char* sql =
        "INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
        " data, corrects) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (idempotency_key) DO NOTHING";
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ins, nullptr) != SQLITE_OK) {
        die(db, "prepare");
    }

    std::uint64_t seed = 0x6b656e6e656cULL ^ static_cast<std::uint64_t>(now_micros());
    char key[8 + 16 + 1 + 32 + 1];
    char entity[48];
    char data[160];
    long long rows = 0, commits = 0, ignored = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(seconds);
    for (;;) {
        if (std::chrono::steady_clock::now() >= deadline) break;
        if (max_rows > 0 && rows >= max_rows) break;
        exec(db, "BEGIN IMMEDIATE");  // as Kennel's writer (store/db.cpp)
        const std::int64_t ingest = now_micros();
        for (long k = 0; k < per_commit; ++k) {
            const long long n = rows + 1;
            std::snprintf(key, sizeof key, "derived:%016" PRIx64 ":%016" PRIx64 "%016" PRIx64,
                          static_cast<std::uint64_t>(ingest) ^ (std::uint64_t{1} << 63),
                          splitmix64(seed), splitmix64(seed));
            std::snprintf(entity, sizeof entity, "b1-%lld", n);
            // The canonical form Kennel stores: keys sorted, no spaces.
            std::snprintf(data, sizeof data,
                          "{\"breed\":\"corgi\",\"hashtags\":%lld,\"hour\":%lld,\"length\":%lld}",
                          n % 10, n % 24, n % 500);
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 2, "posts", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, entity, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 4, ingest);  // no "time" in the fact: event time is now
            sqlite3_bind_int64(ins, 5, ingest);
            sqlite3_bind_text(ins, 6, data, -1, SQLITE_TRANSIENT);
            sqlite3_bind_null(ins, 7);
            if (sqlite3_step(ins) != SQLITE_DONE) die(db, "insert");
            if (sqlite3_changes(db) != 1) ++ignored;
            ++rows;
        }
        exec(db, "COMMIT");
        ++commits;
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sqlite3_finalize(ins);
    sqlite3_close(db);
    std::printf(
        "{\"mode\":\"%s\",\"rows_per_commit\":%ld,\"rows\":%lld,\"commits\":%lld,"
        "\"ignored\":%lld,\"seconds\":%.3f,\"rows_per_s\":%.1f}\n",
        mode.c_str(), per_commit, rows, commits, ignored, elapsed,
        elapsed > 0 ? static_cast<double>(rows) / elapsed : 0.0);
    return ignored == 0 ? 0 : 1;
}
