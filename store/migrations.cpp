#include "store/migrations.h"

#include <algorithm>
#include <cstdlib>

#include "store/db.h"
#include "store/embedded.h"
#include "store/log.h"
#include "store/time_util.h"

namespace kennel {

const std::vector<migration>& known_migrations() {
    static const std::vector<migration> all = [] {
        std::vector<migration> out;
        for (const embedded_file& f : embedded_migrations()) {
            std::string path = f.path;  // "migrations/0001_facts.sql"
            std::string base = path.substr(path.find('/') + 1);
            base = base.substr(0, base.size() - 4);
            out.push_back({std::atoi(base.c_str()), base, std::string(f.text())});
        }
        std::sort(out.begin(), out.end(),
                  [](const migration& a, const migration& b) { return a.number < b.number; });
        return out;
    }();
    return all;
}

namespace {

status check_identity(connection& conn, int& current) {
    std::int64_t app_id = conn.pragma_int("application_id");
    current = static_cast<int>(conn.pragma_int("user_version"));
    if (app_id != 0 && app_id != kennel_application_id) {
        return status(error_kind::failed_precondition,
                      conn.path() + " is not a Kennel database (application_id " +
                          std::to_string(app_id) + ")");
    }
    if (app_id == 0 && current != 0) {
        return status(error_kind::failed_precondition,
                      conn.path() + " is not a Kennel database (it has a schema of its own)");
    }
    if (app_id == 0) {
        // An empty file is fine; one with tables we did not make is not.
        statement st(conn, "SELECT count(*) FROM sqlite_schema");
        st.step();
        if (st.column_int(0) != 0) {
            return status(error_kind::failed_precondition,
                          conn.path() + " is not a Kennel database (it has tables of its own)");
        }
    }
    int newest = known_migrations().empty() ? 0 : known_migrations().back().number;
    if (current > newest) {
        return status(error_kind::failed_precondition,
                      conn.path() + " was written by a newer Kennel (schema version " +
                          std::to_string(current) + "; this binary knows up to " +
                          std::to_string(newest) + "). Upgrade Kennel to open it.");
    }
    return status::ok();
}

}  // namespace

status migrate(connection& conn) {
    try {
        int current = 0;
        // Nothing is written to a file before it is known to be Kennel's (or
        // new): WAL mode, a change of the file itself, comes after the check.
        // Outside the transaction, since the journal mode cannot change in one.
        if (status s = check_identity(conn, current); !s) return s;
        conn.exec("PRAGMA journal_mode = WAL");
        // A migration may rebuild a table others refer to (0012): foreign
        // keys are off while migrations run, as SQLite's procedure for that
        // says, and every one is checked before the commit. Outside the
        // transaction too, where the pragma takes effect; on again however
        // this ends.
        conn.exec("PRAGMA foreign_keys = OFF");
        struct keys_back_on {
            connection& c;
            ~keys_back_on() {
                try {
                    c.exec("PRAGMA foreign_keys = ON");
                } catch (const db_error&) {
                    // The connection is unusable then; its next use says so.
                }
            }
        } back_on{conn};
        transaction tx(conn);
        // Again, now that the write lock is held.
        if (status s = check_identity(conn, current); !s) return s;
        conn.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT");
        bool changed = false;
        const int was = current;
        std::string applied;
        for (const migration& m : known_migrations()) {
            if (m.number <= current) continue;
            try {
                conn.exec(m.sql);
            } catch (const db_error& e) {
                return status(error_kind::internal,
                              "migration " + m.name + " failed: " + e.what());
            }
            statement ins(conn,
                          "INSERT INTO schema_migrations (number, name, applied_at) VALUES (?,?,?)");
            ins.bind(1, m.number).bind(2, m.name).bind(3, now_micros()).run();
            current = m.number;
            changed = true;
            applied += (applied.empty() ? "" : ", ") + m.name;
        }
        if (changed) {
            statement broken(conn,
                             "SELECT \"table\", parent FROM pragma_foreign_key_check LIMIT 1");
            if (broken.step()) {
                return status(error_kind::internal,
                              "migrations left a row of " + broken.column_text(0) +
                                  " that refers to no row of " + broken.column_text(1) +
                                  "; nothing was changed");
            }
        }
        if (changed || conn.pragma_int("application_id") == 0) {
            conn.exec("PRAGMA application_id = " + std::to_string(kennel_application_id));
            conn.exec("PRAGMA user_version = " + std::to_string(current));
        }
        tx.commit();
        // An upgrade changes the file for good (an older Kennel refuses it
        // afterwards): it is said, not done silently.
        if (changed && was > 0) {
            log_info("store", "migrated " + conn.path() + " from schema version " +
                                  std::to_string(was) + " to " + std::to_string(current) + " (" +
                                  applied + ")");
        } else if (changed) {
            log_info("store", "created the schema (version " + std::to_string(current) + ") in " +
                                  conn.path());
        }
        return status::ok();
    } catch (const db_error& e) {
        return status(e.is_busy() ? error_kind::unavailable : error_kind::internal,
                      std::string("migrating ") + conn.path() + ": " + e.what());
    }
}

result<int> pending_migrations(connection& conn) {
    try {
        int current = 0;
        if (status s = check_identity(conn, current); !s) return s;
        int pending = 0;
        for (const migration& m : known_migrations()) pending += m.number > current;
        return pending;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

result<std::vector<migration_state>> migration_status(connection& conn) {
    try {
        int current = 0;
        if (status s = check_identity(conn, current); !s) return s;
        std::vector<migration_state> out;
        for (const migration& m : known_migrations()) {
            out.push_back({m.number, m.name, std::nullopt});
        }
        statement has(conn,
                      "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_migrations'");
        has.step();
        if (has.column_int(0) == 0) return out;
        statement st(conn, "SELECT number, applied_at FROM schema_migrations ORDER BY number");
        while (st.step()) {
            int n = static_cast<int>(st.column_int(0));
            for (migration_state& ms : out) {
                if (ms.number == n) ms.applied_at = format_rfc3339(st.column_int(1));
            }
        }
        return out;
    } catch (const db_error& e) {
        return status(error_kind::internal, e.what());
    }
}

}  // namespace kennel
