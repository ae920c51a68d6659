#include "store/auth_store.h"

#include <algorithm>
#include <limits>
#include <optional>

#include "store/json_input.h"
#include "store/sha256.h"

namespace kennel {
namespace {

api_key_row read_key(const statement& st) {
    api_key_row k;
    k.id = st.column_int(0);
    k.name = st.column_text(1);
    k.prefix = st.column_text(2);
    k.key_hash = st.column_text(3);
    k.scopes = comma_names(st.column_text(4));
    k.created_at = st.column_int(5);
    k.created_by = st.column_text(6);
    k.revoked_at = st.column_opt_int(7);
    k.revoked_by = st.column_opt_text(8);
    k.expires_at = st.column_opt_int(9);
    k.last_used_at = st.column_opt_int(10);
    k.limits.models = comma_names(st.column_opt_text(11).value_or(""));
    k.limits.streams = comma_names(st.column_opt_text(12).value_or(""));
    return k;
}

constexpr const char* key_columns =
    "id, name, prefix, key_hash, scopes, created_at, created_by, revoked_at, revoked_by, "
    "expires_at, last_used_at, models, streams";

// Names joined by commas (which no model or stream name holds), or none.
std::optional<std::string> joined_names(const std::vector<std::string>& names) {
    if (names.empty()) return std::nullopt;
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
}

// The keys in a state, with ?1 the time now.
const char* state_condition(key_state s) {
    switch (s) {
        case key_state::active:
            return "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)";
        case key_state::expired:
            return "revoked_at IS NULL AND expires_at <= ?1";
        case key_state::revoked:
            return "revoked_at IS NOT NULL";
    }
    return "1";
}

}  // namespace

key_state state_of(const api_key_row& k, micros now) {
    if (k.revoked_at) return key_state::revoked;
    if (k.expires_at && *k.expires_at <= now) return key_state::expired;
    return key_state::active;
}

const char* key_state_name(key_state s) {
    switch (s) {
        case key_state::active:
            return "active";
        case key_state::expired:
            return "expired";
        case key_state::revoked:
            return "revoked";
    }
    return "active";
}

result<std::vector<key_state>> key_states_from(std::string_view list) {
    static constexpr key_state all[] = {key_state::active, key_state::expired, key_state::revoked};
    std::vector<key_state> out;
    for (std::string_view name : comma_fields(list)) {
        const auto found = std::find_if(std::begin(all), std::end(all),
                                        [name](key_state s) { return name == key_state_name(s); });
        if (found == std::end(all)) {
            return invalid("state", "unknown key state \"" + std::string(name) +
                                        "\" (active, expired, revoked)");
        }
        out.push_back(*found);
    }
    return out;
}

bool valid_scope(const std::string& s) {
    return s == "read" || s == "ingest" || s == "predict" || s == "admin";
}

std::int64_t count_users(connection& c) {
    statement st(c, "SELECT count(*) FROM users");
    st.step();
    return st.column_int(0);
}

std::optional<user_row> get_user(connection& c, const std::string& name) {
    statement st(c, "SELECT name, salt, iterations, hash FROM users WHERE name = ?");
    st.bind(1, name);
    if (!st.step()) return std::nullopt;
    return user_row{st.column_text(0), st.column_text(1), static_cast<int>(st.column_int(2)),
                    st.column_text(3)};
}

bool set_password(connection& c, const std::string& name, const std::string& password,
                  bool create) {
    // A mistyped name must not quietly become a new user with full access.
    if (!create && !get_user(c, name)) return false;
    std::string salt = random_hex(16);
    std::string hash = pbkdf2_sha256_hex(password, salt, password_iterations);
    micros now = now_micros();
    statement st(c,
                 "INSERT INTO users (name, salt, iterations, hash, created_at, updated_at)"
                 " VALUES (?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET salt = excluded.salt,"
                 " iterations = excluded.iterations, hash = excluded.hash,"
                 " updated_at = excluded.updated_at");
    st.bind(1, name).bind(2, salt).bind(3, password_iterations).bind(4, hash).bind(5, now).bind(6, now);
    st.run();
    return true;
}

bool same_secret(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;  // no early exit on the first differing byte
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

bool check_password(const user_row& u, const std::string& password) {
    return same_secret(pbkdf2_sha256_hex(password, u.salt, u.iterations), u.hash);
}

bool check_password(const std::optional<user_row>& u, const std::string& password) {
    if (u) return check_password(*u, password);
    (void)pbkdf2_sha256_hex(password, "no such user", password_iterations);
    return false;
}

result<new_key> create_api_key(connection& c, const std::string& name,
                               const std::vector<std::string>& scopes,
                               const std::string& created_by, std::optional<micros> expires_at,
                               const key_limits& limits) {
    // Characters, not bytes. The name is shown in the key list and as
    // "key:NAME" beside every change the key makes, so it must read as what
    // it is: no control character (a line break forged log lines), no
    // character that turns the text's direction ("\u202egpj.exe" reads as
    // "exe.jpg"), and not only blanks and invisible characters.
    // Nor a blank or invisible character at either end: "ops " or
    // "ops\u200b" reads as "ops" in every list, and would be another key's
    // name.
    const auto unusable = [] {
        return invalid("name",
                       "a key name is 1-64 characters of UTF-8, not only spaces or invisible "
                       "characters, with no control or text-direction characters and no space or "
                       "invisible character at either end");
    };
    const text_check text = check_text(name, false);
    if (text.issue != text_issue::none || text.chars > 64) return unusable();
    if (text.blank_at_edge) return unusable();

    if (scopes.empty())
        return invalid("scopes", "give at least one scope: read, ingest, predict or admin");
    std::string joined;
    std::vector<std::string> distinct;
    for (const auto& s : scopes) {
        if (!valid_scope(s))
            return invalid("scopes", "unknown scope \"" + s + "\" (read, ingest, predict, admin)");
        if (std::find(distinct.begin(), distinct.end(), s) != distinct.end()) continue;
        distinct.push_back(s);
        joined += (joined.empty() ? "" : ",") + s;
    }
    const micros now = now_micros();
    if (expires_at && *expires_at <= now) {
        return invalid("expires_at", "the key would expire at " + format_rfc3339(*expires_at) +
                                         ", which is not later than now (" + format_rfc3339(now) +
                                         ")");
    }
    // Deployments, events and jobs name the key that acted as "key:NAME", so
    // two active keys of one name could not be told apart there. A revoked
    // or expired key acts no more: its name is free again.
    statement same(c, std::string("SELECT id FROM api_keys WHERE name = ?2 AND ") +
                          state_condition(key_state::active) + " LIMIT 1");
    same.bind(1, now).bind(2, name);
    if (same.step()) {
        return status(error_kind::conflict,
                      "an active key is already named \"" + name + "\" (key " +
                          std::to_string(same.column_int(0)) +
                          "): choose another name, or revoke that key first",
                      "name");
    }
    new_key out;
    out.key = "knl_" + random_hex(24);
    out.row.name = name;
    out.row.prefix = out.key.substr(0, 10);
    out.row.key_hash = sha256_hex(out.key);
    out.row.scopes = std::move(distinct);
    out.row.created_at = now;
    out.row.created_by = created_by;
    out.row.expires_at = expires_at;
    out.row.limits = limits;
    statement st(c,
                 "INSERT INTO api_keys (name, prefix, key_hash, scopes, created_at, created_by,"
                 " expires_at, models, streams) VALUES (?,?,?,?,?,?,?,?,?)");
    st.bind(1, name).bind(2, out.row.prefix).bind(3, out.row.key_hash).bind(4, joined);
    st.bind(5, out.row.created_at).bind(6, created_by).bind(7, expires_at);
    st.bind(8, joined_names(limits.models)).bind(9, joined_names(limits.streams)).run();
    out.row.id = c.last_insert_rowid();
    return out;
}

key_list list_api_keys(connection& c, const std::vector<key_state>& states, int limit,
                       std::optional<std::int64_t> before, micros now) {
    std::string where;
    for (key_state st : states)
        where += (where.empty() ? "(" : " OR (") + std::string(state_condition(st)) + ")";
    if (where.empty()) where = "1";
    // ?1 is now in every statement, used or not.
    key_list out;
    {
        statement st(c, "SELECT count(*), ?1 FROM api_keys WHERE " + where);
        st.bind(1, now);
        st.step();
        out.count = st.column_int(0);
    }
    statement st(c, std::string("SELECT ") + key_columns + " FROM api_keys WHERE (" + where +
                        ") AND id < ?2 ORDER BY id DESC LIMIT ?3");
    st.bind(1, now)
        .bind(2, before.value_or(std::numeric_limits<std::int64_t>::max()))
        .bind(3, std::int64_t{limit});
    while (st.step()) out.keys.push_back(read_key(st));
    return out;
}

std::optional<api_key_row> find_api_key(connection& c, const std::string& key_hash) {
    statement st(c, std::string("SELECT ") + key_columns + " FROM api_keys WHERE key_hash = ?");
    st.bind(1, key_hash);
    if (!st.step()) return std::nullopt;
    return read_key(st);
}

std::optional<api_key_row> get_api_key(connection& c, std::int64_t id) {
    statement st(c, std::string("SELECT ") + key_columns + " FROM api_keys WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_key(st);
}

std::vector<std::pair<std::string, std::vector<std::int64_t>>> shared_active_key_names(
    connection& c) {
    statement st(c, std::string("SELECT name, id FROM api_keys WHERE ") +
                        state_condition(key_state::active) +
                        " AND name IN (SELECT name FROM api_keys WHERE " +
                        state_condition(key_state::active) +
                        " GROUP BY name HAVING count(*) > 1) ORDER BY name, id");
    st.bind(1, now_micros());
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
    while (st.step()) {
        std::string name = st.column_text(0);
        if (out.empty() || out.back().first != name)
            out.emplace_back(std::move(name), std::vector<std::int64_t>{});
        out.back().second.push_back(st.column_int(1));
    }
    return out;
}

result<bool> revoke_api_key(connection& c, std::int64_t id, const std::string& by) {
    statement st(c, "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL");
    st.bind(1, now_micros()).bind(2, by).bind(3, id).run();
    if (c.changes() == 1) return true;
    if (get_api_key(c, id)) return false;
    return status(error_kind::not_found, "no API key with id " + std::to_string(id), "id");
}

void record_key_uses(connection& c, const std::vector<std::pair<std::int64_t, micros>>& uses) {
    statement st(c,
                 "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2"
                 " AND (last_used_at IS NULL OR last_used_at < ?1)");
    for (const auto& [id, at] : uses) {
        st.reset();
        st.bind(1, at).bind(2, id).run();
    }
}

}  // namespace kennel
