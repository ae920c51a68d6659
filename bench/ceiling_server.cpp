// The ceiling for bench/predict: the least a prediction server built on
// Kennel's HTTP stack (cpp-httplib + nlohmann/json) must do per request.
//
// POST /v1/models/{name}/predict takes the body Kennel takes — one instance
// {"entity": ..., "features": {...}} or a batch {"instances": [...]} — parses
// it with nlohmann/json, computes a fixed dot product of the numeric features
// (x0..x9) plus a per-category weight for "cat" for each instance, and answers
// {"prediction": p} or {"predictions": [{"prediction": p}, ...]}. No model,
// no auth check, no thread hand-off, no prediction log: whatever Kennel does
// beyond this is its own cost.
//
// The server is configured like Kennel's (server/http_server.cpp): TCP_NODELAY,
// SO_REUSEADDR without SO_REUSEPORT, a cpp-httplib ThreadPool of --threads
// workers (Kennel's --http-threads default, 128), the same keep-alive count
// and timeout, read timeout and body limit, listen backlog 1024, and by
// default Kennel's own connection loop (server/http_connection.h; --loop
// httplib: httplib's own loop, for comparison).
//
// usage: kennel_bench_ceiling [--host 127.0.0.1] [--port 0] [--threads 128]
//                             [--loop kennel|httplib]
// Prints "kennel_bench_ceiling: listening on HOST:PORT" once bound; stops on
// SIGINT or SIGTERM.
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <thread>

#include "server/http_connection.h"

namespace {

using json = nlohmann::json;

constexpr const char* numeric_fields[] = {"x0", "x1", "x2", "x3", "x4",
                                          "x5", "x6", "x7", "x8", "x9"};
constexpr double weights[] = {0.9, -0.01, 2.0, 0.003, 0.7, -0.1, 0.4, 0.0002, 0.25, -0.3};
constexpr double bias = -0.2;

double category_weight(const std::string& c) {
    if (c == "a") return 0.0;
    if (c == "b") return 0.5;
    if (c == "c") return -0.7;
    if (c == "d") return 1.0;
    if (c == "e") return -1.2;
    return 0.0;
}

// Returns false (and a message) for a body Kennel would refuse as well.
bool score(const json& inst, double& out, std::string& error) {
    if (!inst.is_object()) {
        error = "an instance must be an object";
        return false;
    }
    auto f = inst.find("features");
    if (f == inst.end() || !f->is_object()) {
        error = "features must be an object";
        return false;
    }
    double s = bias;
    for (std::size_t i = 0; i < std::size(numeric_fields); ++i) {
        auto v = f->find(numeric_fields[i]);
        if (v != f->end() && v->is_number()) s += weights[i] * v->get<double>();
    }
    if (auto c = f->find("cat"); c != f->end() && c->is_string()) {
        s += category_weight(c->get_ref<const std::string&>());
    }
    out = 1 / (1 + std::exp(-s));
    return true;
}

void bad_request(httplib::Response& res, const std::string& message) {
    res.status = 400;
    res.set_content(json{{"error", {{"code", "invalid_argument"}, {"message", message}}}}.dump(),
                    "application/json");
}

void predict(const httplib::Request& req, httplib::Response& res) {
    json body;
    try {
        body = json::parse(req.body);
    } catch (const json::exception& e) {
        bad_request(res, std::string("malformed JSON: ") + e.what());
        return;
    }
    if (!body.is_object()) {
        bad_request(res, "the body must be a JSON object");
        return;
    }
    std::string error;
    if (auto list = body.find("instances"); list != body.end()) {
        if (!list->is_array() || list->empty()) {
            bad_request(res, "instances must be a non-empty array");
            return;
        }
        json out = json::array();
        for (const auto& inst : *list) {
            double p = 0;
            if (!score(inst, p, error)) {
                bad_request(res, error);
                return;
            }
            out.push_back({{"prediction", p}});
        }
        res.set_content(json{{"predictions", std::move(out)}}.dump(), "application/json");
        return;
    }
    double p = 0;
    if (!score(body, p, error)) {
        bad_request(res, error);
        return;
    }
    res.set_content(json{{"prediction", p}}.dump(), "application/json");
}

}  // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = 0;
    int threads = 128;
    bool kennel_loop = true;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "kennel_bench_ceiling: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--host") {
            host = value();
        } else if (a == "--port") {
            port = std::atoi(value().c_str());
        } else if (a == "--threads") {
            threads = std::max(1, std::atoi(value().c_str()));
        } else if (a == "--loop" && i + 1 < argc && (std::string(argv[i + 1]) == "kennel" ||
                                                     std::string(argv[i + 1]) == "httplib")) {
            kennel_loop = std::string(argv[++i]) == "kennel";
        } else {
            std::fprintf(stderr,
                         "usage: kennel_bench_ceiling [--host H] [--port P] [--threads N]"
                         " [--loop kennel|httplib]\n");
            return 2;
        }
    }

    // Stop on SIGINT/SIGTERM through sigwait on the main thread; block them
    // before any thread starts so every thread inherits the mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<httplib::Server> server;
    if (kennel_loop) {
        server = std::make_unique<kennel::http_engine>();
    } else {
        server = std::make_unique<httplib::Server>();
    }
    httplib::Server& svr = *server;
    // As server/http_server.cpp does.
    svr.set_tcp_nodelay(true);
    svr.set_socket_options([](int sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    svr.set_keep_alive_max_count(1000000);
    svr.set_keep_alive_timeout(5);
    svr.set_read_timeout(10, 0);
    svr.set_payload_max_length(16 * 1024 * 1024);
    svr.Post(R"(/v1/models/([^/]+)/predict)", predict);
    svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("{\"status\":\"ok\"}", "application/json");
    });

    int bound = port == 0 ? svr.bind_to_any_port(host) : (svr.bind_to_port(host, port) ? port : -1);
    if (bound < 0) {
        std::fprintf(stderr, "kennel_bench_ceiling: cannot bind %s:%d\n", host.c_str(), port);
        return 1;
    }
    kennel::raise_listen_backlog(bound);  // as Kennel does: httplib listens with 5
    std::thread listener([&svr] { svr.listen_after_bind(); });
    std::printf("kennel_bench_ceiling: listening on %s:%d\n", host.c_str(), bound);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    svr.stop();
    listener.join();
    return 0;
}
