#include "store/json_input.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kennel {

using json = nlohmann::json;

namespace {

// Deeper than any document Kennel reads (a fact's data is refused past 16).
// Checked while parsing: a 16 MB body of "[[[[…" built 8 million arrays,
// 600 MB, before any reader could refuse it.
constexpr std::size_t max_json_depth = 64;

// Builds the document as nlohmann's own parser does, and stops at a key its
// object already holds. Not derived from json_sax: sax_parse takes any type
// with these members, and calls them without a virtual dispatch, so this
// parse costs what json::parse costs.
class strict_builder {
public:
    using number_integer_t = json::number_integer_t;
    using number_unsigned_t = json::number_unsigned_t;
    using number_float_t = json::number_float_t;
    using string_t = json::string_t;
    using binary_t = json::binary_t;

    json root;
    bool repeated_key = false;
    bool too_deep = false;
    std::string error;  // nlohmann's message for malformed JSON

    bool null() { return put(nullptr); }
    bool boolean(bool v) { return put(v); }
    bool number_integer(number_integer_t v) { return put(v); }
    bool number_unsigned(number_unsigned_t v) { return put(v); }
    bool number_float(number_float_t v, const string_t&) { return put(v); }
    bool string(string_t& v) { return put(std::move(v)); }
    bool binary(binary_t& v) { return put(json::binary(std::move(v))); }
    bool start_object(std::size_t) {
        if (deeper()) return false;
        open_.push_back(slot(json::object()));
        return true;
    }
    bool key(string_t& k) {
        auto [it, inserted] =
            open_.back()->get_ref<json::object_t&>().emplace(std::move(k), nullptr);
        if (!inserted) {
            repeated_key = true;
            return false;
        }
        member_ = &it->second;
        return true;
    }
    bool end_object() {
        open_.pop_back();
        return true;
    }
    bool start_array(std::size_t) {
        if (deeper()) return false;
        open_.push_back(slot(json::array()));
        return true;
    }
    bool end_array() {
        open_.pop_back();
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
        error = e.what();
        return false;
    }

private:
    bool deeper() {
        too_deep = open_.size() >= max_json_depth;
        return too_deep;
    }
    // Where the next value goes: the root, the end of the open array, or
    // the member whose key was just read.
    json* slot(json&& v) {
        if (open_.empty()) {
            root = std::move(v);
            return &root;
        }
        if (open_.back()->is_array()) {
            auto& items = open_.back()->get_ref<json::array_t&>();
            items.push_back(std::move(v));
            return &items.back();
        }
        *member_ = std::move(v);
        return member_;
    }
    template <class T>
    bool put(T&& v) {
        slot(json(std::forward<T>(v)));
        return true;
    }

    std::vector<json*> open_;
    json* member_ = nullptr;
};

// A SAX handler that builds nothing and only remembers where it is: run
// again over a text that failed, to name where.
class path_tracker : public nlohmann::json_sax<json> {
public:
    std::string error_path;
    std::optional<std::size_t> instance;  // see json_error_instance
    std::optional<std::string> repeated_key;

    bool null() override { return element_done(); }
    bool boolean(bool) override { return element_done(); }
    bool number_integer(number_integer_t) override { return element_done(); }
    bool number_unsigned(number_unsigned_t) override { return element_done(); }
    bool number_float(number_float_t, const string_t&) override { return element_done(); }
    bool string(string_t&) override { return element_done(); }
    bool binary(binary_t&) override { return element_done(); }
    bool start_object(std::size_t) override {
        if (stack_.size() >= max_json_depth) return too_deep();
        stack_.push_back({false, 0, {}, {}});
        return true;
    }
    bool key(string_t& k) override {
        frame& f = stack_.back();
        f.key = k;
        if (!f.keys.insert(k).second) {
            repeated_key = k;
            name_error();
            return false;
        }
        return true;
    }
    bool end_object() override {
        stack_.pop_back();
        return element_done();
    }
    bool start_array(std::size_t) override {
        if (stack_.size() >= max_json_depth) return too_deep();
        stack_.push_back({true, 0, {}, {}});
        return true;
    }
    bool end_array() override {
        stack_.pop_back();
        return element_done();
    }
    bool parse_error(std::size_t, const std::string& token,
                     const nlohmann::detail::exception& e) override {
        // Only a value JSON cannot represent names a field: an overflowing
        // number (406) or a NaN/Infinity literal. A syntax error elsewhere
        // (a missing brace) is not about the last key seen.
        // nlohmann reports the text read since the last token; a NaN or
        // Infinity literal fails on its first letter.
        std::size_t last = token.find_last_not_of(" \t\r\n'");
        char at = last == std::string::npos ? '\0' : token[last];
        bool bad_number = e.id == 406 || at == 'N' || at == 'I';
        if (bad_number) name_error();
        return false;
    }

private:
    struct frame {
        bool array;
        std::size_t index;
        std::string key;
        // Seen in this object (only failed texts come here, but anyone may
        // send one: a list searched for each key took 13 s for 80,000 keys;
        // a tree, unlike a hash set, has no keys that collide by design).
        std::set<std::string> keys;
    };
    bool element_done() {
        if (!stack_.empty() && stack_.back().array) ++stack_.back().index;
        return true;
    }
    // Stops where the builder stopped, naming the place.
    bool too_deep() {
        name_error();
        return false;
    }
    void name_error() {
        if (stack_.size() >= 2 && !stack_[0].array && stack_[0].key == "instances" &&
            stack_[1].array) {
            instance = stack_[1].index;
        }
        for (const frame& f : stack_) {
            if (f.array) {
                error_path += "[" + std::to_string(f.index) + "]";
            } else if (!f.key.empty()) {
                error_path += (error_path.empty() ? "" : ".") + f.key;
            }
        }
    }
    std::vector<frame> stack_;
};

path_tracker track(std::string_view text) {
    path_tracker t;
    json::sax_parse(text, &t, json::input_format_t::json, true);
    return t;
}

}  // namespace

result<json> parse_json_input(std::string_view text) {
    // nlohmann's lexer takes a NUL byte for the end of the input, so
    // {"a":1}<NUL><anything> parsed as {"a":1}. JSON text holds no raw NUL
    // (a string must escape it), so one is refused before the parse.
    if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        return invalid("", "malformed JSON: a NUL byte at byte " + std::to_string(nul) +
                               " (JSON text holds none; in a string, write \\u0000)");
    }
    strict_builder b;
    if (json::sax_parse(text, &b, json::input_format_t::json, true)) return std::move(b.root);
    path_tracker where = track(text);
    if (b.repeated_key) {
        return invalid(where.error_path,
                       "the key \"" + where.repeated_key.value_or("") +
                           "\" appears twice in one object; send each field once");
    }
    if (b.too_deep) {
        return invalid(where.error_path,
                       "JSON nested deeper than " + std::to_string(max_json_depth) + " levels");
    }
    return invalid(where.error_path, "malformed JSON: " + b.error);
}

std::string json_error_path(std::string_view text) {
    return track(text).error_path;
}

std::optional<std::size_t> json_error_instance(std::string_view text) {
    return track(text).instance;
}

std::optional<char32_t> next_code_point(std::string_view s, std::size_t& i) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = b < 0x80             ? 0
                      : (b & 0xe0) == 0xc0 ? 1
                      : (b & 0xf0) == 0xe0 ? 2
                      : (b & 0xf8) == 0xf0 ? 3
                                           : -1;
    if (extra < 0 || s.size() - i <= static_cast<std::size_t>(extra)) return std::nullopt;
    char32_t c = extra == 0 ? b : b & (0x3f >> extra);
    for (int k = 1; k <= extra; ++k) {
        const auto n = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((n & 0xc0) != 0x80) return std::nullopt;
        c = (c << 6) | (n & 0x3f);
    }
    static constexpr char32_t least[] = {0, 0x80, 0x800, 0x10000};
    if (c < least[extra] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return std::nullopt;
    i += 1 + static_cast<std::size_t>(extra);
    return c;
}

bool turns_direction(char32_t ch) {
    return ch == 0x061c || ch == 0x200e || ch == 0x200f || (ch >= 0x202a && ch <= 0x202e) ||
           (ch >= 0x2066 && ch <= 0x2069);
}

std::vector<std::string_view> comma_fields(std::string_view s) {
    std::vector<std::string_view> out;
    for (std::size_t start = 0; start <= s.size();) {
        const std::size_t comma = std::min(s.find(',', start), s.size());
        out.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

std::vector<std::string> comma_names(std::string_view s) {
    std::vector<std::string> out;
    for (std::string_view f : comma_fields(s)) {
        if (!f.empty()) out.emplace_back(f);
    }
    return out;
}

bool is_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        if (!next_code_point(s, i)) return false;
    }
    return true;
}

text_check check_text(std::string_view s, bool line_breaks) {
    text_check out;
    bool blank_only = true;
    for (std::size_t i = 0; i < s.size();) {
        const auto got = next_code_point(s, i);
        if (!got) return {text_issue::not_utf8, out.chars};
        ++out.chars;
        const char32_t ch = *got;
        const bool allowed_break = line_breaks && (ch == '\n' || ch == '\t' || ch == '\r');
        const bool control = !allowed_break && (ch < 0x20 || (ch >= 0x7f && ch <= 0x9f) ||
                                                ch == 0x2028 || ch == 0x2029);
        if (control) return {text_issue::control, out.chars};
        if (turns_direction(ch)) return {text_issue::direction, out.chars};
        const bool blank = allowed_break || ch == ' ' || ch == 0xa0 || ch == 0xad || ch == 0x1680 ||
                           ch == 0x180e || (ch >= 0x2000 && ch <= 0x200d) || ch == 0x202f ||
                           ch == 0x205f || ch == 0x2060 || ch == 0x3000 || ch == 0xfeff;
        blank_only = blank_only && blank;
        if (out.chars == 1 && blank) out.blank_at_edge = true;
        if (i == s.size() && blank) out.blank_at_edge = true;  // the last
    }
    if (blank_only) out.issue = text_issue::blank;
    return out;
}

}  // namespace kennel
