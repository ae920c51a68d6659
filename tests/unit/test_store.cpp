// Unit tests for the store's foundations: the RAII layer over SQLite
// (store/db.h), SHA-256 (store/sha256.h), RFC 3339 times
// (store/time_util.h) and the parse of JSON from outside (store/json_input.h). Each test works in
// its own temporary directory.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/completion.h"
#include "store/db.h"
#include "store/json_input.h"
#include "store/log.h"
#include "store/sha256.h"
#include "store/time_util.h"

#include "tests/unit/test_support.h"

using namespace kennel;
using kennel::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

std::int64_t count_rows(connection& c, const std::string& table) {
    statement st(c, "SELECT count(*) FROM " + table);
    REQUIRE(st.step());
    return st.column_int(0);
}

}  // namespace

// ---------------------------------------------------------------- connection

TEST_CASE("connection opens in WAL mode with foreign keys and the chosen sync level", "[db]") {
    temp_dir dir;
    SECTION("full by default") {
        connection c(dir.file("a.db"), {});
        statement jm(c, "PRAGMA journal_mode");
        REQUIRE(jm.step());
        CHECK(jm.column_text(0) == "wal");
        CHECK(c.pragma_int("synchronous") == 2);  // FULL
        CHECK(c.pragma_int("foreign_keys") == 1);
    }
    SECTION("normal when asked") {
        open_options o;
        o.sync = sync_mode::normal;
        connection c(dir.file("b.db"), o);
        CHECK(c.pragma_int("synchronous") == 1);
    }
    SECTION("off when asked") {
        open_options o;
        o.sync = sync_mode::off;
        connection c(dir.file("c.db"), o);
        CHECK(c.pragma_int("synchronous") == 0);
    }
}

TEST_CASE("connection without create refuses a missing file", "[db]") {
    temp_dir dir;
    open_options o;
    o.create = false;
    CHECK_THROWS_AS(connection(dir.file("missing.db"), o), db_error);
    CHECK_FALSE(fs::exists(dir.file("missing.db")));
}

TEST_CASE("a file that is not a database is refused by name, and the handle is closed", "[db]") {
    // SQLite opens any file; the first PRAGMA finds it is no database. The
    // constructor threw then with the handle open (LeakSanitizer saw it in
    // the sanitizer build) and without naming the file.
    temp_dir dir;
    const std::string path = dir.file("text.db");
    {
        std::ofstream f(path, std::ios::binary);
        for (int i = 0; i < 512; ++i) f << "not a database, only text\n";
    }
    // (Read-write: setting the journal mode reads the file. A read-only
    // connection reads it first at its first statement, which throws then.)
    try {
        connection c(path, open_options{});
        FAIL("opened a text file as a database");
    } catch (const db_error& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains(path));
        CHECK_THAT(e.what(), Catch::Matchers::Contains("not a database"));
    }
}

TEST_CASE("a read-only connection cannot write", "[db]") {
    temp_dir dir;
    {
        connection w(dir.file("ro.db"), {});
        w.exec("CREATE TABLE t (x INTEGER)");
    }
    open_options ro;
    ro.read_only = true;
    connection r(dir.file("ro.db"), ro);
    CHECK(count_rows(r, "t") == 0);
    CHECK_THROWS_AS(r.exec("INSERT INTO t VALUES (1)"), db_error);
}

TEST_CASE("exec runs several statements and reports SQL errors as db_error", "[db]") {
    temp_dir dir;
    connection c(dir.file("x.db"), {});
    c.exec("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);");
    CHECK(count_rows(c, "t") == 2);
    CHECK(c.changes() == 1);
    CHECK(c.last_insert_rowid() == 2);
    try {
        c.exec("INSERT INTO no_such_table VALUES (1)");
        FAIL("expected db_error");
    } catch (const db_error& e) {
        CHECK(std::string(e.what()).find("no_such_table") != std::string::npos);
        CHECK_FALSE(e.is_constraint());
        CHECK_FALSE(e.is_busy());
    }
    CHECK_THROWS_AS(c.prepare("SELEC nonsense"), db_error);
}

TEST_CASE("a cached statement is prepared once, handed out reset, and survives errors", "[db]") {
    temp_dir dir;
    connection c(dir.file("x.db"), {});
    c.exec("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT NOT NULL)");
    statement& ins = c.cached("INSERT INTO t (x, y) VALUES (?, ?)");
    ins.bind(1, 1).bind(2, "one").run();
    // The same SQL gives the same statement, reset: its old bindings are gone
    // (y would be NULL and refused if they were not replaced).
    statement& again = c.cached("INSERT INTO t (x, y) VALUES (?, ?)");
    CHECK(&again == &ins);
    CHECK_THROWS_AS(again.run(), db_error);  // NOT NULL: bindings were cleared
    again.reset();
    again.bind(1, 1).bind(2, "dup");
    try {
        again.run();
        FAIL("expected a constraint error");
    } catch (const db_error& e) {
        CHECK(e.is_constraint());
    }
    c.cached("INSERT INTO t (x, y) VALUES (?, ?)").bind(1, 2).bind(2, "two").run();
    CHECK(count_rows(c, "t") == 2);
    CHECK(&c.cached("SELECT y FROM t WHERE x = ?") != &ins);

    // Transactions run on cached BEGIN/COMMIT/ROLLBACK: a failed BEGIN (one
    // is already open) leaves them usable.
    c.exec_cached("BEGIN IMMEDIATE");
    CHECK_THROWS_AS(c.exec_cached("BEGIN IMMEDIATE"), db_error);
    c.exec_cached("ROLLBACK");
    for (int i = 0; i < 3; ++i) {
        transaction tx(c);
        c.cached("INSERT INTO t (x, y) VALUES (?, ?)").bind(1, 10 + i).bind(2, "t").run();
        if (i != 1) tx.commit();
    }
    CHECK(count_rows(c, "t") == 4);  // the second was rolled back
    CHECK_THROWS_AS(c.cached("SELEC nonsense"), db_error);
}

// ---------------------------------------------------------------- statements

TEST_CASE("statement binds every type and reads the columns back", "[db]") {
    temp_dir dir;
    connection c(dir.file("s.db"), {});
    c.exec("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB, n TEXT)");
    const std::string blob("a\0b\xff", 4);
    {
        statement ins(c, "INSERT INTO t VALUES (?, ?, ?, ?, ?)");
        ins.bind(1, std::int64_t{9007199254740993})  // beyond double precision
            .bind(2, 2.5)
            .bind(3, std::string_view("héllo, wörld"))
            .bind_blob(4, blob)
            .bind_null(5);
        ins.run();
    }
    statement st(c, "SELECT i, d, s, b, n FROM t");
    REQUIRE(st.step());
    CHECK(st.column_int(0) == 9007199254740993);
    CHECK(st.column_double(1) == 2.5);
    CHECK(st.column_text(2) == "héllo, wörld");
    CHECK(st.column_blob(3) == blob);
    CHECK(st.column_blob(3).size() == 4);
    CHECK(st.is_null(4));
    CHECK_FALSE(st.is_null(0));
    CHECK(st.column_opt_int(0) == std::optional<std::int64_t>(9007199254740993));
    CHECK(st.column_opt_double(1) == std::optional<double>(2.5));
    CHECK(st.column_opt_text(2) == std::optional<std::string>("héllo, wörld"));
    CHECK_FALSE(st.column_opt_int(4).has_value());
    CHECK_FALSE(st.column_opt_double(4).has_value());
    CHECK_FALSE(st.column_opt_text(4).has_value());
    CHECK(st.column_text(4).empty());
    CHECK_FALSE(st.step());  // exactly one row

    // Without SQLite's copy: the bytes as they are when the row is stepped.
    {
        std::string bytes("x\0y", 3);
        statement ins(c, "INSERT INTO t (i, b) VALUES (2, ?)");
        ins.bind_blob_static(1, bytes);
        ins.run();
    }
    statement two(c, "SELECT b FROM t WHERE i = 2");
    REQUIRE(two.step());
    CHECK(two.column_blob(0) == std::string("x\0y", 3));
}

TEST_CASE("statement binds optionals as value or NULL, and int as int64", "[db]") {
    temp_dir dir;
    connection c(dir.file("o.db"), {});
    c.exec("CREATE TABLE t (k INTEGER, v INTEGER)");
    statement ins(c, "INSERT INTO t VALUES (?, ?)");
    ins.bind(1, 1).bind(2, std::optional<std::int64_t>(42));
    ins.run();
    ins.reset();
    ins.bind(1, 2).bind(2, std::optional<std::int64_t>());
    ins.run();
    statement st(c, "SELECT k, v FROM t ORDER BY k");
    REQUIRE(st.step());
    CHECK(st.column_int(0) == 1);
    CHECK(st.column_opt_int(1) == std::optional<std::int64_t>(42));
    REQUIRE(st.step());
    CHECK(st.column_int(0) == 2);
    CHECK(st.is_null(1));
    CHECK_FALSE(st.step());
}

TEST_CASE("a reset statement is reused with new bindings, and reset clears old ones", "[db]") {
    temp_dir dir;
    connection c(dir.file("r.db"), {});
    c.exec("CREATE TABLE t (x INTEGER, y TEXT)");
    statement ins(c, "INSERT INTO t VALUES (?, ?)");
    for (int i = 0; i < 10; ++i) {
        ins.reset();
        ins.bind(1, i).bind(2, "row" + std::to_string(i));
        ins.run();
    }
    // After reset() without binding ?2, it must be NULL, not the last value.
    ins.reset();
    ins.bind(1, 100);
    ins.run();
    CHECK(count_rows(c, "t") == 11);
    statement sum(c, "SELECT sum(x), count(y) FROM t");
    REQUIRE(sum.step());
    CHECK(sum.column_int(0) == 45 + 100);
    CHECK(sum.column_int(1) == 10);

    statement q(c, "SELECT y FROM t WHERE x = ?");
    q.bind(1, 3);
    REQUIRE(q.step());
    CHECK(q.column_text(0) == "row3");
    q.reset();
    q.bind(1, 7);
    REQUIRE(q.step());
    CHECK(q.column_text(0) == "row7");
}

TEST_CASE("a constraint violation is a db_error that says so, and the statement stays usable",
          "[db]") {
    temp_dir dir;
    connection c(dir.file("u.db"), {});
    c.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
    statement ins(c, "INSERT INTO t VALUES (?, ?)");
    ins.bind(1, "a").bind(2, 1);
    ins.run();
    ins.reset();
    ins.bind(1, "a").bind(2, 2);
    try {
        ins.run();
        FAIL("expected a UNIQUE violation");
    } catch (const db_error& e) {
        CHECK(e.is_constraint());
        CHECK_FALSE(e.is_busy());
        CHECK(std::string(e.what()).find("UNIQUE") != std::string::npos);
    }
    // NOT NULL is a constraint too.
    ins.reset();
    ins.bind(1, "b").bind_null(2);
    try {
        ins.run();
        FAIL("expected a NOT NULL violation");
    } catch (const db_error& e) {
        CHECK(e.is_constraint());
    }
    // The same statement inserts again after the failures.
    ins.reset();
    ins.bind(1, "c").bind(2, 3);
    ins.run();
    CHECK(count_rows(c, "t") == 2);
}

TEST_CASE("a moved-from statement hands over its prepared handle", "[db]") {
    temp_dir dir;
    connection c(dir.file("m.db"), {});
    statement a = c.prepare("SELECT 41 + 1");
    statement b(std::move(a));
    REQUIRE(b.step());
    CHECK(b.column_int(0) == 42);
}

// -------------------------------------------------------------- transactions

TEST_CASE("a transaction rolls back in its destructor unless committed", "[db]") {
    temp_dir dir;
    connection c(dir.file("t.db"), {});
    c.exec("CREATE TABLE t (x INTEGER)");
    {
        transaction tx(c);
        c.exec("INSERT INTO t VALUES (1)");
        CHECK(count_rows(c, "t") == 1);  // visible inside
    }
    CHECK(count_rows(c, "t") == 0);
    {
        transaction tx(c);
        c.exec("INSERT INTO t VALUES (2)");
        tx.commit();
    }
    CHECK(count_rows(c, "t") == 1);
}

TEST_CASE("an exception leaving a transaction's scope rolls it back", "[db]") {
    temp_dir dir;
    connection c(dir.file("e.db"), {});
    c.exec("CREATE TABLE t (x INTEGER)");
    CHECK_THROWS_AS(
        [&] {
            transaction tx(c);
            c.exec("INSERT INTO t VALUES (1)");
            throw std::runtime_error("boom");
        }(),
        std::runtime_error);
    CHECK(count_rows(c, "t") == 0);
    // The connection is out of the transaction: a new one can begin.
    transaction tx(c);
    c.exec("INSERT INTO t VALUES (3)");
    tx.commit();
    CHECK(count_rows(c, "t") == 1);
}

TEST_CASE("a committed transaction is visible to another connection, an open one is not", "[db]") {
    temp_dir dir;
    connection w(dir.file("v.db"), {});
    w.exec("CREATE TABLE t (x INTEGER)");
    connection r(dir.file("v.db"), {});
    transaction tx(w);
    w.exec("INSERT INTO t VALUES (1)");
    CHECK(count_rows(r, "t") == 0);  // WAL: the reader sees the last commit
    tx.commit();
    CHECK(count_rows(r, "t") == 1);
}

TEST_CASE("a read snapshot sees one state of the database until it ends", "[db]") {
    temp_dir dir;
    connection w(dir.file("s.db"), {});
    w.exec("CREATE TABLE t (x INTEGER)");
    w.exec("INSERT INTO t VALUES (1)");
    connection r(dir.file("s.db"), {});
    statement open(r, "SELECT x FROM t");  // outlives the snapshot
    {
        read_snapshot snapshot(r);
        CHECK(count_rows(r, "t") == 1);
        w.exec("INSERT INTO t VALUES (2)");  // committed by another connection
        CHECK(count_rows(r, "t") == 1);      // not seen inside the snapshot
        REQUIRE(open.step());                // still stepping when the snapshot ends
    }
    // Its end is the COMMIT; a statement left stepping keeps reading its
    // snapshot (SQLite's rule) until it is reset.
    CHECK(count_rows(r, "t") == 1);
    open.reset();
    CHECK(count_rows(r, "t") == 2);
    // Ended, it holds nothing: the writer can checkpoint the whole WAL.
    w.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    CHECK(std::filesystem::file_size(dir.file("s.db") + "-wal") == 0);
}

TEST_CASE("a second writer waits busy_timeout then fails with a busy db_error", "[db]") {
    temp_dir dir;
    connection a(dir.file("busy.db"), {});
    a.exec("CREATE TABLE t (x INTEGER)");
    open_options quick;
    quick.busy_timeout_ms = 50;
    connection b(dir.file("busy.db"), quick);
    transaction hold(a);
    try {
        transaction second(b);  // BEGIN IMMEDIATE needs the write lock
        FAIL("expected SQLITE_BUSY");
    } catch (const db_error& e) {
        CHECK(e.is_busy());
        CHECK_FALSE(e.is_constraint());
    }
}

TEST_CASE("a savepoint rolls back only its own changes unless released", "[db]") {
    temp_dir dir;
    connection c(dir.file("sp.db"), {});
    c.exec("CREATE TABLE t (x INTEGER)");
    {
        transaction tx(c);
        c.exec("INSERT INTO t VALUES (1)");
        {
            savepoint sp(c, "item");
            c.exec("INSERT INTO t VALUES (2)");
            c.exec("INSERT INTO t VALUES (3)");
            CHECK(count_rows(c, "t") == 3);
        }  // not released: rolled back to before (2)
        CHECK(count_rows(c, "t") == 1);
        {
            savepoint sp(c, "item");
            c.exec("INSERT INTO t VALUES (4)");
            sp.release();
        }
        CHECK(count_rows(c, "t") == 2);
        tx.commit();
    }
    statement st(c, "SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)");
    REQUIRE(st.step());
    CHECK(st.column_text(0) == "1,4");
}

TEST_CASE("a released savepoint is still undone when its transaction rolls back", "[db]") {
    temp_dir dir;
    connection c(dir.file("sp2.db"), {});
    c.exec("CREATE TABLE t (x INTEGER)");
    {
        transaction tx(c);
        savepoint sp(c, "inner");
        c.exec("INSERT INTO t VALUES (1)");
        sp.release();
    }
    CHECK(count_rows(c, "t") == 0);
}

// ------------------------------------------------------------- online backup

TEST_CASE("online_backup copies every row into a new file and reports progress", "[db]") {
    temp_dir dir;
    connection src(dir.file("src.db"), {});
    src.exec("CREATE TABLE t (x INTEGER, pad TEXT)");
    {
        transaction tx(src);
        statement ins(src, "INSERT INTO t VALUES (?, ?)");
        for (int i = 0; i < 5000; ++i) {
            ins.reset();
            ins.bind(1, i).bind(2, std::string(200, 'p'));
            ins.run();
        }
        tx.commit();
    }
    int calls = 0, last_remaining = -1, last_total = -1;
    online_backup(src, dir.file("copy.db"), [&](int remaining, int total) {
        ++calls;
        last_remaining = remaining;
        last_total = total;
    });
    CHECK(calls >= 1);  // one step (a live writer cannot restart it), then the final call
    CHECK(last_remaining == 0);
    CHECK(last_total > 256);

    open_options ro;
    ro.read_only = true;
    connection copy(dir.file("copy.db"), ro);
    CHECK(count_rows(copy, "t") == 5000);
    statement sum(copy, "SELECT sum(x) FROM t");
    REQUIRE(sum.step());
    CHECK(sum.column_int(0) == 4999LL * 5000 / 2);
    statement ic(copy, "PRAGMA integrity_check");
    REQUIRE(ic.step());
    CHECK(ic.column_text(0) == "ok");
}

TEST_CASE("online_backup includes commits still in the WAL and works without a callback",
          "[db]") {
    temp_dir dir;
    connection src(dir.file("wal.db"), {});
    src.exec("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7)");
    // No checkpoint happened: the row lives in the -wal file only.
    online_backup(src, dir.file("copy.db"), nullptr);
    connection copy(dir.file("copy.db"), {});
    CHECK(count_rows(copy, "t") == 1);
}

TEST_CASE("a commit after a complete checkpoint cuts the WAL back to journal_size_limit", "[db]") {
    temp_dir dir;
    open_options small;
    small.journal_size_limit = 256 * 1024;
    connection w(dir.file("wal.db"), small);
    CHECK(w.pragma_int("journal_size_limit") == 256 * 1024);
    CHECK(connection(dir.file("default.db"), {}).pragma_int("journal_size_limit") == 64 << 20);
    w.watch_wal();  // checkpoints happen elsewhere, as in the writer
    w.exec("CREATE TABLE t (x BLOB)");
    std::string wal = dir.file("wal.db") + "-wal";
    {
        // A reader's snapshot keeps a checkpoint from reaching the WAL's end.
        open_options ro;
        ro.read_only = true;
        connection reader(dir.file("wal.db"), ro);
        reader.exec("BEGIN");
        CHECK(count_rows(reader, "t") == 0);
        for (int i = 0; i < 40; ++i) {
            w.exec("INSERT INTO t VALUES (zeroblob(100000))");
        }
        connection(dir.file("wal.db"), {}).exec("PRAGMA wal_checkpoint(PASSIVE)");
        CHECK(fs::file_size(wal) > 4 * 1024 * 1024);
        reader.exec("COMMIT");
    }
    connection(dir.file("wal.db"), {}).exec("PRAGMA wal_checkpoint(PASSIVE)");
    w.exec("INSERT INTO t VALUES (1)");
    CHECK(fs::file_size(wal) <= 256 * 1024);
    CHECK(count_rows(w, "t") == 41);
}

// ------------------------------------------------------------------ db_lock

TEST_CASE("db_lock: a second lock on the same file is refused, by any path to it", "[db]") {
    temp_dir dir;
    connection(dir.file("k.db"), {}).exec("CREATE TABLE t (x)");
    fs::create_symlink(dir.file("k.db"), dir.file("link.db"));
    fs::create_hard_link(dir.file("k.db"), dir.file("hard.db"));  // same inode, its own name
    fs::create_directory(dir.file("sub"));
    auto first = db_lock::acquire(dir.file("k.db"));
    REQUIRE(first);
    for (const std::string& other : {dir.file("k.db"), dir.file("link.db"),
                                     dir.file("sub") + "/../k.db", dir.file("hard.db")}) {
        auto second = db_lock::acquire(other);
        REQUIRE_FALSE(second);
        CHECK(second.error().message().find("in use by another Kennel process") !=
              std::string::npos);
    }
    CHECK(fs::exists(dir.file("k.db.lock")));
    CHECK_FALSE(fs::exists(dir.file("link.db.lock")));
    CHECK_FALSE(fs::exists(dir.file("hard.db.lock")));  // released with the refusal
    first->reset();
    // Released: the file is gone and the next one locks through the link.
    CHECK_FALSE(fs::exists(dir.file("k.db.lock")));
    auto again = db_lock::acquire(dir.file("link.db"));
    REQUIRE(again);
    CHECK((*again)->path() == fs::canonical(dir.file("k.db")).string() + ".lock");
}

TEST_CASE("db_lock: a new database may be locked; other files and missing directories not",
          "[db]") {
    temp_dir dir;
    {
        auto fresh = db_lock::acquire(dir.file("new.db"));  // Kennel is about to create it
        REQUIRE(fresh);
        CHECK(fs::exists(dir.file("new.db.lock")));
        std::ofstream(dir.file("empty.db")).close();  // SQLite takes an empty file as new
        CHECK(db_lock::acquire(dir.file("empty.db")));
    }
    CHECK_FALSE(fs::exists(dir.file("new.db.lock")));
    CHECK_FALSE(fs::exists(dir.file("empty.db.lock")));
    // Created empty to be locked, and nothing written: removed again. A file
    // that was there before stays.
    CHECK_FALSE(fs::exists(dir.file("new.db")));
    CHECK(fs::exists(dir.file("empty.db")));
    std::ofstream(dir.file("passwd")) << "root:x:0:0:root:/root:/bin/bash\n";
    auto text = db_lock::acquire(dir.file("passwd"));
    REQUIRE_FALSE(text);
    CHECK(text.error().message().find("is not an SQLite database") != std::string::npos);
    CHECK_FALSE(db_lock::acquire(dir.file("nowhere/k.db")));
    CHECK_FALSE(db_lock::acquire(dir.file("")));  // the directory itself
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir.file(""))) {
        if (e.path().extension() == ".lock") left.push_back(e.path().string());
    }
    CHECK(left.empty());
}

TEST_CASE("db_lock: racing lockers never both hold it, though each release removes the file",
          "[db]") {
    temp_dir dir;
    std::string db = dir.file("race.db");
    std::atomic<int> holders{0}, max_holders{0}, taken{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 300; ++i) {
                auto lock = db_lock::acquire(db);
                if (!lock) continue;
                int now = ++holders;
                int seen = max_holders.load();
                while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
                }
                ++taken;
                --holders;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(max_holders.load() == 1);
    CHECK(taken.load() > 0);
    CHECK_FALSE(fs::exists(db + ".lock"));
}

// ------------------------------------------------------------------- sha256

TEST_CASE("sha256_hex matches the FIPS 180-2 test vectors", "[sha256]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000000, 'a')) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256_hex handles block-boundary lengths and embedded NUL bytes", "[sha256]") {
    // 55, 56 and 64 bytes straddle the padding boundary.
    CHECK(sha256_hex(std::string(55, 'a')) ==
          "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    CHECK(sha256_hex(std::string(56, 'a')) ==
          "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    CHECK(sha256_hex(std::string(64, 'a')) ==
          "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    const std::string with_nul("a\0b", 3);
    CHECK(sha256_hex(with_nul) != sha256_hex("ab"));
    CHECK(sha256_hex(with_nul).size() == 64);
}

TEST_CASE("HMAC-SHA256 and PBKDF2-HMAC-SHA256 match the RFCs' test vectors", "[sha256]") {
    // RFC 4231, cases 2 and 6 (a key longer than a block is hashed first).
    CHECK(to_hex(hmac_sha256_raw("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(to_hex(hmac_sha256_raw(std::string(131, '\xaa'),
                                 "Test Using Larger Than Block-Size Key - Hash Key First")) ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    // RFC 7914 section 11, the first 32 bytes.
    CHECK(pbkdf2_sha256_hex("passwd", "salt", 1) ==
          "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
    CHECK(pbkdf2_sha256_hex("Password", "NaCl", 80000) ==
          "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56");
    // A password longer than a block (Python's hashlib.pbkdf2_hmac).
    CHECK(pbkdf2_sha256_hex(std::string(100, 'x'), "salt", 1000) ==
          "afc5c595f05f2cd6c1ddd7bc2628ea4c5df74508996952bb4864d4047eae2500");
}

// ---------------------------------------------------------------- RFC 3339

TEST_CASE("parse_rfc3339 reads UTC times, fractions, dates and offsets", "[time]") {
    const micros t = 1795168800000000;  // 2026-11-20T10:00:00Z
    CHECK(parse_rfc3339("2026-11-20T10:00:00Z") == t);
    CHECK(parse_rfc3339("2026-11-20t10:00:00z") == t);
    CHECK(parse_rfc3339("2026-11-20 10:00:00Z") == t);
    CHECK(parse_rfc3339("2026-11-20T12:00:00+02:00") == t);
    CHECK(parse_rfc3339("2026-11-20T04:30:00-05:30") == t);
    CHECK(parse_rfc3339("2026-11-20T10:00:00+00:00") == t);
    CHECK(parse_rfc3339("2026-11-20T10:00:00-00:00") == t);
    CHECK(parse_rfc3339("2026-11-20") == t - 10LL * 3600 * 1000000);
    CHECK(parse_rfc3339("2026-11-20T10:00:00.5Z") == t + 500000);
    CHECK(parse_rfc3339("2026-11-20T10:00:00.123Z") == t + 123000);
    CHECK(parse_rfc3339("2026-11-20T10:00:00.123456Z") == t + 123456);
    CHECK(parse_rfc3339("2026-11-20T10:00:00.123456789Z") == t + 123456);  // ns truncated
    CHECK(parse_rfc3339("2026-11-20T12:00:00.250+02:00") == t + 250000);
    CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_rfc3339("1969-12-31T23:59:59Z") == -1000000);
    CHECK(parse_rfc3339("2000-02-29T00:00:00Z") == 951782400000000);
    CHECK(parse_rfc3339("2024-02-29") == 1709164800000000);
    // A leap second is kept as the last microsecond of the second before it
    // (clamped to :59 it equalled a reading at :59), at the end of a UTC
    // day only (10:59:60Z was read as 10:59:59.999999Z).
    CHECK(parse_rfc3339("2016-12-31T23:59:60Z") == *parse_rfc3339("2016-12-31T23:59:59Z") + 999999);
    CHECK(parse_rfc3339("2016-12-31T23:59:60.5Z") == parse_rfc3339("2016-12-31T23:59:60Z"));
    CHECK(parse_rfc3339("2017-01-01T05:29:60+05:30") == parse_rfc3339("2016-12-31T23:59:60Z"));
    CHECK_FALSE(parse_rfc3339("2026-06-30T12:34:60Z"));
    CHECK_FALSE(parse_rfc3339("2026-03-05T10:59:60Z"));
    CHECK_FALSE(parse_rfc3339("2017-01-01T06:29:60+05:30"));
    CHECK_FALSE(parse_rfc3339("2016-12-31T23:59:60+05:30"));
    // An offset moves the day too.
    CHECK(parse_rfc3339("2026-11-21T01:00:00+15:00") == t);
    // The first and last instants of years 0000-9999 UTC, with and without offsets.
    CHECK(parse_rfc3339("0000-01-01T00:00:00Z") == min_rfc3339_time);
    CHECK(parse_rfc3339("0000-01-01T01:00:00+01:00") == min_rfc3339_time);
    CHECK(parse_rfc3339("9999-12-31T23:59:59.999999Z") == max_rfc3339_time);
    CHECK(parse_rfc3339("9999-12-31T22:59:59.999999-01:00") == max_rfc3339_time);
    CHECK(format_rfc3339(min_rfc3339_time) == "0000-01-01T00:00:00Z");
    CHECK(format_rfc3339(max_rfc3339_time) == "9999-12-31T23:59:59.999999Z");
}

TEST_CASE("parse_rfc3339 rejects malformed and out-of-range times", "[time]") {
    const char* bad[] = {
        "",
        "yesterday",
        "2026-13-01T00:00:00Z",       // month 13
        "2026-00-10T00:00:00Z",       // month 0
        "2026-02-30T00:00:00Z",       // Feb 30
        "2025-02-29",                 // not a leap year
        "1900-02-29",                 // century, not a leap year
        "2026-04-31",                 // April has 30 days
        "2026-11-00",                 // day 0
        "2026-11-20T10:00:00",        // a time needs a zone
        "2026-11-20T10:00",           // no seconds
        "2026-11-20T24:00:00Z",       // hour 24
        "2026-11-20T10:60:00Z",       // minute 60
        "2026-11-20T10:00:61Z",       // second 61
        "2026-11-20T10:00:00.Z",      // empty fraction
        "2026-11-20T10:00:00+2:00",   // one-digit offset hour
        "2026-11-20T10:00:00+0200",   // offset without colon
        "2026-11-20T10:00:00+24:00",  // offset hour out of range
        "2026-11-20T10:00:00+02:60",  // offset minute out of range
        "2026-11-20T10:00:00ZZ",      // trailing garbage
        "2026-11-20T10:00:00Z ",      // trailing space
        "2026-11-20X10:00:00Z",       // bad separator
        "2026/11/20",
        "26-11-20",
        "2026-1-20",
        "２０２６-11-20",  // non-ASCII digits
        // Four-digit years whose offset moves the instant out of 0000-9999 UTC
        // (once stored, then written as "-001-..." and "10000-...").
        "0000-01-01T00:00:00+00:01",
        "0000-01-01T00:59:59.999999+01:00",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:00:00-01:00",
    };
    for (const char* s : bad) {
        INFO("input: \"" << s << "\"");
        CHECK_FALSE(parse_rfc3339(s).has_value());
    }
}

TEST_CASE("format_rfc3339 writes UTC with the fraction only when needed", "[time]") {
    const micros t = 1795168800000000;
    CHECK(format_rfc3339(t) == "2026-11-20T10:00:00Z");
    CHECK(format_rfc3339(t + 123000) == "2026-11-20T10:00:00.123Z");
    CHECK(format_rfc3339(t + 123456) == "2026-11-20T10:00:00.123456Z");
    CHECK(format_rfc3339(t + 1) == "2026-11-20T10:00:00.000001Z");
    CHECK(format_rfc3339(0) == "1970-01-01T00:00:00Z");
    CHECK(format_rfc3339(-1000000) == "1969-12-31T23:59:59Z");
    CHECK(format_rfc3339(-500000) == "1969-12-31T23:59:59.500Z");
    CHECK(format_rfc3339(951782400000000) == "2000-02-29T00:00:00Z");
}

TEST_CASE("format and parse round-trip across dates, fractions and negative times", "[time]") {
    const micros samples[] = {0,
                              1,
                              -1,
                              999999,
                              -999999,
                              1795168800000000,
                              1795168800123000,
                              1795168800123456,
                              951782400000000,           // 2000-02-29
                              4102444799999999,          // 2099-12-31T23:59:59.999999
                              -2208988800000000,         // 1900-01-01
                              253402300799000000};       // 9999-12-31T23:59:59
    for (micros m : samples) {
        INFO("micros " << m << " formatted " << format_rfc3339(m));
        CHECK(parse_rfc3339(format_rfc3339(m)) == m);
    }
    // Every day of a leap year and of a common year, at a fractional time.
    for (micros day = 0; day < 366 * 2; ++day) {
        micros m = 1704067200000000 + day * 86400LL * 1000000 + 45296789000;  // from 2024-01-01
        REQUIRE(parse_rfc3339(format_rfc3339(m)) == m);
    }
    // Text with an offset normalises to Z and then parses to the same instant.
    auto with_offset = parse_rfc3339("2026-03-01T01:30:00+05:00");
    REQUIRE(with_offset);
    CHECK(format_rfc3339(*with_offset) == "2026-02-28T20:30:00Z");
    CHECK(parse_rfc3339(format_rfc3339(*with_offset)) == with_offset);
}

TEST_CASE("now_micros is the current time in microseconds", "[time]") {
    micros a = now_micros();
    micros b = now_micros();
    CHECK(b >= a);
    CHECK(a > parse_rfc3339("2024-01-01").value());
    CHECK(a < parse_rfc3339("2100-01-01").value());
}

// ---------------------------------------------------------------- completion

TEST_CASE("completion: an unset one times out, a set one returns at once", "[completion]") {
    using namespace std::chrono_literals;
    kennel::completion c;
    CHECK_FALSE(c.is_set());
    CHECK_FALSE(c.wait_for(0ms));
    CHECK_FALSE(c.wait_for(20ms));  // waited (asleep) and timed out
    CHECK_FALSE(c.is_set());
    c.set();  // the waiter had announced a sleep: set() must still complete it
    CHECK(c.is_set());
    CHECK(c.wait_for(0ms));
    CHECK(c.wait_for(1000ms));
}

TEST_CASE("completion: a sleeping waiter is woken and sees what was written before set",
          "[completion]") {
    using namespace std::chrono_literals;
    // Many rounds so both orders happen: set before the wait and during it.
    for (int round = 0; round < 2000; ++round) {
        auto c = std::make_unique<kennel::completion>();
        std::vector<int> payload;
        std::thread setter([&] {
            if (round % 2) std::this_thread::yield();
            payload.assign(100, round);
            c->set();
        });
        REQUIRE(c->wait_for(10s));
        REQUIRE(payload.size() == 100);
        CHECK(payload[99] == round);
        setter.join();
    }
}

TEST_CASE("parse_json_input builds what nlohmann's own parse builds", "[json_input]") {
    for (const std::string& text : {
             std::string(R"({"a":1,"b":[true,false,null],"c":{"d":"e\u00e9","f":[[],{}]}})"),
             std::string(R"([1,-2,18446744073709551615,-9223372036854775808,2.5e-3,"x"])"),
             std::string(R"(  {"nested":[{"a":{"b":[1,{"c":2}]}},{"a":3}]}  )"),
             std::string("\"just a string\""),
             std::string("0"),
             std::string("null"),
             std::string(R"({"":1,"a":{"":2}})"),
         }) {
        INFO(text);
        auto j = parse_json_input(text);
        REQUIRE(j.is_ok());
        CHECK(*j == nlohmann::json::parse(text));
        CHECK(j->dump() == nlohmann::json::parse(text).dump());
    }
}

TEST_CASE("parse_json_input refuses a NUL byte, which nlohmann reads as the end", "[json_input]") {
    using namespace std::string_literals;
    // Before: each parsed as the JSON before the NUL, the rest unread.
    for (const std::string& text :
         {"{\"a\":1}\0{\"b\":2}"s, "3\0garbage"s, "[1,2]\0"s, "\"a\0b\""s, "\0"s}) {
        INFO(text.size() << " bytes");
        auto j = parse_json_input(text);
        REQUIRE_FALSE(j.is_ok());
        CHECK(j.error().message().find("malformed JSON: a NUL byte at byte " +
                                       std::to_string(text.find('\0'))) == 0);
    }
    // Escaped, it is a character like any other.
    auto escaped = parse_json_input(R"({"a":"x\u0000y"})");
    REQUIRE(escaped.is_ok());
    CHECK(escaped->at("a").get<std::string>() == "x\0y"s);
}

TEST_CASE("parse_json_input refuses a key given twice in one object, naming where",
          "[json_input]") {
    struct bad_case {
        std::string text;
        std::string field;
        std::string key;
    };
    for (const bad_case& c : {
             bad_case{R"({"label":1,"label":0})", "label", "label"},
             bad_case{R"({"data":{"x":1,"y":2,"x":1}})", "data.x", "x"},
             bad_case{R"({"instances":[{"features":{}},{"features":{"a":1,"a":1}}]})",
                      "instances[1].features.a", "a"},
             bad_case{R"([{"s":1},{"s":1,"s":2}])", "[1].s", "s"},
             bad_case{R"({"":1,"":2})", "", ""},
             bad_case{R"({"a.b":{"c":1,"c":2}})", "a.b.c", "c"},
         }) {
        INFO(c.text);
        auto j = parse_json_input(c.text);
        REQUIRE_FALSE(j.is_ok());
        CHECK(j.error().kind() == error_kind::invalid_argument);
        CHECK(j.error().field() == c.field);
        CHECK(j.error().message() ==
              "the key \"" + c.key + "\" appears twice in one object; send each field once");
    }
    // The same key in two objects, or in an object and its parent, is no repeat.
    auto ok = parse_json_input(R"({"a":{"a":1},"b":[{"a":1},{"a":2}]})");
    REQUIRE(ok.is_ok());
    CHECK((*ok)["b"][1]["a"] == 2);
    // The instance a repeated key is in, as for an unreadable value.
    CHECK(json_error_instance(R"({"instances":[{},{},{"features":{"a":1,"a":1}}]})") ==
          std::optional<std::size_t>(2));
    // Many keys before the repeat, or before a syntax error, are named alike
    // (anyone may send such a body; the second pass that names the place
    // searched a list of the object's keys for each key: 13 s for 80,000).
    std::string many = R"({"data":{)";
    for (int i = 0; i < 50000; ++i)
        many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    auto repeated = parse_json_input(many + R"("k7":0}})");
    REQUIRE_FALSE(repeated.is_ok());
    CHECK(repeated.error().field() == "data.k7");
    auto broken = parse_json_input(many + R"("z":NaN}})");
    REQUIRE_FALSE(broken.is_ok());
    CHECK(broken.error().field() == "data.z");
}

TEST_CASE("parse_json_input says why malformed JSON is malformed", "[json_input]") {
    for (const std::string& text : {std::string(""), std::string("{\"a\":"), std::string("{} x"),
                                    std::string("{'a':1}"), std::string("[1,]")}) {
        INFO(text);
        auto j = parse_json_input(text);
        REQUIRE_FALSE(j.is_ok());
        CHECK(j.error().kind() == error_kind::invalid_argument);
        CHECK(j.error().field().empty());
        std::string nlohmann_says;
        try {
            nlohmann::json parsed = nlohmann::json::parse(text);
            FAIL("nlohmann parsed it: " << parsed.dump());
        } catch (const nlohmann::json::parse_error& e) {
            nlohmann_says = e.what();
        }
        REQUIRE_FALSE(nlohmann_says.empty());
        CHECK(j.error().message() == "malformed JSON: " + nlohmann_says);
    }
    // A value JSON cannot hold names its field.
    auto nan = parse_json_input(R"({"data":{"x":NaN}})");
    REQUIRE_FALSE(nan.is_ok());
    CHECK(nan.error().field() == "data.x");
    auto big = parse_json_input(R"({"instances":[{"features":{"y":1e999}}]})");
    REQUIRE_FALSE(big.is_ok());
    CHECK(big.error().field() == "instances[0].features.y");
    CHECK_THAT(big.error().message(), Catch::Contains("1e999"));
}

TEST_CASE("parse_json_input stops at 64 levels of nesting, naming where", "[json_input]") {
    // Built whole first, a 16 MB body of "[[[[…" took 600 MB before any
    // reader could refuse it.
    auto nested = [](std::size_t depth) {
        return "{\"a\":" + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}";
    };
    CHECK(parse_json_input(nested(64)).is_ok());
    auto deep = parse_json_input(nested(65));
    REQUIRE_FALSE(deep.is_ok());
    CHECK(deep.error().kind() == error_kind::invalid_argument);
    CHECK(deep.error().message() == "JSON nested deeper than 64 levels");
    std::string where = "a";
    for (int i = 0; i < 63; ++i) where += "[0]";
    CHECK(deep.error().field() == where);  // the object, then 63 arrays
    auto huge = parse_json_input(std::string(8'000'000, '[') + std::string(8'000'000, ']'));
    REQUIRE_FALSE(huge.is_ok());
    CHECK(huge.error().message() == "JSON nested deeper than 64 levels");
}

TEST_CASE("check_text finds what makes a name or a reason unusable as shown text", "[json_input]") {
    CHECK(check_text("a reason", false).issue == text_issue::none);
    CHECK(check_text("caf\xc3\xa9", false).chars == 4);
    CHECK(check_text("", false).issue == text_issue::blank);
    CHECK(check_text(" \xc2\xa0\xe2\x80\x8b", false).issue == text_issue::blank);  // nbsp, zwsp
    CHECK(check_text(std::string("a\0b", 3), true).issue == text_issue::control);
    CHECK(check_text("two\nlines", false).issue == text_issue::control);
    CHECK(check_text("two\n\tlines", true).issue == text_issue::none);
    CHECK(check_text("\n\t", true).issue == text_issue::blank);
    CHECK(check_text("ok\xe2\x80\xaegpj.exe", true).issue == text_issue::direction);  // U+202E
    CHECK(check_text("\xc3", true).issue == text_issue::not_utf8);
    CHECK(check_text("\xed\xa0\x80", true).issue == text_issue::not_utf8);  // a surrogate
}

TEST_CASE("a log message is one line: control characters are escaped", "[log]") {
    std::string line;
    append_log_text(line, "ops\n2026-12-05T00:00:00Z info serve: forged\r\t\x01\x7f caf\xc3\xa9");
    CHECK(line == "ops\\n2026-12-05T00:00:00Z info serve: forged\\r\\t\\x01\\x7f caf\xc3\xa9");
    CHECK(line.find('\n') == std::string::npos);
    // A character that turns the text's direction or separates lines, by
    // its number; other characters, and bytes that are not UTF-8, as they
    // came.
    line.clear();
    append_log_text(line,
                    "user \xe2\x80\xaegpj.exe \xe2\x81\xa9\xd8\x9c \xe2\x80\xa9x \xff\xc3\xa9");
    CHECK(line == "user \\u202egpj.exe \\u2069\\u061c \\u2029x \xff\xc3\xa9");
}

TEST_CASE("comma_fields keeps empty fields; comma_names drops them", "[json_input]") {
    using views = std::vector<std::string_view>;
    CHECK(comma_fields("a,b,,c") == views{"a", "b", "", "c"});
    CHECK(comma_fields("") == views{""});
    CHECK(comma_fields("a,") == views{"a", ""});
    CHECK(comma_fields(",") == views{"", ""});
    CHECK(comma_names("a,b,,c,") == std::vector<std::string>{"a", "b", "c"});
    CHECK(comma_names(",,").empty());
    CHECK(comma_names("").empty());
}
