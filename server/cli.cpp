#include "server/cli.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sqlite3.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <typeinfo>
#include <vector>

#include "kennel_version.h"
#include "ml/training_worker.h"
#include "server/app.h"
#include "server/auth.h"
#include "server/import_export.h"
#include "server/offline_predict.h"
#include "store/auth_store.h"
#include "store/db.h"
#include "store/json_input.h"
#include "store/log.h"
#include "store/migrations.h"
#include "store/reader_pool.h"
#include "store/registry.h"
#include "store/writer.h"

namespace kennel {
namespace {

namespace po = boost::program_options;

struct command {
    const char* name;
    const char* summary;
};

const command commands[] = {
    {"serve", "run the server (creates the database if needed)"},
    {"migrate", "apply pending schema migrations, or list them with --status"},
    {"import", "load facts from an NDJSON or CSV file"},
    {"export", "write facts as NDJSON"},
    {"backup", "copy the database with SQLite's online backup (safe while serving)"},
    {"train", "train a model now, in the foreground, with a progress bar"},
    {"predict", "score an NDJSON file of instances with a stored model version"},
    {"admin", "set the admin password; create, list and revoke API keys"},
    {"version", "print the version and git commit"},
};

void print_usage() {
    std::cout << "kennel " << KENNEL_VERSION
              << " - a reactive machine-learning server in one binary\n\n"
                 "usage: kennel <command> [options]\n\ncommands:\n";
    for (const command& c : commands) std::printf("  %-9s %s\n", c.name, c.summary);
    std::cout
        << "\n`kennel <command> --help` lists a command's options. Every setting can also be\n"
           "set as an environment variable KENNEL_<OPTION> (e.g. KENNEL_PORT=9090) or as\n"
           "`option = value` in the INI file named by --config; a flag beats the\n"
           "environment, which beats the file, which beats the default. What a run acts\n"
           "on (an action, id, user, password, key, model or file) comes from its\n"
           "command line only.\n";
}

// KENNEL_MAX_BODY names "max-body"; "" for a variable that is not Kennel's.
std::string option_of_variable(const std::string& env) {
    const std::string prefix = "KENNEL_";
    if (env.rfind(prefix, 0) != 0) return "";
    std::string name = env.substr(prefix.size());
    for (char& c : name) {
        c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return name;
}

// What one run acts on (an action, a key id, a user, a file, a password)
// comes from its command line only: a KENNEL_OUT, KENNEL_ACTION or
// KENNEL_PASSWORD left in the environment, or a line in a shared INI file,
// silently sent an export to a file, revoked a key or set a password (and
// KENNEL_CREATE created users).
bool command_line_only(const std::string& name) {
    static const char* const names[] = {
        "help",   "action",     "id",    "user",   "password", "name",          "scopes",
        "file",   "input",      "out",   "to",     "model",    "model-version", "status",
        "create", "expires-at", "state", "models", "streams"};
    for (const char* n : names) {
        if (name == n) return true;
    }
    return false;
}

// Maps KENNEL_MAX_BODY to "max-body" when that option exists and may come
// from the environment.
std::string env_name_mapper(const po::options_description& desc, const std::string& env) {
    std::string name = option_of_variable(env);
    return !name.empty() && !command_line_only(name) && desc.find_nothrow(name, false) ? name : "";
}

// Every command's option names. One --config file may serve several
// commands, so a key is refused only when no command has it (keep this list
// in step with the commands' options below; the command being run adds its
// own in check_config_file, so a missing entry only affects the others).
const char* const all_option_names[] = {
    // every command
    "help", "config", "db",
    // serve
    "host", "port", "demo", "sync", "max-body", "max-batch", "writer-queue", "write-timeout-ms",
    "http-threads", "keepalive-timeout", "predict-threads", "predict-queue", "predict-concurrency",
    "live-check-seconds", "retrain-gap-seconds", "explain-concurrency", "prediction-log-queue",
    "prediction-log-days", "keep-versions", "web-dir", "trusted-proxy", "test-faults", "access-log",
    "writer-cache-mb",
    // migrate, import, export, backup, train, predict, admin
    "status", "file", "format", "stream", "entity-column", "time-column", "batch", "progress",
    "out", "to", "model", "input", "model-version", "action", "user", "password", "name", "scopes",
    "id", "create"};

bool is_any_option(const po::options_description& desc, const std::string& name) {
    for (const char* n : all_option_names) {
        if (name == n) return true;
    }
    return desc.find_nothrow(name, false) != nullptr;
}

// Environment variables Kennel reads that are not options.
bool is_kennel_variable(const std::string& env) {
    return env == "KENNEL_ADMIN_PASSWORD";
}

// A misspelt KENNEL_* variable would otherwise be silently ignored.
void warn_unknown_environment(const po::options_description& desc) {
    for (char** e = environ; e && *e; ++e) {
        std::string var(*e);
        var = var.substr(0, var.find('='));
        std::string name = option_of_variable(var);
        if (name.empty() || is_kennel_variable(var)) continue;
        if (!is_any_option(desc, name)) {
            std::cerr << "kennel: warning: ignoring " << var << ": no option --" << name << "\n";
        } else if (command_line_only(name) && desc.find_nothrow(name, false)) {
            std::cerr << "kennel: warning: ignoring " << var << ": --" << name
                      << " is taken from the command line only\n";
        }
    }
}

// The INI file holds `option = value` lines and # comments only: a
// [section], a line without "=" or a key no command knows (a typo) is
// refused with the file and line, rather than silently ignored.
void check_config_file(const po::options_description& desc, const std::string& path) {
    std::ifstream in(path);
    if (!in) throw po::error("cannot read config file " + path);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        line = line.substr(0, line.find('#'));
        auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos) continue;
        line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
        std::string where = path + ":" + std::to_string(n) + ": ";
        if (line.front() == '[') {
            throw po::error(where + "sections are not supported (" + line +
                            "); write option = value lines");
        }
        auto eq = line.find('=');
        if (eq == std::string::npos)
            throw po::error(where + "expected option = value, not \"" + line + "\"");
        std::string key = line.substr(0, eq);
        key = key.substr(0, key.find_last_not_of(" \t") + 1);
        if (!is_any_option(desc, key)) {
            throw po::error(where + "unknown option \"" + key + "\"");
        }
        if (command_line_only(key)) {
            throw po::error(where + "--" + key + " is taken from the command line only");
        }
        // Not read from a file: it would be silently ignored there.
        if (key == "config") {
            throw po::error(where +
                            "a config file cannot name another (config = ...); set --config"
                            " on the command line or KENNEL_CONFIG");
        }
        // The value is taken as written: db = "k.db" named a file called
        // "k.db" with its quotes, and started an empty database there.
        std::string value = line.substr(eq + 1);
        const auto v0 = value.find_first_not_of(" \t");
        value = v0 == std::string::npos ? "" : value.substr(v0);
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
            throw po::error(where + "write the value of " + key + " without quotes");
        }
    }
}

// Where an option's value came from, as written there, for the log.
struct option_source {
    std::string value;  // "" for a flag given without one (--demo)
    std::string from;   // "command line", "environment", "config file PATH"
};
using option_sources = std::map<std::string, option_source>;

// Flags, then the environment, then the config file: po::store keeps the
// first value it sees for an option, which gives the documented precedence
// (and `sources`, when given, keeps the first layer that set each option).
po::variables_map parse_layers(const po::options_description& desc,
                               const po::positional_options_description& positional,
                               const std::vector<std::string>& args,
                               option_sources* sources = nullptr) {
    po::variables_map vm;
    auto store = [&](const po::parsed_options& parsed, const std::string& from) {
        po::store(parsed, vm);
        if (!sources) return;
        for (const po::option& o : parsed.options) {
            if (o.unregistered || o.string_key.empty()) continue;
            sources->try_emplace(o.string_key,
                                 option_source{o.value.empty() ? "" : o.value.front(), from});
        }
    };
    store(po::command_line_parser(args).options(desc).positional(positional).run(), "command line");
    warn_unknown_environment(desc);
    try {
        store(po::parse_environment(
                  desc, [&desc](const std::string& env) { return env_name_mapper(desc, env); }),
              "environment");
    } catch (const po::error_with_option_name& e) {
        // Boost names the option ("--port"), not the variable that set it.
        std::string variable = e.get_option_name();
        variable.erase(0, variable.find_first_not_of('-'));
        for (char& c : variable) {
            c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        throw po::error("environment variable KENNEL_" + variable + ": " + e.what());
    }
    if (vm.count("config") && !vm["config"].as<std::string>().empty()) {
        const std::string& path = vm["config"].as<std::string>();
        check_config_file(desc, path);
        // Entries for other commands' options are allowed in one shared file.
        store(po::parse_config_file(path.c_str(), desc, true), "config file " + path);
    }
    po::notify(vm);
    return vm;
}

// "--db /var/lib/kennel/kennel.db (config file /etc/kennel/kennel.conf),
// --port 8081 (command line)": what an operator checks first when a setting
// seems not to have been taken.
std::string describe_sources(const option_sources& sources) {
    std::string out;
    for (const auto& [name, src] : sources) {
        if (!out.empty()) out += ", ";
        out += "--" + name + (src.value.empty() ? "" : " " + src.value) + " (" + src.from + ")";
    }
    return out;
}

po::options_description common_options(const char* title) {
    po::options_description d(title);
    d.add_options()("help,h", "show this help")(
        "config", po::value<std::string>()->default_value(""), "INI file with option = value lines")(
        "db", po::value<std::string>()->default_value("kennel.db"), "database file");
    return d;
}

// "127.0.0.1, ::1" -> its addresses; anything that is not an IP address is
// refused (a host name would be looked up, and a typo would trust no one).
std::vector<std::string> parse_trusted_proxies(const std::string& list) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at <= list.size() && !list.empty()) {
        std::size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        std::string one = list.substr(at, comma - at);
        one.erase(0, one.find_first_not_of(" \t"));
        one.erase(one.find_last_not_of(" \t") + 1);
        unsigned char buf[16];
        if (::inet_pton(AF_INET, one.c_str(), buf) != 1 &&
            ::inet_pton(AF_INET6, one.c_str(), buf) != 1) {
            throw po::error("--trusted-proxy takes IP addresses separated by commas, not \"" + one +
                            "\"");
        }
        out.push_back(one);
        at = comma + 1;
    }
    return out;
}

sync_mode parse_sync(const std::string& s) {
    if (s == "full") return sync_mode::full;
    if (s == "normal") return sync_mode::normal;
    if (s == "off") return sync_mode::off;
    throw po::error("--sync must be full, normal or off, not \"" + s + "\"");
}

// The serve options that take a whole number, each with the range that
// leaves a working server; `zero_means` names what 0 stands for when lo is 0.
// One table for the check and the --help text, so the two cannot disagree.
struct option_range {
    const char* name;
    long long lo, hi;
    const char* zero_means;
};
constexpr option_range serve_ranges[] = {
    {"port", 0, 65535, "any free port"},
    {"max-body", 1, 1LL << 30, nullptr},
    {"max-batch", 1, 1000000, nullptr},
    {"writer-queue", 1, 10000000, nullptr},
    {"write-timeout-ms", 1, 3600000, nullptr},
    {"http-threads", 1, 1024, nullptr},
    {"keepalive-timeout", 1, 3600, nullptr},
    {"predict-threads", 0, 256, "two per core, at least 4"},
    {"predict-queue", 1, 1000000, nullptr},
    {"live-check-seconds", 1, 3600, nullptr},
    {"retrain-gap-seconds", 1, 86400, nullptr},
    {"predict-concurrency", 0, 4096, "four per core, at least 8"},
    {"explain-concurrency", 0, 256, "half the cores, at least 1"},
    {"prediction-log-queue", 1, 10000000, nullptr},
    {"writer-cache-mb", 1, 65536, nullptr},
};

const option_range& range_of(std::string_view name) {
    for (const option_range& r : serve_ranges) {
        if (name == r.name) return r;
    }
    throw std::logic_error("no range for --" + std::string(name));
}

// "0 (any free port) to 65535", or with "and" for "between ... and".
std::string range_text(const option_range& r, const char* joint = "to") {
    return std::to_string(r.lo) + (r.zero_means ? std::string(" (") + r.zero_means + ")" : "") +
           " " + joint + " " + std::to_string(r.hi);
}

// An option's help with its range, e.g. "port to listen on; 0 (any free
// port) to 65535" (Boost copies the text before the temporary goes).
std::string ranged_help(const char* name, const std::string& text) {
    return text + "; " + range_text(range_of(name));
}

// Read signed, so that -1 is refused rather than wrapped into a huge size.
template <class T>
T ranged(const po::variables_map& vm, const char* name) {
    const option_range& r = range_of(name);
    const po::variable_value& v = vm[name];
    long long n = v.value().type() == typeid(int) ? v.as<int>() : v.as<long long>();
    if (n < r.lo || n > r.hi) {
        throw po::error(std::string("--") + name + " must be between " + range_text(r, "and") +
                        ", not " + std::to_string(n));
    }
    return static_cast<T>(n);
}

void print_help(const char* name, const char* usage, const po::options_description& desc) {
    for (const command& c : commands) {
        if (std::string(c.name) == name) std::cout << "kennel " << name << ": " << c.summary << "\n";
    }
    std::cout << "usage: " << usage << "\n\n" << desc << "\n";
}

int cmd_serve(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel serve options");
    serve_options o;
    d.add_options()("host", po::value<std::string>()->default_value(o.host),
                    "address to listen on")("port", po::value<int>()->default_value(o.port),
                                            ranged_help("port", "port to listen on").c_str())(
        "demo", po::value<bool>()->default_value(false)->implicit_value(true),
        "load the demo data set (dog posts and their likes)")(
        "sync", po::value<std::string>()->default_value("full"),
        "full: an acknowledged fact survives power loss; normal: survives a crash of Kennel "
        "but the last commits may be lost on power loss; off: faster, may corrupt on power loss")(
        "max-body", po::value<long long>()->default_value(static_cast<long long>(o.max_body_bytes)),
        ranged_help("max-body", "largest request body in bytes (413 above)").c_str())(
        "max-batch", po::value<long long>()->default_value(static_cast<long long>(o.max_batch)),
        ranged_help("max-batch", "most facts in one request").c_str())(
        "writer-queue",
        po::value<long long>()->default_value(static_cast<long long>(o.writer_queue)),
        ranged_help("writer-queue",
                    "units waiting for the writer (a fact or a prediction-log entry each) before "
                    "writes get 503")
            .c_str())(
        "write-timeout-ms", po::value<int>()->default_value(o.write_timeout_ms),
        ranged_help("write-timeout-ms", "longest a request waits for its commit before 503")
            .c_str())("http-threads", po::value<int>()->default_value(o.http_threads),
                      ranged_help("http-threads",
                                  "HTTP worker threads: requests served at once (idle keep-alive "
                                  "connections wait off them)")
                          .c_str())(
        "keepalive-timeout", po::value<int>()->default_value(o.keepalive_timeout_s),
        ranged_help("keepalive-timeout", "seconds an idle keep-alive connection is kept").c_str())(
        "predict-threads", po::value<int>()->default_value(0),
        ranged_help("predict-threads", "threads that run model predictions").c_str())(
        "predict-queue",
        po::value<long long>()->default_value(static_cast<long long>(o.predict_queue)),
        ranged_help("predict-queue", "prediction tasks waiting before requests get 503").c_str())(
        "live-check-seconds", po::value<int>()->default_value(o.live_check_seconds),
        ranged_help("live-check-seconds",
                    "seconds between the supervisor's looks at live metrics (their bounds, and "
                    "canaries)")
            .c_str())(
        "retrain-gap-seconds", po::value<int>()->default_value(o.retrain_gap_seconds),
        ranged_help("retrain-gap-seconds",
                    "least seconds between automatic training jobs of one model (doubled after "
                    "each failed one in a row, up to an hour)")
            .c_str())(
        "predict-concurrency", po::value<int>()->default_value(0),
        ranged_help("predict-concurrency", "predict requests computing at once, the rest wait")
            .c_str())(
        "explain-concurrency", po::value<int>()->default_value(0),
        ranged_help("explain-concurrency",
                    "predict requests explaining their answers at once, the rest get 503")
            .c_str())(
        "writer-cache-mb", po::value<int>()->default_value(o.writer_cache_mb),
        ranged_help("writer-cache-mb",
                    "the writer's SQLite page cache in MiB (it fills as facts are written)")
            .c_str())(
        "prediction-log-queue",
        po::value<long long>()->default_value(static_cast<long long>(o.prediction_log_queue)),
        ranged_help("prediction-log-queue",
                    "prediction log entries buffered before new ones are dropped (and counted)")
            .c_str())("prediction-log-days",
                      po::value<double>()->default_value(o.prediction_log_days),
                      "days the prediction log keeps (older entries are deleted every minute); 0 "
                      "(keep all) to 36500")(
        "keep-versions", po::value<int>()->default_value(o.keep_versions),
        "artifacts kept per model: older versions that no alias, active experiment or the "
        "last this-many steps of live's path need lose their artifact (their rows stay); 0 "
        "(keep all) to 1000000")(
        "access-log", po::value<std::string>()->default_value(""),
        "append one JSON line per answered request to this file (- for standard output); "
        "SIGHUP reopens it, for logrotate")(
        "web-dir", po::value<std::string>()->default_value(""),
        "serve the admin page from this directory instead of the embedded copy (development)")(
        "trusted-proxy", po::value<std::string>()->default_value(""),
        "IP addresses of reverse proxies in front of Kennel, comma-separated: a request from one "
        "is taken to come from the client its X-Forwarded-For names (sign-in lockouts, logs)")(
        "test-faults", po::value<bool>()->default_value(false)->implicit_value(true),
        "enable fault-injection hooks (tests only; never in production)");
    option_sources sources;
    auto vm = parse_layers(d, {}, args, &sources);
    if (vm.count("help")) {
        print_help("serve", "kennel serve [options]", d);
        return 0;
    }
    o.host = vm["host"].as<std::string>();
    // An empty one (KENNEL_HOST= left blank) listened on [::1] alone, and
    // clients of 127.0.0.1 could not connect.
    if (o.host.empty()) throw po::error("--host must name an address (127.0.0.1, 0.0.0.0, ::1)");
    o.port = ranged<int>(vm, "port");
    o.db = vm["db"].as<std::string>();
    o.demo = vm["demo"].as<bool>();
    o.sync = parse_sync(vm["sync"].as<std::string>());
    o.max_body_bytes = ranged<std::size_t>(vm, "max-body");
    o.max_batch = ranged<std::size_t>(vm, "max-batch");
    o.writer_queue = ranged<std::size_t>(vm, "writer-queue");
    o.write_timeout_ms = ranged<int>(vm, "write-timeout-ms");
    o.http_threads = ranged<int>(vm, "http-threads");
    o.keepalive_timeout_s = ranged<int>(vm, "keepalive-timeout");
    o.access_log = vm["access-log"].as<std::string>();
    o.web_dir = vm["web-dir"].as<std::string>();
    // Serving every page as a 404 from a mistyped directory helps nobody.
    if (!o.web_dir.empty() &&
        !std::filesystem::is_regular_file(std::filesystem::path(o.web_dir) / "index.html")) {
        throw po::error("--web-dir " + o.web_dir + " holds no index.html");
    }
    o.predict_threads = ranged<int>(vm, "predict-threads");
    o.predict_queue = ranged<std::size_t>(vm, "predict-queue");
    o.live_check_seconds = ranged<int>(vm, "live-check-seconds");
    o.retrain_gap_seconds = ranged<int>(vm, "retrain-gap-seconds");
    o.predict_concurrency = ranged<int>(vm, "predict-concurrency");
    o.explain_concurrency = ranged<int>(vm, "explain-concurrency");
    o.prediction_log_queue = ranged<std::size_t>(vm, "prediction-log-queue");
    o.writer_cache_mb = ranged<int>(vm, "writer-cache-mb");
    o.keep_versions = vm["keep-versions"].as<int>();
    if (o.keep_versions < 0 || o.keep_versions > 1000000) {
        throw po::error("--keep-versions must be between 0 (keep all) and 1000000, not " +
                        std::to_string(o.keep_versions));
    }
    o.prediction_log_days = vm["prediction-log-days"].as<double>();
    if (!(o.prediction_log_days >= 0) || o.prediction_log_days > 36500) {
        char given[32];
        std::snprintf(given, sizeof given, "%g", o.prediction_log_days);
        throw po::error(
            std::string("--prediction-log-days must be between 0 (keep all) and 36500, not ") +
            given);
    }
    o.trusted_proxies = parse_trusted_proxies(vm["trusted-proxy"].as<std::string>());
    o.test_faults = vm["test-faults"].as<bool>();
    // What runs, on what, and how durably: the first line an operator reads.
    log_info("serve", std::string("kennel ") + KENNEL_VERSION + " (commit " + KENNEL_GIT_COMMIT +
                          "), database " + o.db + ", --sync " + vm["sync"].as<std::string>() +
                          (o.web_dir.empty() ? "" : ", web pages from " + o.web_dir) +
                          (o.access_log.empty() ? "" : ", access log " + o.access_log) +
                          (o.test_faults ? ", TEST FAULTS ENABLED" : ""));
    if (!sources.empty()) log_info("serve", "options set: " + describe_sources(sources));
    app a(o);
    return a.run();
}

int cmd_migrate(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel migrate options");
    d.add_options()("status", po::value<bool>()->default_value(false)->implicit_value(true),
                    "list applied and pending migrations without changing anything");
    auto vm = parse_layers(d, {}, args);
    if (vm.count("help")) {
        print_help("migrate", "kennel migrate [--status] [--db FILE]", d);
        return 0;
    }
    std::string db = vm["db"].as<std::string>();
    if (vm["status"].as<bool>()) {
        open_options ro;
        ro.read_only = true;
        connection conn(db, ro);
        auto st = migration_status(conn);
        if (!st) {
            std::cerr << "kennel migrate: " << st.error().message() << "\n";
            return 1;
        }
        int pending = 0;
        for (const migration_state& m : *st) {
            std::printf("%04d  %-28s %s\n", m.number, m.name.c_str(),
                        m.applied_at ? ("applied " + *m.applied_at).c_str() : "pending");
            pending += !m.applied_at;
        }
        std::printf("%d applied, %d pending\n", static_cast<int>(st->size()) - pending, pending);
        return 0;
    }
    auto lock = db_lock::acquire(db);
    if (!lock) {
        std::cerr << "kennel migrate: " << lock.error().message() << "\n";
        return 1;
    }
    open_options first;
    first.wal = false;  // migrate() sets it once the file is known to be Kennel's
    connection conn(db, first);
    if (status s = migrate(conn); !s) {
        std::cerr << "kennel migrate: " << s.message() << "\n";
        return 1;
    }
    std::cout << "kennel migrate: " << db << " is at schema version "
              << conn.pragma_int("user_version") << "\n";
    return 0;
}

int cmd_import(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel import options");
    import_options o;
    d.add_options()("file", po::value<std::string>(), "NDJSON or CSV file to load (- for stdin)")(
        "format", po::value<std::string>()->default_value("auto"), "auto, ndjson or csv")(
        "stream", po::value<std::string>()->default_value(""),
        "stream for CSV rows (and NDJSON lines that name none)")(
        "entity-column", po::value<std::string>()->default_value("entity"),
        "CSV column with the entity")("time-column", po::value<std::string>()->default_value(""),
                                      "CSV column with the event time (RFC 3339); empty: now")(
        // Signed, so that -1 is refused rather than wrapped into a huge size
        // (it held the whole file in one transaction).
        "batch", po::value<long long>()->default_value(1000), "facts per commit, 1 to 100000")(
        "sync", po::value<std::string>()->default_value("full"), "full, normal or off (see serve)")(
        "progress", po::value<bool>()->default_value(true),
        "draw a progress bar when stderr is a terminal");
    po::positional_options_description p;
    p.add("file", 1);
    auto vm = parse_layers(d, p, args);
    if (vm.count("help")) {
        print_help("import", "kennel import FILE [--stream S] [--entity-column C] [--time-column C]", d);
        return 0;
    }
    if (!vm.count("file")) throw po::error("name the file to import: kennel import FILE");
    o.db = vm["db"].as<std::string>();
    o.file = vm["file"].as<std::string>();
    o.format = vm["format"].as<std::string>();
    o.stream = vm["stream"].as<std::string>();
    o.entity_column = vm["entity-column"].as<std::string>();
    o.time_column = vm["time-column"].as<std::string>();
    const long long batch = vm["batch"].as<long long>();
    if (batch < 1 || batch > 100000) throw po::error("--batch must be between 1 and 100000");
    o.batch = static_cast<std::size_t>(batch);
    o.sync = parse_sync(vm["sync"].as<std::string>());
    o.progress = vm["progress"].as<bool>();
    return run_import(o);
}

int cmd_export(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel export options");
    d.add_options()("stream", po::value<std::string>()->default_value(""), "only this stream")(
        "out", po::value<std::string>()->default_value("-"), "output file (- for stdout)");
    auto vm = parse_layers(d, {}, args);
    if (vm.count("help")) {
        print_help("export", "kennel export [--stream S] [--out FILE]", d);
        return 0;
    }
    return run_export({vm["db"].as<std::string>(), vm["stream"].as<std::string>(),
                       vm["out"].as<std::string>()});
}

int cmd_backup(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel backup options");
    d.add_options()("to", po::value<std::string>(), "file to write the copy to");
    po::positional_options_description p;
    p.add("to", 1);
    auto vm = parse_layers(d, p, args);
    if (vm.count("help")) {
        print_help("backup", "kennel backup FILE [--db kennel.db]", d);
        return 0;
    }
    if (!vm.count("to")) throw po::error("name the backup file: kennel backup FILE");
    return run_backup(vm["db"].as<std::string>(), vm["to"].as<std::string>());
}

int cmd_train(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel train options");
    d.add_options()("model", po::value<std::string>(), "the model to train");
    po::positional_options_description p;
    p.add("model", 1);
    auto vm = parse_layers(d, p, args);
    if (vm.count("help")) {
        print_help("train", "kennel train NAME [--db kennel.db]", d);
        return 0;
    }
    if (!vm.count("model")) throw po::error("name the model: kennel train NAME");
    std::string db = vm["db"].as<std::string>();
    std::string model = vm["model"].as<std::string>();
    // As kennel admin: a mistyped --db must not leave an empty database.
    if (::access(db.c_str(), F_OK) != 0) {
        std::cerr << "kennel train: no such database " << db
                  << " (kennel serve or kennel migrate creates one)\n";
        return 1;
    }
    auto lock = db_lock::acquire(db);
    if (!lock) {
        // The hint only for the one case it answers: a server holds it.
        std::cerr << "kennel train: " << lock.error().message()
                  << (lock.error().kind() == error_kind::conflict
                          ? "; ask it instead: curl -X POST http://HOST:PORT/v1/models/" + model +
                                "/train"
                          : std::string())
                  << "\n";
        return 1;
    }
    {
        open_options first;
        first.wal = false;  // migrate() sets it once the file is known to be Kennel's
        connection conn(db, first);
        if (status s = migrate(conn); !s) {
            std::cerr << "kennel train: " << s.message() << "\n";
            return 1;
        }
    }
    // Ctrl-C or a kill cancels the job and stops its fit (else the job
    // stayed "running", and the next kennel serve trained it again as one
    // interrupted by a crash). Blocked in every thread from here on and
    // taken by the watcher below; the fit's process unblocks them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    writer_options wo;
    wo.db_path = db;
    fact_writer writer(wo);
    if (status s = writer.start(); !s) {
        std::cerr << "kennel train: " << s.message() << "\n";
        return 1;
    }
    reader_pool readers(db);
    std::int64_t id = 0;
    status s = writer.run(
        [&](connection& c) {
            if (status st = refuse_if_archived(c, model, "train it"); !st) return st;
            id = insert_job(c, model, "manual", "cli");
            append_job_log(c, id, "info", "queued by kennel train");
            return status::ok();
        },
        std::chrono::seconds(30));
    if (!s) {
        // The writer's own words: a full disk, a busy database or a timeout
        // are not an unknown model, which insert_job names as such.
        std::cerr << "kennel train: " << s.message() << "\n";
        return 1;
    }
    std::optional<job_row> job;
    {
        auto conn = readers.acquire();
        job = get_job(*conn, id);
    }
    ml::worker_options w;
    w.db_path = db;
    char exe[4096];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    w.exe_path = n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : "kennel";
    ml::training_worker worker(w, writer, readers);
    bool tty = ::isatty(STDERR_FILENO);
    ml::job_observer obs;
    obs.progress = [tty](double f, const std::string& msg) {
        if (!tty) return;
        int filled = static_cast<int>(f * 30);
        std::string bar(static_cast<std::size_t>(std::clamp(filled, 0, 30)), '#');
        bar.resize(30, '.');
        std::fprintf(stderr, "\r[%s] %3.0f%% %-50.50s", bar.c_str(), f * 100, msg.c_str());
        std::fflush(stderr);
    };
    obs.log = [tty](const std::string& level, const std::string& msg) {
        std::fprintf(stderr, "%s%s: %s\n", tty ? "\r\033[K" : "", level.c_str(), msg.c_str());
    };
    std::fprintf(stderr, "kennel train: job %lld for model %s\n", static_cast<long long>(id), model.c_str());
    std::atomic<bool> finished{false};
    std::atomic<int> stopped_by{0};
    std::thread watcher([&] {
        const timespec tick{0, 100'000'000};
        while (!finished) {
            const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
            if (sig <= 0) continue;
            stopped_by = sig;
            const std::string why = std::string("kennel train received ") +
                                    (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": cancelling";
            (void)writer.run(
                [&](connection& c) {
                    append_job_log(c, id, "warn", why);
                    return request_cancel(c, id);
                },
                std::chrono::seconds(10));
            worker.cancel(id);
            return;
        }
    });
    job_state end = worker.run_job(*job, obs);
    finished = true;
    watcher.join();
    if (tty) std::fprintf(stderr, "\n");
    {
        auto conn = readers.acquire();
        auto done = get_job(*conn, id);
        std::printf("job %lld %s", static_cast<long long>(id), job_state_name(end));
        if (done && done->version) {
            std::printf(": version %lld", static_cast<long long>(*done->version));
            // What came of it: live, or the candidate and why not live.
            if (!done->message.empty()) std::printf(" (%s)", done->message.c_str());
        }
        if (done && done->error) std::printf(": %s", done->error->c_str());
        std::printf("\n");
    }
    writer.stop();
    if (stopped_by) return 128 + stopped_by;  // as the shell reports a signal
    return end == job_state::succeeded ? 0 : 1;
}

int cmd_predict(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel predict options");
    d.add_options()("model", po::value<std::string>(), "the model")(
        "input", po::value<std::string>()->default_value("-"),
        "NDJSON file, a predict request body per line (- for stdin)")(
        "model-version", po::value<std::int64_t>(),
        "the version to use (default: the one live names)")(
        "out", po::value<std::string>()->default_value("-"), "output file (- for stdout)");
    po::positional_options_description p;
    p.add("model", 1).add("input", 1);
    auto vm = parse_layers(d, p, args);
    if (vm.count("help")) {
        print_help("predict",
                   "kennel predict NAME [FILE] [--model-version N] [--out FILE] [--db kennel.db]",
                   d);
        std::cout
            << "\nEach input line is a body POST /v1/models/NAME/predict takes: {\"entity\",\n"
               "\"features\"} or {\"instances\": [...]}. Each answer is a line with the line\n"
               "number (and the instance's index in a batch line), or the line's error.\nThe "
               "database is only read: it runs beside a server. Offline scoring is not\nserving: "
               "no deadline, fallback or experiment, nothing in the prediction log.\nExit "
               "status 0: all scored; 3: some lines rejected (even every one); 1: nothing\n"
               "could be scored (no such model or version, or the input or output failed).\n";
        return 0;
    }
    if (!vm.count("model")) throw po::error("name the model: kennel predict NAME [FILE]");
    offline_predict_options o;
    o.db = vm["db"].as<std::string>();
    o.model = vm["model"].as<std::string>();
    if (vm.count("model-version")) {
        o.version = vm["model-version"].as<std::int64_t>();
        if (*o.version < 1) throw po::error("--model-version must be a version number (1 or more)");
    }
    o.input = vm["input"].as<std::string>();
    o.out = vm["out"].as<std::string>();
    return run_offline_predict(o);
}

// The terminal's settings while a password is read without echo, put back
// by a signal that ends the read (Ctrl-C would leave the shell not echoing).
termios g_terminal_before{};

void restore_terminal_and_die(int sig) {
    ::tcsetattr(STDIN_FILENO, TCSANOW, &g_terminal_before);  // async-signal-safe
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

// A line from stdin: on a terminal, asked for on stderr and not echoed (it
// was echoed, with no prompt). A CRLF line's '\r' is not part of it (it was
// stored, so the password typed afterwards never matched).
std::string read_password(const std::string& user) {
    const bool quiet = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &g_terminal_before) == 0;
    constexpr int ending[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
    struct sigaction saved[std::size(ending)] = {};
    if (quiet) {
        struct sigaction sa {};
        sa.sa_handler = restore_terminal_and_die;
        sigemptyset(&sa.sa_mask);
        for (std::size_t i = 0; i < std::size(ending); ++i) ::sigaction(ending[i], &sa, &saved[i]);
        termios no_echo = g_terminal_before;
        no_echo.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &no_echo);
        // Asked only now: what is typed after the prompt must not be
        // flushed by the switch above (it was, when the prompt came first).
        std::cerr << "new password for " << user << ": " << std::flush;
    }
    std::string pw;
    std::getline(std::cin, pw);
    if (quiet) {
        ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_terminal_before);
        for (std::size_t i = 0; i < std::size(ending); ++i)
            ::sigaction(ending[i], &saved[i], nullptr);
        std::cerr << "\n";
    }
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    return pw;
}

// `kennel admin set-password | create-key | list-keys | revoke-key`. These
// write small rows directly (SQLite's busy timeout lets them run beside a
// server; a running server sees new and revoked keys within seconds).
int cmd_admin(const std::vector<std::string>& args) {
    po::options_description d = common_options("kennel admin options");
    d.add_options()("action", po::value<std::string>(),
                    "set-password, create-key, list-keys, revoke-key")(
        "user", po::value<std::string>()->default_value("admin"), "set-password: the user")(
        "create", po::value<bool>()->default_value(false)->implicit_value(true),
        "set-password: create the user if there is none of that name")(
        "password", po::value<std::string>()->default_value(""),
        "set-password: the new password (default: read a line from stdin; on the command "
        "line, other users can read it)")("name", po::value<std::string>()->default_value(""),
                                          "create-key: a name for the key")(
        "scopes", po::value<std::string>()->default_value(""),
        "create-key: read,ingest,predict,admin (any key reads; read alone only reads)")(
        "expires-at", po::value<std::string>()->default_value(""),
        "create-key: when the key stops working, in RFC 3339 (2027-01-31T00:00:00Z; default: "
        "never)")("models", po::value<std::string>()->default_value(""),
                  "create-key: the only models a predict key may ask, comma-separated (default: "
                  "any)")("streams", po::value<std::string>()->default_value(""),
                          "create-key: the only streams an ingest key may send facts to, "
                          "comma-separated (default: any)")(
        "state", po::value<std::string>()->default_value(""),
        "list-keys: only keys in these states, comma-separated: active, expired, "
        "revoked (default: all)")("id", po::value<std::int64_t>()->default_value(0),
                                  "revoke-key: the key's id");
    po::positional_options_description p;
    p.add("action", 1);
    auto vm = parse_layers(d, p, args);
    if (vm.count("help") || !vm.count("action")) {
        if (!vm.count("help"))
            std::cerr << "kennel admin: say which action: set-password, create-key, list-keys or "
                         "revoke-key\n";
        print_help("admin", "kennel admin set-password|create-key|list-keys|revoke-key [options]", d);
        return vm.count("help") ? 0 : 2;
    }
    std::string action = vm["action"].as<std::string>();
    // Before the database is touched: a mistyped action upgraded its schema
    // for good, then said it knew no such action.
    if (action != "set-password" && action != "create-key" && action != "list-keys" &&
        action != "revoke-key") {
        std::cerr << "kennel admin: unknown action \"" << action
                  << "\" (set-password, create-key, list-keys or revoke-key)\n";
        return 2;
    }
    std::vector<key_state> states;
    if (const std::string& list = vm["state"].as<std::string>(); !list.empty()) {
        auto parsed = key_states_from(list);
        if (!parsed) {
            std::cerr << "kennel admin: --state: " << parsed.error().message() << "\n";
            return 2;
        }
        states = std::move(*parsed);
    }
    if (action == "revoke-key" && vm["id"].as<std::int64_t>() <= 0) {
        std::cerr << "kennel admin: say which key: revoke-key --id N (kennel admin list-keys "
                     "lists them)\n";
        return 2;
    }
    // A mistyped --db must not create an empty database with a fresh admin.
    const std::string& db = vm["db"].as<std::string>();
    if (::access(db.c_str(), F_OK) != 0) {
        std::cerr << "kennel admin: no such database " << db
                  << " (kennel serve or kennel migrate creates one)\n";
        return 1;
    }
    open_options existing;
    existing.create = false;
    existing.wal = false;  // migrate() sets it once the file is known to be Kennel's
    connection conn(db, existing);
    // Beside a running server, only on a current schema: migrating under an
    // older server upgraded its file for good (it refused to start on it
    // again), as a side effect of, say, list-keys. As kennel migrate does,
    // a migration needs the database to itself.
    const auto pending = pending_migrations(conn);
    if (!pending) {
        std::cerr << "kennel admin: " << pending.error().message() << "\n";
        return 1;
    }
    if (*pending > 0 && action == "list-keys" &&
        static_cast<std::size_t>(*pending) == known_migrations().size()) {
        std::cerr << "kennel admin: " << db
                  << " has no Kennel schema (an empty database): no keys\n";
        return 1;
    }
    if (*pending > 0 && action == "list-keys") {
        // It only reads: a look at the keys before an upgrade's backup
        // migrated the file for good, and the older binary refused it.
        std::cerr << "kennel admin: " << db << " is from an older Kennel (" << *pending
                  << " schema migration(s) pending): back it up (kennel backup), then run kennel "
                     "migrate --db "
                  << db << " with no server on it, or start kennel serve, which migrates\n";
        return 1;
    }
    std::unique_ptr<db_lock> lock;
    if (*pending > 0) {
        auto held = db_lock::acquire(db);
        if (!held) {
            std::cerr << "kennel admin: " << db << " needs " << *pending
                      << " schema migration(s) first, and " << held.error().message()
                      << ": stop it, then run kennel migrate\n";
            return 1;
        }
        lock = std::move(*held);
    }
    if (status s = migrate(conn); !s) {
        std::cerr << "kennel admin: " << s.message() << "\n";
        return 1;
    }
    lock.reset();  // the rest may run beside a server
    if (action == "set-password") {
        const std::string& user = vm["user"].as<std::string>();
        // Basic auth splits at the first ':', so such a name could never sign in.
        if (user.empty() || user.size() > 64 || user.find(':') != std::string::npos ||
            std::any_of(user.begin(), user.end(),
                        [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
            std::cerr << "kennel admin: a user name is 1-64 bytes with no ':' and no control "
                         "characters\n";
            return 2;
        }
        std::string pw = vm["password"].as<std::string>();
        if (!pw.empty()) {
            // Taken from the command line only (command_line_only).
            std::cerr << "kennel admin: warning: a password given with --password can be read by "
                         "other users of this machine (ps) and stays in the shell's history; "
                         "leave it out to type it, or send it on standard input\n";
        }
        if (pw.empty()) pw = read_password(user);
        if (pw.size() < min_password_length) {
            std::cerr << "kennel admin: a password needs at least " << min_password_length
                      << " characters\n";
            return 2;
        }
        // admin before the first start (which would create it) may be set,
        // so a new database need not begin with a printed password.
        const bool create = vm["create"].as<bool>() || (user == "admin" && count_users(conn) == 0);
        if (!set_password(conn, user, pw, create)) {
            std::cerr << "kennel admin: no user named " << user
                      << " (--create creates it, with full access)\n";
            return 1;
        }
        std::cout << "password set for " << vm["user"].as<std::string>() << "\n";
        return 0;
    }
    if (action == "create-key") {
        const std::vector<std::string> scopes = comma_names(vm["scopes"].as<std::string>());
        std::optional<micros> expires_at;
        if (const std::string& e = vm["expires-at"].as<std::string>(); !e.empty()) {
            expires_at = parse_rfc3339(e);
            if (!expires_at) {
                std::cerr << "kennel admin: --expires-at \"" << e
                          << "\" is not an RFC 3339 time, such as 2027-01-31T00:00:00Z\n";
                return 2;
            }
        }
        key_limits limits;
        limits.models = comma_names(vm["models"].as<std::string>());
        limits.streams = comma_names(vm["streams"].as<std::string>());
        // Given with no name in it ("", ","; an unset variable's "$X,"): a
        // key limited to nothing is no key limited to everything.
        for (const char* option : {"models", "streams"}) {
            if (!vm[option].defaulted() && comma_names(vm[option].as<std::string>()).empty()) {
                std::cerr << "kennel admin: --" << option << " names no "
                          << (option[0] == 'm' ? "model" : "stream")
                          << "; leave it out for a key without that limit\n";
                return 2;
            }
        }
        if (status st = check_key_limits(scopes, limits); !st) {
            std::cerr << "kennel admin: --" << st.field() << ": " << st.message() << "\n";
            return 2;
        }
        // One transaction: a server beside us must not create a key of the
        // same name between the check for one and the insert.
        transaction tx(conn);
        auto k =
            create_api_key(conn, vm["name"].as<std::string>(), scopes, "cli", expires_at, limits);
        if (!k) {
            // Named as typed: --expires-at, not the API's expires_at.
            std::string option = "--" + k.error().field();
            std::replace(option.begin(), option.end(), '_', '-');
            std::cerr << "kennel admin: " << option << ": " << k.error().message() << "\n";
            return k.error().kind() == error_kind::conflict ? 1 : 2;
        }
        tx.commit();
        std::cout << "key " << k->row.id << " (" << k->row.name << "): " << k->key
                  << "\n(shown once; send it as  Authorization: Bearer <key>)\n";
        if (expires_at) std::cout << "it expires at " << format_rfc3339(*expires_at) << "\n";
        return 0;
    }
    if (action == "list-keys") {
        const micros now = now_micros();
        // Newest first, as the API lists them; every key, page by page.
        std::optional<std::int64_t> before;
        for (;;) {
            constexpr int page_size = 1000;
            key_list listed = list_api_keys(conn, states, page_size, before, now);
            for (const auto& k : listed.keys) {
                std::string scopes;
                for (const auto& s : k.scopes) scopes += (scopes.empty() ? "" : ",") + s;
                std::string state = key_state_name(state_of(k, now));
                if (k.revoked_at) {
                    state += " " + format_rfc3339(*k.revoked_at);
                } else if (k.expires_at) {
                    state +=
                        (*k.expires_at <= now ? " " : ", expires ") + format_rfc3339(*k.expires_at);
                }
                std::string used =
                    k.last_used_at ? "last used " + format_rfc3339(*k.last_used_at) : "never used";
                for (const auto& [what, names] : {std::pair{"models", &k.limits.models},
                                                  std::pair{"streams", &k.limits.streams}}) {
                    if (names->empty()) continue;
                    used += std::string("; only ") + what + " ";
                    for (std::size_t i = 0; i < names->size(); ++i)
                        used += (i ? "," : "") + (*names)[i];
                }
                std::printf("%4lld  %-20s %-12s %-22s %s; %s\n", static_cast<long long>(k.id),
                            k.name.c_str(), k.prefix.c_str(), scopes.c_str(), state.c_str(),
                            used.c_str());
            }
            if (listed.keys.size() < static_cast<std::size_t>(page_size)) break;
            before = listed.keys.back().id;
        }
        return 0;
    }
    if (action == "revoke-key") {
        auto r = revoke_api_key(conn, vm["id"].as<std::int64_t>(), "cli");
        if (!r) {
            std::cerr << "kennel admin: " << r.error().message() << "\n";
            return 1;
        }
        std::cout << (*r ? "revoked key " : "key was already revoked: ")
                  << vm["id"].as<std::int64_t>() << "\n";
        return 0;
    }
    std::cerr << "kennel admin: unknown action \"" << action << "\"\n";
    return 2;
}

// Internal: the training child process started by the worker.
int cmd_train_job(const std::vector<std::string>& args) {
    po::options_description d("kennel train-job (internal)");
    d.add_options()("db", po::value<std::string>()->required(), "database")(
        "job", po::value<std::int64_t>()->required(), "job id")(
        "out", po::value<std::string>()->required(), "result directory")(
        "test-faults", po::bool_switch(), "honour the definition's test_fault");
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(d).run(), vm);
    po::notify(vm);
    return ml::run_train_job_child(vm["db"].as<std::string>(), vm["job"].as<std::int64_t>(),
                                   vm["out"].as<std::string>(), vm["test-faults"].as<bool>());
}

int cmd_version(const std::vector<std::string>& args) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
        std::cout << "usage: kennel version\n";
        return 0;
    }
    std::cout << "kennel " << KENNEL_VERSION << " (commit " << KENNEL_GIT_COMMIT << ", SQLite "
              << sqlite3_libversion() << ", schema " << known_migrations().back().number << ")\n";
    return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
        print_usage();
        return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version") args[0] = "version";
    std::string name = args[0];
    std::vector<std::string> rest(args.begin() + 1, args.end());
    try {
        if (name == "serve") return cmd_serve(rest);
        if (name == "migrate") return cmd_migrate(rest);
        if (name == "import") return cmd_import(rest);
        if (name == "export") return cmd_export(rest);
        if (name == "backup") return cmd_backup(rest);
        if (name == "version") return cmd_version(rest);
        if (name == "train") return cmd_train(rest);
        if (name == "predict") return cmd_predict(rest);
        if (name == "admin") return cmd_admin(rest);
        if (name == "train-job") return cmd_train_job(rest);
    } catch (const po::error& e) {
        std::cerr << "kennel " << name << ": " << e.what() << "\n(see kennel " << name
                  << " --help)\n";
        return 2;
    } catch (const db_error& e) {
        std::cerr << "kennel " << name << ": " << e.what() << "\n";
        return 1;
    }
    std::cerr << "kennel: unknown command \"" << name << "\"\n\n";
    print_usage();
    return 2;
}

}  // namespace kennel
