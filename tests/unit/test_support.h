// Fixtures shared by the unit tests: a temporary directory removed with
// everything in it, and a migrated SQLite database inside one.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "store/db.h"
#include "store/facts.h"
#include "store/migrations.h"
#include "store/time_util.h"

namespace kennel::testing {

class temp_dir {
public:
    temp_dir() {
        std::string templ = (std::filesystem::temp_directory_path() / "kennel-test-XXXXXX").string();
        if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// A migrated database in a temp directory with one connection open on it.
struct migrated_db {
    temp_dir dir;
    std::string path = dir.file("kennel.db");
    connection conn{path, open_options{}};
    migrated_db() {
        status s = migrate(conn);
        if (!s) throw std::runtime_error(s.to_string());
    }
};

// A migrated database that stores facts as the writer does.
struct fact_db : testing::migrated_db {
    // Stores one fact in its own committed transaction; returns its id.
    std::int64_t add(const std::string& stream, const std::string& entity, micros time,
                     const nlohmann::json& data,
                     std::optional<std::int64_t> corrects = std::nullopt,
                     micros ingest_time = now_micros()) {
        fact_input f;
        f.stream = stream;
        f.entity = entity;
        f.event_time = time;
        f.data_json = data.dump();  // nlohmann sorts object keys: canonical
        f.corrects = corrects;
        f.idempotency_key = derive_idempotency_key(stream, entity, time, f.data_json);
        transaction tx(conn);
        fact_inserter ins(conn);
        write_result r = ins.insert(f, ingest_time);
        if (r.outcome != write_outcome::stored) throw std::runtime_error("not stored: " + r.error);
        tx.commit();
        return r.id;
    }
};

// A correction stored as the store took it before it refused one from
// another stream than the fact it corrects: what a database from then may
// hold, and the readers must still treat as no correction. Returns its id.
inline std::int64_t insert_cross_stream_correction(connection& c, const std::string& stream,
                                                   const std::string& entity, std::int64_t time,
                                                   const std::string& data, std::int64_t corrects) {
    statement st(c,
                 "INSERT INTO facts (idempotency_key, stream, entity, event_time, ingest_time,"
                 " data, corrects) VALUES (?,?,?,?,?,?,?)");
    st.bind(1, "before-the-check:" + stream + ":" + entity + ":" + std::to_string(time))
        .bind(2, stream)
        .bind(3, entity)
        .bind(4, time)
        .bind(5, time)
        .bind(6, data)
        .bind(7, corrects);
    st.run();
    return c.last_insert_rowid();
}

}  // namespace kennel::testing
