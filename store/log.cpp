#include "store/log.h"

#include <pthread.h>

#include <cstdio>
#include <mutex>
#include <string>

#include "store/time_util.h"

namespace kennel {

void name_this_thread(const char* name) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%s", name);
    pthread_setname_np(pthread_self(), buf);
}

void log_line(log_level level, std::string_view component, std::string_view message) {
    static std::mutex mu;
    static const char* names[] = {"debug", "info", "warn", "error"};
    std::string line = format_rfc3339(now_micros());
    line += ' ';
    line += names[static_cast<int>(level)];
    line += ' ';
    line += component;
    line += ": ";
    line += message;
    line += '\n';
    std::lock_guard lock(mu);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace kennel
