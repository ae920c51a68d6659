// Credentials in the database: admin users (salted PBKDF2-HMAC-SHA256
// password hashes) and API keys with scopes (only a SHA-256 of each key is
// stored; the key itself is shown once, when created). Writes in a writer
// task or on a connection of the caller's; one thread per connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/db.h"
#include "store/status.h"
#include "store/time_util.h"

namespace kennel {

inline constexpr int password_iterations = 20000;

struct user_row {
    std::string name;
    std::string salt;
    int iterations = 0;
    std::string hash;
};

// What a key may touch beyond its scopes: the models it may predict with and
// the streams it may send facts to (empty: any). Checked by the server
// (server/auth.h), which also checks names and scopes before they are stored.
struct key_limits {
    std::vector<std::string> models;
    std::vector<std::string> streams;
};

struct api_key_row {
    std::int64_t id = 0;
    std::string name;
    std::string prefix;
    std::string key_hash;
    std::vector<std::string> scopes;
    micros created_at = 0;
    std::string created_by;
    std::optional<micros> revoked_at;
    std::optional<std::string> revoked_by;
    std::optional<micros> expires_at;    // none: never
    std::optional<micros> last_used_at;  // as last written (see record_key_uses)
    key_limits limits;
};

// A revoked key is revoked whether or not it has expired as well.
enum class key_state { active, expired, revoked };
key_state state_of(const api_key_row& k, micros now);
const char* key_state_name(key_state s);
// A comma-separated list of states ("active,expired"); an unknown one is
// invalid (field "state").
result<std::vector<key_state>> key_states_from(std::string_view list);

bool valid_scope(const std::string& s);  // read, ingest, predict, admin

std::int64_t count_users(connection& c);
std::optional<user_row> get_user(connection& c, const std::string& name);
// The fewest characters a password may have.
constexpr std::size_t min_password_length = 8;
// Replaces a user's password; creates the user (every user has full access)
// only when `create` is set. Returns false, changing nothing, for a user that
// does not exist and is not to be created.
bool set_password(connection& c, const std::string& name, const std::string& password, bool create);
bool check_password(const user_row& u, const std::string& password);
// Compares secrets in a time that depends on their length only, not on
// where they first differ.
bool same_secret(std::string_view a, std::string_view b);
// check_password for a user that may not exist: for none, the same PBKDF2
// work is spent and the answer is false, so its time does not tell which
// user names exist.
bool check_password(const std::optional<user_row>& u, const std::string& password);

struct new_key {
    api_key_row row;
    std::string key;  // "knl_<hex>": returned once, never stored
};
// A name an active key (neither revoked nor expired) has is refused
// (conflict, field "name"): the name is what tells keys apart beside what
// they change. `expires_at`, when given, must be later than now (field
// "expires_at").
result<new_key> create_api_key(connection& c, const std::string& name,
                               const std::vector<std::string>& scopes,
                               const std::string& created_by,
                               std::optional<micros> expires_at = std::nullopt,
                               const key_limits& limits = {});
// Keys newest first: at most `limit`, with ids below `before`, in one of
// `states` (empty: any), as at `now`; and how many keys those states hold.
struct key_list {
    std::vector<api_key_row> keys;
    std::int64_t count = 0;
};
key_list list_api_keys(connection& c, const std::vector<key_state>& states, int limit,
                       std::optional<std::int64_t> before, micros now);
std::optional<api_key_row> find_api_key(connection& c, const std::string& key_hash);
std::optional<api_key_row> get_api_key(connection& c, std::int64_t id);
// True when this call revoked it; false when it was revoked already (a
// revocation sent again after a lost answer); not_found for no such key.
result<bool> revoke_api_key(connection& c, std::int64_t id, const std::string& by);
// Moves each key's last_used_at forward to the time given (never back: a
// flush that lost a race with a later one keeps the later time).
void record_key_uses(connection& c, const std::vector<std::pair<std::int64_t, micros>>& uses);
// Active keys that share a name, as databases from before names were
// checked may hold: each such name with its keys' ids, oldest first.
std::vector<std::pair<std::string, std::vector<std::int64_t>>> shared_active_key_names(
    connection& c);

}  // namespace kennel
