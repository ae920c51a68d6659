#include "store/time_util.h"

#include <chrono>
#include <cstdio>

namespace kennel {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

micros now_micros() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::optional<micros> parse_rfc3339(std::string_view s) {
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d))
        return std::nullopt;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1) return std::nullopt;
    if (d > month_days[mo - 1] + (mo == 2 && leap(y) ? 1 : 0)) return std::nullopt;
    std::int64_t frac_us = 0;
    std::int64_t offset_s = 0;
    bool leap_second = false;
    if (s.size() > 10) {
        if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
        if (!digits(s, 11, 2, h) || s.size() < 19 || s[13] != ':' || !digits(s, 14, 2, mi) ||
            s[16] != ':' || !digits(s, 17, 2, sec))
            return std::nullopt;
        if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
        if (sec == 60) {
            leap_second = true;
            sec = 59;
        }
        std::size_t pos = 19;
        if (pos < s.size() && s[pos] == '.') {
            ++pos;
            std::size_t start = pos;
            std::int64_t scale = 100000;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
                if (scale > 0) frac_us += (s[pos] - '0') * scale;
                scale /= 10;
                ++pos;
            }
            if (pos == start) return std::nullopt;
        }
        if (pos >= s.size()) return std::nullopt;  // a time needs a zone
        if (s[pos] == 'Z' || s[pos] == 'z') {
            ++pos;
        } else if (s[pos] == '+' || s[pos] == '-') {
            int oh, om;
            if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
                !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
                return std::nullopt;
            offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
            pos += 6;
        } else {
            return std::nullopt;
        }
        if (pos != s.size()) return std::nullopt;
    }
    std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
    std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    if (leap_second) {
        // Only the last second of a UTC day can be one (23:59:60Z, or
        // 05:29:60+05:30): leap seconds are inserted there. It is kept as
        // the last microsecond of the second before it: after every reading
        // of :59, and not equal to one (a reading at :60 was deduplicated
        // against the one at :59).
        if (((secs % 86400) + 86400) % 86400 != 86399) return std::nullopt;
        frac_us = 999999;
    }
    const micros t = secs * 1000000 + frac_us;
    // An offset can carry a four-digit year into year -1 or 10000.
    if (t < min_rfc3339_time || t > max_rfc3339_time) return std::nullopt;
    return t;
}

std::string format_rfc3339(micros t) {
    std::int64_t secs = t / 1000000;
    std::int64_t us = t % 1000000;
    if (us < 0) {
        us += 1000000;
        secs -= 1;
    }
    std::int64_t days = secs / 86400;
    std::int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days -= 1;
    }
    // civil_from_days
    days += 719468;
    const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(days - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t y0 = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = y0 + (m <= 2);
    char buf[48];
    int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                          static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                          static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60));
    std::string out(buf, static_cast<std::size_t>(n));
    if (us != 0) {
        if (us % 1000 == 0) {
            std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(us / 1000));
        } else {
            std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(us));
        }
        out += buf;
    }
    out += 'Z';
    return out;
}

}  // namespace kennel
