// Unit tests for the migrations runner (store/migrations.h): the schema a
// fresh database gets, the file's identity (application_id, user_version),
// idempotence, and refusing databases that are not ours or are too new.
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "store/db.h"
#include "store/facts.h"
#include "store/migrations.h"
#include "store/registry.h"
#include "store/time_util.h"

#include "tests/unit/test_support.h"

using namespace kennel;
using kennel::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

struct schema_object {
    std::string type;
    std::string name;
    std::string table;
    bool operator<(const schema_object& o) const {
        return std::tie(type, name, table) < std::tie(o.type, o.name, o.table);
    }
    bool operator==(const schema_object& o) const {
        return type == o.type && name == o.name && table == o.table;
    }
};

std::ostream& operator<<(std::ostream& os, const schema_object& o) {
    return os << o.type << " " << o.name << " on " << o.table;
}

// Every object SQLite did not make itself (autoindexes are checked apart).
std::set<schema_object> schema_objects(connection& c) {
    statement st(c,
                 "SELECT type, name, tbl_name FROM sqlite_schema"
                 " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name");
    std::set<schema_object> out;
    while (st.step()) out.insert({st.column_text(0), st.column_text(1), st.column_text(2)});
    return out;
}

std::vector<std::string> columns(connection& c, const std::string& table) {
    statement st(c, "SELECT name FROM pragma_table_info(?) ORDER BY cid");
    st.bind(1, table);
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.column_text(0));
    return out;
}

std::map<std::string, std::string> column_types(connection& c, const std::string& table) {
    statement st(c, "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?)");
    st.bind(1, table);
    std::map<std::string, std::string> out;
    while (st.step()) {
        out[st.column_text(0)] = st.column_text(1) + (st.column_int(2) ? " NOT NULL" : "") +
                                 (st.column_int(3) ? " PK" : "");
    }
    return out;
}

std::vector<std::string> index_columns(connection& c, const std::string& index) {
    statement st(c, "SELECT name FROM pragma_index_info(?) ORDER BY seqno");
    st.bind(1, index);
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.column_text(0));
    return out;
}

// Names created by migrations after 0001 (tables, indexes, triggers, views),
// so this test stays exact about 0001 while later issues add their own.
// A small word scanner rather than std::regex: GCC 12 with the sanitizers
// reports -Wmaybe-uninitialized inside <regex>, which -Werror turns fatal.
std::set<std::string> names_created_after_first() {
    auto upper = [](std::string w) {
        for (char& ch : w) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        return w;
    };
    std::set<std::string> out;
    for (const migration& m : known_migrations()) {
        if (m.number <= 1) continue;
        std::vector<std::string> words;
        std::string word;
        for (char ch : m.sql + " ") {
            if (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_') {
                word += ch;
            } else if (!word.empty()) {
                words.push_back(word);
                word.clear();
            }
        }
        for (std::size_t i = 0; i + 1 < words.size(); ++i) {
            if (upper(words[i]) != "CREATE") continue;
            std::size_t j = i + 1;
            if (upper(words[j]) == "UNIQUE" || upper(words[j]) == "TEMP") ++j;
            if (j >= words.size()) break;
            std::string kind = upper(words[j]);
            if (kind != "TABLE" && kind != "INDEX" && kind != "TRIGGER" && kind != "VIEW") continue;
            ++j;
            if (j + 2 < words.size() && upper(words[j]) == "IF" && upper(words[j + 1]) == "NOT" &&
                upper(words[j + 2]) == "EXISTS") {
                j += 3;
            }
            if (j < words.size()) out.insert(words[j]);
        }
    }
    return out;
}

std::int64_t count_rows(connection& c, const std::string& sql) {
    statement st(c, sql);
    REQUIRE(st.step());
    return st.column_int(0);
}

int newest_known() { return known_migrations().back().number; }

// Leaves c as Kennel did at `schema`: migrations up to it applied and
// recorded, the file marked. Runs in the caller's transaction.
void apply_migrations_up_to(connection& c, int schema) {
    c.exec(
        "CREATE TABLE schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at INTEGER NOT NULL) STRICT");
    for (const migration& m : known_migrations()) {
        if (m.number > schema) break;
        c.exec(m.sql);
        statement(c, "INSERT INTO schema_migrations VALUES (?,?,?)")
            .bind(1, m.number)
            .bind(2, m.name)
            .bind(3, std::int64_t{1})
            .run();
    }
    c.exec("PRAGMA application_id = " + std::to_string(kennel_application_id));
    c.exec("PRAGMA user_version = " + std::to_string(schema));
}

}  // namespace

TEST_CASE("the binary embeds numbered migrations in order, starting with 0001_facts",
          "[migrations]") {
    const auto& all = known_migrations();
    REQUIRE_FALSE(all.empty());
    CHECK(all.front().number == 1);
    CHECK(all.front().name == "0001_facts");
    CHECK(all.front().sql.find("CREATE TABLE facts") != std::string::npos);
    for (std::size_t i = 0; i < all.size(); ++i) {
        INFO("migration " << all[i].name);
        CHECK(all[i].number == static_cast<int>(i) + 1);  // forward-only, no gaps
        char prefix[8];
        std::snprintf(prefix, sizeof prefix, "%04d_", all[i].number);
        CHECK(all[i].name.rfind(prefix, 0) == 0);
        CHECK_FALSE(all[i].sql.empty());
    }
}

TEST_CASE("migrate on a fresh file creates exactly the foundation schema", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    status s = migrate(c);
    INFO(s.to_string());
    REQUIRE(s.is_ok());

    const std::set<schema_object> foundation = {
        {"table", "facts", "facts"},
        {"table", "stream_stats", "stream_stats"},
        {"table", "schema_migrations", "schema_migrations"},
        {"index", "facts_by_stream_entity_time", "facts"},
        {"index", "facts_by_stream_time", "facts"},
        {"trigger", "facts_reject_update", "facts"},
        {"trigger", "facts_reject_delete", "facts"},
        {"trigger", "facts_count_stream", "facts"},
    };
    const std::set<std::string> later = names_created_after_first();
    const std::set<schema_object> actual = schema_objects(c);
    for (const schema_object& o : foundation) {
        INFO("expected " << o);
        CHECK(actual.count(o) == 1);
    }
    for (const schema_object& o : actual) {
        INFO("unexpected " << o << " (neither 0001 nor a later migration creates it)");
        CHECK((foundation.count(o) == 1 || later.count(o.name) == 1));
    }

    CHECK(columns(c, "facts") == std::vector<std::string>{"id", "idempotency_key", "stream",
                                                          "entity", "event_time", "ingest_time",
                                                          "data", "corrects"});
    auto ft = column_types(c, "facts");
    CHECK(ft["id"] == "INTEGER PK");
    CHECK(ft["idempotency_key"] == "TEXT NOT NULL");
    CHECK(ft["stream"] == "TEXT NOT NULL");
    CHECK(ft["entity"] == "TEXT NOT NULL");
    CHECK(ft["event_time"] == "INTEGER NOT NULL");
    CHECK(ft["ingest_time"] == "INTEGER NOT NULL");
    CHECK(ft["data"] == "TEXT NOT NULL");
    CHECK(ft["corrects"] == "INTEGER");

    CHECK(columns(c, "stream_stats") ==
          std::vector<std::string>{"stream", "fact_count", "first_event_time", "last_event_time",
                                   "last_ingest_time", "max_fact_id"});
    // STRICT makes a PRIMARY KEY column NOT NULL as well.
    CHECK(column_types(c, "stream_stats")["stream"] == "TEXT NOT NULL PK");
    CHECK(columns(c, "schema_migrations") ==
          std::vector<std::string>{"number", "name", "applied_at"});

    // STRICT tables, so a wrong type is an error rather than silently stored.
    CHECK(count_rows(c, "SELECT count(*) FROM pragma_table_list WHERE strict = 1 AND name IN "
                        "('facts','stream_stats','schema_migrations')") == 3);

    CHECK(index_columns(c, "facts_by_stream_entity_time") ==
          std::vector<std::string>{"stream", "entity", "event_time", "id"});
    CHECK(index_columns(c, "facts_by_stream_time") ==
          std::vector<std::string>{"stream", "event_time", "id"});
    // idempotency_key is UNIQUE: SQLite keeps an automatic unique index on it.
    CHECK(count_rows(c,
                     "SELECT count(*) FROM pragma_index_list('facts') il"
                     " JOIN pragma_index_info(il.name) ii"
                     " WHERE il.\"unique\" = 1 AND il.origin = 'u' AND ii.name = 'idempotency_key'") ==
          1);
    // corrects references facts(id).
    CHECK(count_rows(c,
                     "SELECT count(*) FROM pragma_foreign_key_list('facts')"
                     " WHERE \"from\" = 'corrects' AND \"table\" = 'facts' AND \"to\" = 'id'") == 1);
}

TEST_CASE("migrate marks the file with Kennel's application_id and the schema version",
          "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    CHECK(c.pragma_int("application_id") == 0);
    CHECK(c.pragma_int("user_version") == 0);
    REQUIRE(migrate(c).is_ok());
    CHECK(c.pragma_int("application_id") == 0x4B4E4E4C);
    CHECK(c.pragma_int("application_id") == kennel_application_id);
    CHECK(c.pragma_int("user_version") == newest_known());
    // One row per applied migration, with its name and a plausible time.
    CHECK(count_rows(c, "SELECT count(*) FROM schema_migrations") ==
          static_cast<std::int64_t>(known_migrations().size()));
    statement st(c, "SELECT number, name, applied_at FROM schema_migrations ORDER BY number");
    REQUIRE(st.step());
    CHECK(st.column_int(0) == 1);
    CHECK(st.column_text(1) == "0001_facts");
    micros applied = st.column_int(2);
    CHECK(applied <= now_micros());
    CHECK(applied > now_micros() - 60LL * 1000000);
}

TEST_CASE("migrate is idempotent: a second run changes nothing", "[migrations]") {
    temp_dir dir;
    const std::string path = dir.file("kennel.db");
    std::set<schema_object> first_schema;
    std::string first_applied;
    {
        connection c(path, {});
        REQUIRE(migrate(c).is_ok());
        c.exec("INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time, data)"
               " VALUES ('k', 's', 'e', 1, 2, '{}')");
        first_schema = schema_objects(c);
        statement st(c, "SELECT group_concat(number || ':' || applied_at) FROM schema_migrations");
        REQUIRE(st.step());
        first_applied = st.column_text(0);
    }
    connection c(path, {});
    REQUIRE(migrate(c).is_ok());
    REQUIRE(migrate(c).is_ok());
    CHECK(schema_objects(c) == first_schema);
    statement st(c, "SELECT group_concat(number || ':' || applied_at) FROM schema_migrations");
    REQUIRE(st.step());
    CHECK(st.column_text(0) == first_applied);
    CHECK(count_rows(c, "SELECT count(*) FROM facts") == 1);  // data untouched
    CHECK(c.pragma_int("user_version") == newest_known());
}

TEST_CASE("migrate refuses a database written by a newer Kennel and leaves it alone",
          "[migrations]") {
    temp_dir dir;
    const std::string path = dir.file("kennel.db");
    {
        connection c(path, {});
        REQUIRE(migrate(c).is_ok());
        c.exec("PRAGMA user_version = " + std::to_string(newest_known() + 41));
    }
    connection c(path, {});
    status s = migrate(c);
    REQUIRE_FALSE(s.is_ok());
    CHECK(s.kind() == error_kind::failed_precondition);
    CHECK_THAT(s.message(), Catch::Contains("newer Kennel"));
    CHECK_THAT(s.message(), Catch::Contains(std::to_string(newest_known() + 41)));
    CHECK(c.pragma_int("user_version") == newest_known() + 41);
    CHECK(count_rows(c, "SELECT count(*) FROM schema_migrations") ==
          static_cast<std::int64_t>(known_migrations().size()));
    // migration_status refuses it the same way.
    auto st = migration_status(c);
    REQUIRE_FALSE(st.is_ok());
    CHECK_THAT(st.error().message(), Catch::Contains("newer Kennel"));
}

TEST_CASE("migrate refuses a foreign SQLite file without touching it", "[migrations]") {
    temp_dir dir;
    SECTION("a file with a table of its own") {
        const std::string path = dir.file("other.db");
        {
            connection c(path, {});
            c.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);"
                   "INSERT INTO customers (name) VALUES ('ada')");
        }
        connection c(path, {});
        status s = migrate(c);
        REQUIRE_FALSE(s.is_ok());
        CHECK(s.kind() == error_kind::failed_precondition);
        CHECK_THAT(s.message(), Catch::Contains("not a Kennel database"));
        CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema WHERE name = 'facts'") == 0);
        CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_migrations'") == 0);
        CHECK(count_rows(c, "SELECT count(*) FROM customers") == 1);
        CHECK(c.pragma_int("application_id") == 0);
        CHECK(c.pragma_int("user_version") == 0);
    }
    SECTION("a file with another program's application_id") {
        const std::string path = dir.file("app.db");
        {
            connection c(path, {});
            c.exec("PRAGMA application_id = 1234");
        }
        connection c(path, {});
        status s = migrate(c);
        REQUIRE_FALSE(s.is_ok());
        CHECK_THAT(s.message(), Catch::Contains("not a Kennel database"));
        CHECK_THAT(s.message(), Catch::Contains("1234"));
        CHECK(c.pragma_int("application_id") == 1234);
        CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema") == 0);
    }
    SECTION("a file with a user_version but no application_id") {
        const std::string path = dir.file("uv.db");
        {
            connection c(path, {});
            c.exec("PRAGMA user_version = 1");
        }
        connection c(path, {});
        status s = migrate(c);
        REQUIRE_FALSE(s.is_ok());
        CHECK_THAT(s.message(), Catch::Contains("not a Kennel database"));
        CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema") == 0);
    }
}

TEST_CASE("migration_status lists every known migration, pending then applied",
          "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    auto before = migration_status(c);
    REQUIRE(before.is_ok());
    REQUIRE(before->size() == known_migrations().size());
    for (const migration_state& m : *before) {
        INFO(m.name);
        CHECK_FALSE(m.applied_at.has_value());
    }
    CHECK((*before)[0].number == 1);
    CHECK((*before)[0].name == "0001_facts");

    REQUIRE(migrate(c).is_ok());
    auto after = migration_status(c);
    REQUIRE(after.is_ok());
    REQUIRE(after->size() == known_migrations().size());
    for (std::size_t i = 0; i < after->size(); ++i) {
        const migration_state& m = (*after)[i];
        INFO(m.name);
        CHECK(m.number == known_migrations()[i].number);
        CHECK(m.name == known_migrations()[i].name);
        REQUIRE(m.applied_at.has_value());
        auto t = parse_rfc3339(*m.applied_at);
        REQUIRE(t.has_value());
        CHECK(*t <= now_micros());
    }
}

TEST_CASE("migration_status works on a read-only connection", "[migrations]") {
    temp_dir dir;
    const std::string path = dir.file("kennel.db");
    {
        connection c(path, {});
        REQUIRE(migrate(c).is_ok());
    }
    open_options ro;
    ro.read_only = true;
    connection c(path, ro);
    auto st = migration_status(c);
    REQUIRE(st.is_ok());
    REQUIRE_FALSE(st->empty());
    CHECK((*st)[0].name == "0001_facts");
    CHECK((*st)[0].applied_at.has_value());
}

TEST_CASE("the migrated schema enforces its constraints", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    REQUIRE(migrate(c).is_ok());
    auto insert = [&](const std::string& key, const std::string& stream, const std::string& data) {
        statement st(c,
                     "INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
                     " data) VALUES (?, ?, 'e', 1, 1, ?)");
        st.bind(1, key).bind(2, stream).bind(3, data);
        st.run();
    };
    insert("ok", "s", R"({"a":1})");
    auto expect_constraint = [](auto&& fn) {
        try {
            fn();
            FAIL("expected a constraint violation");
        } catch (const db_error& e) {
            CHECK(e.is_constraint());
        }
    };
    expect_constraint([&] { insert("ok", "s", R"({"a":1})"); });      // UNIQUE key
    expect_constraint([&] { insert("k2", "", R"({"a":1})"); });       // empty stream
    expect_constraint([&] { insert("k3", "s", "[1,2]"); });           // data not an object
    expect_constraint([&] { insert("k4", "s", "{not json"); });       // data not JSON
    expect_constraint([&] {                                          // corrects a missing fact
        c.exec("INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
               " data, corrects) VALUES ('k5', 's', 'e', 1, 1, '{}', 999)");
    });
    expect_constraint([&] {                                          // STRICT types
        c.exec("INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
               " data) VALUES ('k6', 's', 'e', 'noon', 1, '{}')");
    });
    CHECK(count_rows(c, "SELECT count(*) FROM facts") == 1);
}

namespace {

// A database as Kennel left it at schema 6, with three logged predictions.
void make_schema_6_with_predictions(connection& c) {
    transaction tx(c);
    apply_migrations_up_to(c, 6);
    c.exec("INSERT INTO predictions (id, model, version, arm, shadow, entity, time, value,"
           " label, probabilities, fallback, reason, latency_us, features_hash) VALUES"
           " ('f00d', 'likes', 3, 'live', 0, 'post-1', 200, 41.5, NULL, NULL, 0, '', 120, 'aa'),"
           " ('beef', 'likes', NULL, 'fallback', 0, NULL, 100, 7.0, NULL, NULL, 1,"
           "  'no_version -> constant', 15, 'bb'),"
           " ('cafe-b', 'clicks', 2, 'b', 1, 'u', 300, 1.0, '1', '[0.25,0.75]', 0, '', 90, 'cc')");
    tx.commit();
}

}  // namespace

namespace {

// The log's rows, every column as text, in (model, time, id) order.
std::vector<std::string> logged_predictions(connection& c) {
    statement st(c,
                 "SELECT model, time, id, version, arm, shadow, entity, value, label, probabilities,"
                 " fallback, reason, latency_us, features_hash FROM predictions ORDER BY model, time, id");
    std::vector<std::string> rows;
    while (st.step()) {
        std::string r;
        for (int i = 0; i < 14; ++i) r += (st.is_null(i) ? "NULL" : st.column_text(i)) + "|";
        rows.push_back(r);
    }
    return rows;
}

const std::vector<std::string> schema_6_rows = {
    "clicks|300|cafe-b|2|b|1|u|1.0|1|[0.25,0.75]|0||90|cc|",
    "likes|100|beef|NULL|fallback|0|NULL|7.0|NULL|NULL|1|no_version -> constant|15|bb|",
    "likes|200|f00d|3|live|0|post-1|41.5|NULL|NULL|0||120|aa|",
};

}  // namespace

TEST_CASE("0007 moves the prediction log into one B-tree and keeps every row", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    make_schema_6_with_predictions(c);
    // 0007 alone: 0008 turns the table into segments.
    for (const migration& m : known_migrations()) {
        if (m.number == 7) c.exec(m.sql);
    }
    // One B-tree: WITHOUT ROWID, no separate index.
    CHECK(count_rows(c, "SELECT count(*) FROM pragma_table_list WHERE name = 'predictions'"
                        " AND wr = 1 AND strict = 1") == 1);
    CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
                        " AND tbl_name = 'predictions' AND sql IS NOT NULL") == 0);
    // Every row and every column survived.
    CHECK(logged_predictions(c) == schema_6_rows);
}

TEST_CASE("0008 moves the prediction log into segments and keeps every row readable", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    make_schema_6_with_predictions(c);
    status s = migrate(c);
    INFO(s.to_string());
    REQUIRE(s.is_ok());
    CHECK(c.pragma_int("user_version") >= 8);
    // One segment per model here; `predictions` is now a view over them.
    CHECK(count_rows(c, "SELECT count(*) FROM prediction_segments") == 2);
    CHECK(count_rows(c, "SELECT sum(size) FROM prediction_segments") == 3);
    CHECK(count_rows(c, "SELECT first_time FROM prediction_segments WHERE model = 'likes'") == 100);
    CHECK(count_rows(c, "SELECT last_time FROM prediction_segments WHERE model = 'likes'") == 200);
    CHECK(count_rows(c, "SELECT count(*) FROM sqlite_schema WHERE name = 'predictions'"
                        " AND type = 'view'") == 1);
    CHECK(logged_predictions(c) == schema_6_rows);

    // What Kennel writes now reads back through the same view.
    prediction_row p;
    const std::string id = "0123456789abcdef0123456789abcdef";
    std::copy(id.begin(), id.end(), p.id.begin());
    p.model = "likes";
    p.version = 4;
    p.arm = "b";
    p.shadow = true;
    p.entity = "post-\"2\"";
    p.time = 400;
    p.value = 1;
    p.label = "yes";
    p.probabilities.assign({0.5, 0.5});
    p.fallback = true;
    p.reason = "model_error: x -> baseline";
    p.latency_us = 33;
    p.features_hash = 0x00ff00ff00ff00ffULL;
    prediction_row q;
    std::copy(id.begin(), id.end(), q.id.begin());
    q.id[0] = 'f';
    q.model = "other";
    q.arm = "live";
    q.time = 500;
    q.latency_us = 1;
    insert_predictions(c, {p, q});
    CHECK(count_rows(c, "SELECT count(*) FROM prediction_segments") == 4);  // one per model
    auto rows = logged_predictions(c);
    REQUIRE(rows.size() == 5);
    CHECK(rows[4] == "other|500|f123456789abcdef0123456789abcdef|NULL|live|0|NULL|NULL|NULL|NULL|0||1|"
                     "0000000000000000|");
    CHECK(rows[3] == "likes|400|0123456789abcdef0123456789abcdef-b|4|b|1|post-\"2\"|1.0|yes|[0.5,0.5]|1|"
                     "model_error: x -> baseline|33|00ff00ff00ff00ff|");
}

TEST_CASE("0019 reads each entry's decision, NULL in entries from before it", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    make_schema_6_with_predictions(c);  // 0008 writes its rows as entries of 13
    status s = migrate(c);
    INFO(s.to_string());
    REQUIRE(s.is_ok());
    // Someone's report over the log: 0019 dropping and making the view
    // again (run once more here) leaves it working.
    c.exec("CREATE VIEW recent_predictions AS SELECT id, time FROM predictions");
    for (const migration& m : known_migrations()) {
        if (m.number == 19) c.exec(m.sql);
    }
    CHECK(count_rows(c, "SELECT count(*) FROM recent_predictions") == 3);
    CHECK(count_rows(c, "SELECT count(*) FROM predictions WHERE decision IS NULL") == 3);
    const std::string id = "0123456789abcdef0123456789abcdef";
    std::vector<prediction_row> rows(3);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        std::copy(id.begin(), id.end(), rows[i].id.begin());
        rows[i].id[0] = static_cast<char>('a' + i);
        rows[i].model = "spam";
        rows[i].arm = "live";
        rows[i].time = 1000 + static_cast<micros>(i);
    }
    rows[0].decision = true;
    rows[1].decision = false;
    insert_predictions(c, rows);
    CHECK(count_rows(c, "SELECT count(*) FROM predictions WHERE model = 'spam' AND decision = 1") ==
          1);
    CHECK(count_rows(c, "SELECT count(*) FROM predictions WHERE model = 'spam' AND decision = 0") ==
          1);
    CHECK(count_rows(
              c, "SELECT count(*) FROM predictions WHERE model = 'spam' AND decision IS NULL") ==
          1);
    CHECK(count_rows(c, "SELECT count(*) FROM recent_predictions") == 6);
}

TEST_CASE("a migration that fails half-way leaves the database as it was", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    make_schema_6_with_predictions(c);
    // A view over the log (someone's report) makes 0007's last statement,
    // the rename, fail after its copy and its DROP TABLE have run.
    c.exec("CREATE VIEW recent_predictions AS SELECT id, time FROM predictions");
    const auto before = schema_objects(c);

    status s = migrate(c);
    CHECK_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Matchers::Contains("0007"));
    CHECK(c.pragma_int("user_version") == 6);
    CHECK(schema_objects(c) == before);
    CHECK(count_rows(c, "SELECT count(*) FROM predictions") == 3);
    CHECK(count_rows(c, "SELECT count(*) FROM schema_migrations WHERE number = 7") == 0);
}

TEST_CASE("old prediction-log segments are deleted oldest first, newer ones kept", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    REQUIRE(migrate(c).is_ok());
    // One segment per flush: times 100, 200, ..., 600 (each its own insert).
    for (int i = 1; i <= 6; ++i) {
        prediction_row p;
        p.model = i % 2 ? "a" : "b";
        p.arm = "live";
        p.time = 100 * i;
        insert_predictions(c, {p});
    }
    CHECK(expire_prediction_segments(c, 250, 1).segments == 1);  // at most `limit`
    CHECK(count_rows(c, "SELECT min(last_time) FROM prediction_segments") == 200);
    const auto expired = expire_prediction_segments(c, 350);
    CHECK(expired.segments == 2);
    CHECK(expired.entries == 2);  // one prediction in each
    CHECK(expire_prediction_segments(c, 350).segments == 0);
    CHECK(count_rows(c, "SELECT count(*) FROM predictions") == 3);
    CHECK(count_rows(c, "SELECT min(time) FROM predictions") == 400);
    // Every model's are looked at, a model with none to delete included,
    // and the limit counts across them.
    for (const char* model : {"", "d", "e"}) {  // "" sorts first: looked at too
        prediction_row p;
        p.model = model;
        p.arm = "live";
        p.time = 450;
        insert_predictions(c, {p});
    }
    CHECK(expire_prediction_segments(c, 460, 2).segments == 2);
    CHECK(expire_prediction_segments(c, 460).segments == 2);
    CHECK(count_rows(c, "SELECT count(*) FROM prediction_segments") == 2);
    CHECK(count_rows(c, "SELECT min(last_time) FROM prediction_segments") == 500);
}

// The log encodes entries on many threads and merges them per model before
// one insert: the merged segments read back as if encoded at once.
TEST_CASE("prediction entries encoded apart and merged read back as one segment per model",
          "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    REQUIRE(migrate(c).is_ok());
    auto row = [](const std::string& model, micros time, char tag) {
        prediction_row p;
        p.id.fill(tag);
        p.model = model;
        p.arm = "live";
        p.time = time;
        p.value = static_cast<double>(time);
        return p;
    };
    // Three "threads", each with its own open segments.
    std::vector<prediction_segment> t1, t2, t3, merged;
    const std::vector<prediction_row> r1 = {row("a", 300, '1'), row("b", 50, '2')};
    const std::vector<prediction_row> r2 = {row("a", 100, '3'), row("a", 900, '4')};
    const std::vector<prediction_row> r3 = {row("b", 70, '5')};
    add_prediction_entries(t1, r1.data(), r1.size());
    add_prediction_entries(t2, r2.data(), r2.size());
    add_prediction_entries(t3, r3.data(), r3.size());
    add_prediction_entries(t3, nullptr, 0);
    for (auto* t : {&t1, &t2, &t3}) {
        for (auto& seg : *t) merge_prediction_entries(merged, std::move(seg));
    }
    close_prediction_segments(merged);
    REQUIRE(merged.size() == 2);
    CHECK(merged[0].model == "a");
    CHECK(merged[0].size == 3);
    CHECK(merged[0].first_time == 100);
    CHECK(merged[0].last_time == 900);
    CHECK(merged[1].size == 2);
    CHECK(merged[1].first_time == 50);
    CHECK(merged[1].last_time == 70);
    insert_prediction_segments(c, merged);
    CHECK(count_rows(c, "SELECT count(*) FROM prediction_segments") == 2);
    const auto rows = logged_predictions(c);
    REQUIRE(rows.size() == 5);
    CHECK(rows[0].starts_with("a|100|33333333333333333333333333333333|NULL|live|0|NULL|100.0|"));
    CHECK(rows[2].starts_with("a|900|44444444444444444444444444444444|"));
    CHECK(rows[4].starts_with("b|70|55555555555555555555555555555555|NULL|live|0|NULL|70.0|"));
    // The same rows encoded at once give the same entries.
    std::vector<prediction_row> all = r1;
    all.insert(all.end(), r2.begin(), r2.end());
    all.insert(all.end(), r3.begin(), r3.end());
    const auto once = encode_predictions(all);
    REQUIRE(once.size() == 2);
    CHECK(once[0].entries == merged[0].entries);
    CHECK(once[1].entries == merged[1].entries);
}

TEST_CASE("0010 records where each stored correction's chain began", "[migrations]") {
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    {
        // A database at schema 9 with chains of corrections: 1 <- 2 <- 4,
        // 1 <- 3, 5 alone, and 6 in another stream correcting 5 (stored
        // before such corrections were refused).
        transaction tx(c);
        apply_migrations_up_to(c, 9);
        c.exec(
            "INSERT INTO facts (id, idempotency_key, stream, entity, event_time, ingest_time,"
            " data, corrects) VALUES"
            " (1, 'k1', 's', 'e', 100, 1, '{\"y\":1}', NULL),"
            " (2, 'k2', 's', 'e', 300, 1, '{\"y\":2}', 1),"
            " (3, 'k3', 's', 'e', 200, 1, '{\"y\":3}', 1),"
            " (4, 'k4', 's', 'e', 50, 1, '{\"y\":4}', 2),"
            " (5, 'k5', 's', 'f', 400, 1, '{\"y\":5}', NULL),"
            " (6, 'k6', 't', 'f', 500, 1, '{\"y\":6}', 5)");
        tx.commit();
    }
    REQUIRE(migrate(c).is_ok());
    auto rows = [&c] {
        statement st(c, "SELECT fact, stream, origin, origin_time FROM fact_origins ORDER BY fact");
        std::vector<std::string> out;
        while (st.step()) {
            out.push_back(std::to_string(st.column_int(0)) + " " + st.column_text(1) + " " +
                          std::to_string(st.column_int(2)) + " " +
                          std::to_string(st.column_int(3)));
        }
        return out;
    };
    CHECK(rows() == std::vector<std::string>{"2 s 1 100", "3 s 1 100", "4 s 1 100"});
    // New corrections are recorded as they are stored, by the trigger.
    c.exec(
        "INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time, data,"
        " corrects) VALUES ('k7', 's', 'e', 900, 1, '{\"y\":7}', 4),"
        " ('k8', 's', 'f', 900, 1, '{\"y\":8}', 5), ('k9', 'u', 'f', 900, 1, '{}', 5)");
    CHECK(rows() == std::vector<std::string>{"2 s 1 100", "3 s 1 100", "4 s 1 100", "7 s 1 100",
                                             "8 s 5 400"});
    // The chain's newest stands: 7 of chain 1, 8 of chain 5; 6 and 9 stand
    // on their own in their streams.
    CHECK(count_rows(c, "SELECT count(*) FROM facts WHERE " + standing_fact_sql("facts")) == 4);
    CHECK(count_rows(c, "SELECT sum(id) FROM facts WHERE " + standing_fact_sql("facts")) ==
          7 + 8 + 6 + 9);
}

namespace {

// Model "m" with versions 1..n (revision 1, tiny artifacts).
void model_with_versions(connection& c, int n) {
    put_model(c, "m", "{}", "test");
    for (int i = 1; i <= n; ++i) {
        version_row v;
        v.model = "m";
        v.revision = 1;
        v.algorithm = "linear";
        v.params = v.snapshot = v.metrics = v.baseline_metrics = v.gate = v.features = v.timings =
            "{}";
        v.artifact = std::string(1000, static_cast<char>('a' + i));
        v.artifact_sha256 = "sha-" + std::to_string(i);
        v.status = "candidate";
        REQUIRE(insert_version(c, v) == i);
    }
}

}  // namespace

TEST_CASE("0012 moves the artifact to the end of a version's row and keeps everything else",
          "[migrations]") {
    // Columns after a large BLOB are read by walking its overflow pages: a
    // version's metrics took 0.9 s to read beside a 361 MB artifact.
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    {
        transaction tx(c);
        apply_migrations_up_to(c, 11);
        model_with_versions(c, 4);
        // Live 2, then 3, as move_alias writes them (it reads archives,
        // which schema 11 does not have).
        c.exec(
            "INSERT INTO aliases (model, alias, version, updated_at) VALUES ('m', 'live', 3, 2);"
            "INSERT INTO deployments (model, alias, version, previous_version, time, actor, reason)"
            " VALUES ('m', 'live', 2, NULL, 1, 't', 't'), ('m', 'live', 3, 2, 2, 't', 't')");
        REQUIRE(remove_old_artifacts(c, "m", 1).versions == std::vector<std::int64_t>{1, 2});
        tx.commit();
    }
    CHECK(columns(c, "model_versions").back() == "artifact_removed_at");  // appended by 0011
    std::vector<version_row> before;
    for (std::int64_t v = 1; v <= 4; ++v) before.push_back(*get_version(c, "m", v, true));

    REQUIRE(migrate(c).is_ok());
    CHECK(columns(c, "model_versions").back() == "artifact");
    CHECK(c.pragma_int("foreign_keys") == 1);  // on again after the rebuild
    CHECK(count_rows(c, "SELECT count(*) FROM pragma_foreign_key_check") == 0);
    for (std::int64_t v = 1; v <= 4; ++v) {
        INFO("version " << v);
        const auto after = get_version(c, "m", v, true);
        REQUIRE(after);
        const version_row& b = before[static_cast<std::size_t>(v - 1)];
        CHECK(after->artifact == b.artifact);
        CHECK(after->artifact_sha256 == b.artifact_sha256);
        CHECK(after->metrics == b.metrics);
        CHECK(after->created_at == b.created_at);
        CHECK(after->artifact_removed_at == b.artifact_removed_at);
    }
    CHECK(alias_version(c, "m", "live") == 3);
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{3, 2});
    // The rules came with it: immutable, never deleted, an alias only on a
    // version that exists, and retention's one change still allowed.
    auto refused = [&](const std::string& sql) {
        try {
            c.exec(sql);
        } catch (const db_error&) {
            return true;
        }
        return false;
    };
    CHECK(refused("UPDATE model_versions SET metrics = '{}' WHERE version = 3"));
    CHECK(refused("DELETE FROM model_versions WHERE version = 4"));
    CHECK(refused("INSERT INTO aliases (model, alias, version, updated_at) VALUES ('m','x',9,1)"));
    REQUIRE(move_alias(c, "m", "live", 4, "t", "t"));
    CHECK(remove_old_artifacts(c, "m", 1).versions == std::vector<std::int64_t>{3});
    CHECK(get_version(c, "m", 3, true)->artifact.empty());
}

TEST_CASE("migrations that leave a row referring to nothing change nothing", "[migrations]") {
    // Foreign keys are off while migrations run (a rebuilt table's rows are
    // away for a moment); every one is checked before the commit.
    temp_dir dir;
    connection c(dir.file("kennel.db"), {});
    {
        transaction tx(c);
        apply_migrations_up_to(c, 11);
        model_with_versions(c, 1);
        tx.commit();
    }
    c.exec("PRAGMA foreign_keys = OFF");
    c.exec("INSERT INTO aliases (model, alias, version, updated_at) VALUES ('m', 'x', 9, 1)");
    c.exec("PRAGMA foreign_keys = ON");
    status s = migrate(c);
    REQUIRE_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Contains("a row of aliases that refers to no row of "
                                            "model_versions; nothing was changed"));
    CHECK(c.pragma_int("user_version") == 11);
    CHECK(columns(c, "model_versions").back() == "artifact_removed_at");
    CHECK(c.pragma_int("foreign_keys") == 1);
}

TEST_CASE("live moving past the candidate removes that alias, recorded as superseded",
          "[migrations][aliases]") {
    testing::migrated_db db;
    connection& c = db.conn;
    model_with_versions(c, 3);
    REQUIRE(move_alias(c, "m", "candidate", 1, "policy:manual", "job 1"));
    // A person promotes a newer version: promoting "candidate" afterwards
    // would have moved live back to 1.
    REQUIRE(move_alias(c, "m", "live", 2, "admin", "reviewed"));
    CHECK_FALSE(alias_version(c, "m", "candidate"));
    auto deps = list_deployments(c, "m", 10);
    REQUIRE(deps.size() == 3);
    CHECK(deps[0].alias == "candidate");
    CHECK_FALSE(deps[0].version);
    CHECK(deps[0].previous_version == 1);
    CHECK(deps[0].actor == "admin");
    CHECK(deps[0].reason == "superseded: version 2 is now live");
    // A newer candidate stays when live moves to an older version or to it.
    REQUIRE(move_alias(c, "m", "candidate", 3, "policy:manual", "job 3"));
    REQUIRE(move_alias(c, "m", "live", 1, "admin", "back"));
    CHECK(alias_version(c, "m", "candidate") == 3);
    REQUIRE(move_alias(c, "m", "live", 3, "admin", "forward"));
    CHECK(alias_version(c, "m", "candidate") == 3);
}

TEST_CASE("live's path is replayed from every move, however many", "[migrations][aliases]") {
    testing::migrated_db db;
    connection& c = db.conn;
    model_with_versions(c, 5);
    for (std::int64_t v : {1, 2, 3, 4}) REQUIRE(move_alias(c, "m", "live", v, "t", "t"));
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{4, 3, 2, 1});
    // 10,002 moves back and forth between 3 and 4: only the newest 10,000
    // were read, which began at 3 -> 4, so the path lost 2 and 1 and the
    // first rollback's target (3) led back to 4.
    c.exec("BEGIN");
    for (int i = 0; i < 10002; ++i) {
        REQUIRE(move_alias(c, "m", "live", i % 2 == 0 ? 3 : 4, "t", "flip"));
    }
    c.exec("COMMIT");
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{4, 3, 2, 1});
    REQUIRE(move_alias(c, "m", "live", 3, "t", "rollback"));
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{3, 2, 1});
    // Forward to a new version, then removing the alias steps back off it.
    REQUIRE(move_alias(c, "m", "live", 5, "t", "t"));
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{5, 3, 2, 1});
    REQUIRE(move_alias(c, "m", "live", std::nullopt, "t", "t"));
    CHECK(live_history(c, "m") == std::vector<std::int64_t>{3, 2, 1});
}

TEST_CASE("retention removes old artifacts, never one an alias, an experiment or a rollback needs",
          "[migrations][retention]") {
    testing::migrated_db db;
    connection& c = db.conn;
    model_with_versions(c, 8);
    // Live's path 1 -> 2 -> 3 -> 5 (its last two steps: 5, 3), candidate 6,
    // an experiment on 5 with a shadow on 4, and the newest two, 7 and 8.
    for (std::int64_t v : {1, 2, 3, 5}) REQUIRE(move_alias(c, "m", "live", v, "t", "t"));
    REQUIRE(move_alias(c, "m", "candidate", 6, "t", "t"));
    auto experiment = start_experiment(
        c, "m", R"([{"name":"a","version":5,"weight":1},{"name":"s","version":4,"shadow":true}])",
        "t", "t");
    REQUIRE(experiment);
    CHECK(remove_old_artifacts(c, "m", 0).versions.empty());  // 0 keeps all

    removed_artifacts_row removed = remove_old_artifacts(c, "m", 2);
    CHECK(removed.versions == std::vector<std::int64_t>{1, 2});
    CHECK(removed.bytes == 2000);
    CHECK(removed_artifact_versions(c, "m") == std::set<std::int64_t>{1, 2});
    auto one = get_version(c, "m", 1, true);
    REQUIRE(one);
    CHECK(one->artifact.empty());
    CHECK(one->artifact_removed_at.has_value());
    CHECK(one->artifact_sha256 == "sha-1");  // the row stays as it was
    CHECK(one->artifact_bytes == 1000);
    auto three = get_version(c, "m", 3, true);
    CHECK(three->artifact == std::string(1000, 'd'));
    CHECK_FALSE(three->artifact_removed_at);
    CHECK(remove_old_artifacts(c, "m", 2).versions.empty());  // nothing more to remove

    // Nothing may name a version that cannot serve.
    status to_live = move_alias(c, "m", "live", 1, "t", "t");
    CHECK(to_live.kind() == error_kind::conflict);
    CHECK(to_live.message().find("artifact was removed by retention") != std::string::npos);
    CHECK(move_alias(c, "m", "candidate", 2, "t", "t").kind() == error_kind::conflict);
    auto arm = change_experiment(
        c, *experiment,
        R"([{"name":"a","version":5,"weight":1},{"name":"b","version":2,"weight":1}])", "t", "t");
    REQUIRE_FALSE(arm);
    CHECK(arm.error().kind() == error_kind::conflict);
    CHECK(arm.error().field() == "arms[1].version");

    // The trigger lets through that one change and no other.
    auto refused = [&](const std::string& sql,
                       const std::string& says = "model versions are immutable") {
        try {
            c.exec(sql);
        } catch (const db_error& e) {
            return std::string(e.what()).find(says) != std::string::npos;
        }
        return false;
    };
    CHECK(refused("UPDATE model_versions SET metrics = '{\"r2\": 1}' WHERE version = 3"));
    CHECK(refused("UPDATE model_versions SET artifact = x'' WHERE version = 3"));
    CHECK(
        refused("UPDATE model_versions SET artifact = x'', artifact_removed_at = 1,"
                " status = 'rejected' WHERE version = 3"));
    CHECK(
        refused("UPDATE model_versions SET artifact = x'00', artifact_removed_at = NULL"
                " WHERE version = 1"));
    CHECK(refused("UPDATE model_versions SET artifact_removed_at = 5 WHERE version = 1"));
    CHECK(refused("DELETE FROM model_versions WHERE version = 1",
                  "model versions are never deleted"));
}

TEST_CASE("the supervisor's actions are kept, never changed, the newest 10,000 at most",
          "[migrations][supervisor]") {
    testing::migrated_db db;
    connection& c = db.conn;
    for (int i = 1; i <= 5; ++i) {
        add_supervisor_action(
            c, {i, i % 2 ? "disable" : "drift", "m", i, "why " + std::to_string(i), "did"}, 3);
    }
    auto kept = recent_supervisor_actions(c, 10);
    REQUIRE(kept.size() == 3);  // past `keep`, the oldest went
    CHECK(kept.front().version == 3);
    CHECK(kept.back().version == 5);
    CHECK(kept.back().kind == "disable");
    CHECK(kept.back().reason == "why 5");
    kept = recent_supervisor_actions(c, 2);  // the newest, oldest first
    REQUIRE(kept.size() == 2);
    CHECK(kept.front().version == 4);
    CHECK_THROWS_WITH(c.exec("UPDATE supervisor_actions SET reason = 'x'"),
                      Catch::Contains("append-only"));
    CHECK_THROWS(add_supervisor_action(c, {6, "retire", "m", 6, "x", "y"}));  // no such kind
    add_supervisor_action(c, {7, "canary", "m", 7, "canary of version 7", "live moved"}, 3);
    CHECK(recent_supervisor_actions(c, 1).front().kind == "canary");
}

TEST_CASE(
    "a canary's experiment keeps its outcome: a person's change hands it over, an end "
    "records one once",
    "[migrations][canary]") {
    testing::migrated_db db;
    connection& c = db.conn;
    model_with_versions(c, 2);
    const std::string arms =
        R"([{"name":"control","version":1,"weight":0.9},{"name":"canary","version":2,"weight":0.1}])";
    const std::string canary = R"({"version":2,"against":1,"outcome":null})";
    const auto outcome = [&](std::int64_t id) {
        statement st(c, "SELECT json_extract(canary, '$.outcome') FROM experiments WHERE id = ?");
        st.bind(1, id);
        REQUIRE(st.step());
        return st.column_opt_text(0);
    };
    SECTION("ended undecided: the outcome given") {
        auto id = start_experiment(c, "m", arms, "policy:canary", "canary", canary);
        REQUIRE(id);
        CHECK(get_experiment(c, *id)->canary);
        CHECK_FALSE(outcome(*id));
        REQUIRE(end_experiment(c, *id, "policy:canary", "judged", std::nullopt, "promoted"));
        CHECK(outcome(*id) == "promoted");
    }
    SECTION("a person's change hands it over, and the end keeps that") {
        auto id = start_experiment(c, "m", arms, "policy:canary", "canary", canary);
        REQUIRE(id);
        REQUIRE(change_experiment(c, *id,
                                  R"([{"name":"control","version":1,"weight":0.5},)"
                                  R"({"name":"canary","version":2,"weight":0.5,"shadow":false}])",
                                  "admin", "mine now"));
        CHECK(outcome(*id) == "handed_over");
        REQUIRE(end_experiment(c, *id, "admin", "done"));
        CHECK(outcome(*id) == "handed_over");
    }
    SECTION("its arms sent back as they are change nothing and hand nothing over") {
        auto id = start_experiment(c, "m", arms, "policy:canary", "canary", canary);
        REQUIRE(id);
        // As the API writes them back: another key order, weights divided by their sum.
        auto same = change_experiment(
            c, *id,
            R"([{"version":1,"name":"control","shadow":false,"weight":0.9000000000000001},)"
            R"({"weight":0.1,"name":"canary","version":2}])",
            "admin", "the same");
        REQUIRE(same);
        CHECK_FALSE(*same);  // nothing recorded
        CHECK_FALSE(outcome(*id));
        auto more = change_experiment(c, *id,
                                      R"([{"name":"control","version":1,"weight":0.8},)"
                                      R"({"name":"canary","version":2,"weight":0.2}])",
                                      "admin", "more");
        REQUIRE(more);
        CHECK(*more);
        CHECK(outcome(*id) == "handed_over");
    }
    SECTION("a person's end of an undecided canary: ended") {
        auto id = start_experiment(c, "m", arms, "policy:canary", "canary", canary);
        REQUIRE(id);
        REQUIRE(end_experiment(c, *id, "admin", "stop"));
        CHECK(outcome(*id) == "ended");
    }
    SECTION("a person's experiment has no canary, before and after") {
        auto id = start_experiment(c, "m", arms, "admin", "mine");
        REQUIRE(id);
        REQUIRE(change_experiment(c, *id, arms, "admin", "again"));
        REQUIRE(end_experiment(c, *id, "admin", "done"));
        CHECK_FALSE(get_experiment(c, *id)->canary);
    }
    SECTION("only JSON is kept") {
        CHECK_THROWS(start_experiment(c, "m", arms, "policy:canary", "canary", "{not json"));
    }
}

TEST_CASE(
    "archiving a model marks it, records why, stops its jobs and experiment, and blocks "
    "changes until restored",
    "[migrations][archive]") {
    testing::migrated_db db;
    connection& c = db.conn;
    model_with_versions(c, 2);
    REQUIRE(move_alias(c, "m", "live", 1, "t", "t"));
    auto experiment =
        start_experiment(c, "m", R"([{"name":"a","version":1,"weight":1}])", "t", "t");
    REQUIRE(experiment);
    const std::int64_t queued = insert_job(c, "m", "manual", "t");
    CHECK(refuse_if_archived(c, "m", "train it"));
    CHECK(list_models(c).size() == 1);
    CHECK(list_models(c, model_filter::archived).empty());

    archive_effects effects;
    auto r = archive_model(c, "m", "admin", "replaced", effects);
    REQUIRE(r);
    CHECK(*r);
    CHECK(effects.cancelled_jobs == std::vector<std::int64_t>{queued});
    CHECK(effects.ended_experiment == *experiment);
    CHECK(get_job(c, queued)->state == job_state::cancelled);
    CHECK_FALSE(active_experiment(c, "m"));
    CHECK(get_experiment(c, *experiment)->end_reason == "model archived: replaced");
    CHECK(get_model(c, "m")->archived_at);
    CHECK(list_models(c).empty());
    CHECK(list_models(c, model_filter::archived).size() == 1);
    CHECK(list_models(c, model_filter::all).size() == 1);
    CHECK(alias_version(c, "m", "live") == 1);  // kept for the restore

    status refused = refuse_if_archived(c, "m", "train it");
    REQUIRE_FALSE(refused);
    CHECK(refused.kind() == error_kind::conflict);
    CHECK_THAT(refused.message(), Catch::Contains("model m is archived") &&
                                      Catch::Contains("by admin: replaced") &&
                                      Catch::Contains("to train it"));
    status moved = move_alias(c, "m", "live", 2, "t", "t");
    CHECK_THAT(moved.message(), Catch::Contains("is archived"));
    CHECK(alias_version(c, "m", "live") == 1);
    CHECK_FALSE(start_experiment(c, "m", R"([{"name":"a","version":2,"weight":1}])", "t", "t"));
    auto disabled = set_version_enabled(c, "m", 1, false, "t", "t");
    REQUIRE_FALSE(disabled);
    CHECK_THAT(disabled.error().message(), Catch::Contains("to disable a version"));
    CHECK(disabled_versions(c, "m").empty());

    // Again: unchanged, nothing recorded.
    effects = {};
    REQUIRE(archive_model(c, "m", "admin", "again", effects));
    CHECK_FALSE(*archive_model(c, "m", "admin", "again", effects));
    CHECK(list_model_events(c, "m").size() == 1);

    auto back = restore_model(c, "m", "admin", "needed");
    REQUIRE(back);
    CHECK(*back);
    CHECK_FALSE(get_model(c, "m")->archived_at);
    CHECK_FALSE(current_archive(c, "m"));
    CHECK(refuse_if_archived(c, "m", "train it"));
    CHECK(move_alias(c, "m", "live", 2, "t", "t"));
    CHECK_FALSE(*restore_model(c, "m", "admin", "twice"));
    auto events = list_model_events(c, "m");
    REQUIRE(events.size() == 2);
    CHECK(events[0].event == "archived");
    CHECK(events[0].reason == "replaced");
    CHECK(events[1].event == "restored");
    CHECK(events[1].actor == "admin");
    // The newest ones, oldest first.
    REQUIRE(list_model_events(c, "m", 1).size() == 1);
    CHECK(list_model_events(c, "m", 1)[0].event == "restored");
    CHECK(count_model_events(c, "m") == 2);

    CHECK(archive_model(c, "nosuch", "a", "b", effects).error().kind() == error_kind::not_found);
    CHECK(restore_model(c, "nosuch", "a", "b").error().kind() == error_kind::not_found);
    CHECK_THROWS_WITH(c.exec("UPDATE model_events SET reason = 'x'"),
                      Catch::Contains("append-only"));
    CHECK_THROWS_WITH(c.exec("DELETE FROM model_events"), Catch::Contains("append-only"));
}
