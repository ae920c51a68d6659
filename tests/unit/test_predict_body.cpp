// The prediction body readers: the fast reader must give exactly what the
// document reader gives whenever it answers at all, and must answer the
// common shapes (else serving silently loses its speed).
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "server/predict_body.h"
#include "tests/unit/predict_body_model.h"

using namespace kennel;

namespace {

ml::model_serving test_model() {
    return testing::predict_body_model();
}

void require_same(const predict_request& a, const predict_request& b) {
    REQUIRE(a.batch == b.batch);
    REQUIRE(a.deadline_ms == b.deadline_ms);
    REQUIRE(a.instances.size() == b.instances.size());
    for (std::size_t i = 0; i < a.instances.size(); ++i) {
        INFO("instance " << i);
        const auto& x = a.instances[i];
        const auto& y = b.instances[i];
        REQUIRE(x.entity == y.entity);
        REQUIRE(x.record == y.record);
        REQUIRE(x.ignored == y.ignored);
        REQUIRE(x.missing == y.missing);
        REQUIRE(x.features_hash == y.features_hash);
    }
}

// Both readers on one body. Returns whether the fast reader answered.
bool compare_readers(const ml::model_serving& m, const std::string& body) {
    INFO("body: " << body);
    std::optional<std::size_t> doc_index, whole_index;
    auto doc = parse_predict_document(m, body, doc_index);
    auto fast = parse_predict_fast(m, body);
    if (fast) {
        INFO("the document reader says: " << (doc ? "ok" : doc.error().to_string()));
        REQUIRE(doc);
        require_same(*fast, *doc);
    }
    // The reader the server uses answers exactly as the document does.
    auto whole = parse_predict_body(m, body, whole_index);
    REQUIRE(whole.is_ok() == doc.is_ok());
    if (doc) {
        require_same(*whole, *doc);
    } else {
        REQUIRE(whole.error().to_string() == doc.error().to_string());
        REQUIRE(whole_index == doc_index);
    }
    return fast.has_value();
}

// Numbers every reader takes, in the forms JSON allows.
const std::vector<std::string> good_numbers = {"0",
                                               "-0",
                                               "-0.0",
                                               "1",
                                               "12",
                                               "-7",
                                               "0.5",
                                               "1e3",
                                               "1E+2",
                                               "2.5e-3",
                                               "1e308",
                                               "-9223372036854775808",
                                               "9007199254740993"};

// Every number: the good ones, long and tiny literals, and what JSON or a
// double cannot hold.
const std::vector<std::string> numbers = [] {
    std::vector<std::string> all = good_numbers;
    for (const char* n :
         {"1e999", "1e-400", "01", "1.", ".5", "+1", "-", "0x10", "12345678901234567890",
          "3.141592653589793238", "1e-320", "1ee2", "NaN", "Infinity"})
        all.push_back(n);
    return all;
}();

const std::vector<std::string> strings = {
    "\"a\"",      "\"\"",          "\"corgi dog\"", "\"\\u00e9\"",   "\"caf\xc3\xa9\"",
    "\"a\\\"b\"", "\"tab\there\"", "\"\xff\"",      "\"unterminated"};

std::string pick(std::mt19937& rng, const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
}

std::string space(std::mt19937& rng) {
    static const std::vector<std::string> s = {"", "", "", " ", "\n", " \t\r\n "};
    return pick(rng, s);
}

std::string value(std::mt19937& rng) {
    switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
        case 0:
        case 1:
        case 2:
            return pick(rng, numbers);
        case 3:
        case 4:
            return pick(rng, strings);
        case 5:
            return "true";
        case 6:
            return "false";
        case 7:
            return "null";
        case 8:
            return "{\"lower\":1,\"upper\":" + pick(rng, numbers) + "}";
        default:
            return "[1]";
    }
}

// A value the key's transforms take, in any of the forms JSON allows.
std::string fitting_value(std::mt19937& rng, const std::string& key) {
    static const std::vector<std::string> good_strings = {"\"a\"", "\"\"", "\"corgi dog\""};
    if (key == "x" || key == "y" || key == "span") return pick(rng, good_numbers);
    if (key == "words") return pick(rng, good_strings);
    if (key == "flag") return pick(rng, {"true", "false", "0", "1", "null"});
    return pick(rng, {pick(rng, good_numbers), pick(rng, good_strings), "true", "null"});
}

std::string features(std::mt19937& rng) {
    static const std::vector<std::string> keys = {"x",    "y",     "cat", "words", "flag",
                                                  "span", "other", "zzz", "Y",     ""};
    int n = std::uniform_int_distribution<int>(0, 6)(rng);
    bool fitting = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    std::string s = "{";
    for (int i = 0; i < n; ++i) {
        if (i) s += "," + space(rng);
        std::string key = pick(rng, keys);
        s += "\"" + key + "\"" + space(rng) + ":" + space(rng) +
             (fitting ? fitting_value(rng, key) : value(rng));
    }
    return s + space(rng) + "}";
}

std::string instance(std::mt19937& rng, bool single) {
    std::vector<std::string> members;
    int shape = std::uniform_int_distribution<int>(0, 19)(rng);
    members.push_back("\"features\":" + (shape == 0 ? std::string("[]") : features(rng)));
    // Half the entities plain, as apps send them; the rest any string or value.
    if (shape != 1)
        members.push_back("\"entity\":" + (shape == 2    ? value(rng)
                                           : shape >= 10 ? std::string("\"e1\"")
                                                         : pick(rng, strings)));
    if (shape == 3) members.push_back("\"color\":1");
    if (shape == 4) members.push_back("\"entity\":\"again\"");
    if (shape == 5) members.erase(members.begin());
    if (single && shape >= 15) members.push_back("\"deadline_ms\":" + pick(rng, numbers));
    std::shuffle(members.begin(), members.end(), rng);
    std::string s = "{" + space(rng);
    for (std::size_t i = 0; i < members.size(); ++i) s += (i ? "," : "") + members[i] + space(rng);
    return s + "}";
}

std::string body(std::mt19937& rng) {
    int shape = std::uniform_int_distribution<int>(0, 9)(rng);
    if (shape < 5) return space(rng) + instance(rng, true) + space(rng);
    std::string list = "[";
    int n = std::uniform_int_distribution<int>(0, 4)(rng);
    for (int i = 0; i < n; ++i) list += (i ? "," : "") + instance(rng, false);
    list += "]";
    std::vector<std::string> members = {"\"instances\":" + (shape == 9 ? std::string("{}") : list)};
    if (shape >= 7) members.push_back("\"deadline_ms\":" + pick(rng, numbers));
    if (shape == 8) members.push_back("\"entity\":\"e\"");
    std::shuffle(members.begin(), members.end(), rng);
    std::string s = "{";
    for (std::size_t i = 0; i < members.size(); ++i) s += (i ? "," : "") + members[i];
    s += "}";
    return shape == 6 ? s + "x" : s;
}

}  // namespace

TEST_CASE("the fast reader answers the common shapes, as the document reader does") {
    const auto m = test_model();
    const std::vector<std::string> common = {
        R"({"entity":"e1","features":{"x":1.5,"y":2,"cat":"b","words":"a b c","flag":true}})",
        R"({"features":{"x":-0,"cat":3,"flag":0},"entity":null,"deadline_ms":20})",
        R"({"deadline_ms":5,"entity":"e","features":{}})",
        R"( { "entity" : "e" , "features" : { "other" : 7 , "x" : null } } )",
        R"({"instances":[{"entity":"a","features":{"x":1}},{"features":{"cat":"z","flag":false}}]})",
        R"({"deadline_ms":12.5,"instances":[{"entity":"a","features":{"y":1e-3}}]})",
    };
    for (const auto& b : common) {
        INFO(b);
        REQUIRE(compare_readers(m, b));
    }
    std::optional<std::size_t> idx;
    auto r = parse_predict_body(m, common[3], idx);
    REQUIRE(r);
    CHECK(r->instances[0].ignored == std::vector<std::string>{"other"});
    CHECK(r->instances[0].record.empty());  // null is missing
    CHECK(r->instances[0].missing.size() == m.fields.size());
}

TEST_CASE(
    "the fast reader gives way on every other shape, and the answer is the document reader's") {
    const auto m = test_model();
    const std::vector<std::string> other = {
        R"({"entity":"e","features":{"x":1,"x":2}})",    // repeated key: refused, naming it
        R"({"entity":"caf\u00e9","features":{"x":1}})",  // an escape
        R"({"entity":"e","features":{"span":{"lower":1,"upper":2}}})",  // an interval
        R"({"entity":"e","features":{"x":"one"}})",  // wrong type: an error names it
        R"({"entity":"e","features":{"x":1e999}})",  // overflow: an error names it
        R"({"instances":[{"features":{"x":1}},{"features":{"x":true}}]})",
        R"({"instances":[]})",
        R"({"entity":"e","features":{"x":1}} trailing)",
        R"({"entity":"e","features":{"x":01}})",
        R"({"entity":"e"})",
    };
    for (const auto& b : other) {
        INFO(b);
        REQUIRE_FALSE(compare_readers(m, b));
    }
    std::optional<std::size_t> idx;
    auto r = parse_predict_body(m, other[0], idx);
    REQUIRE_FALSE(r);
    CHECK(r.error().field() == "features.x");
    auto bad = parse_predict_body(m, other[5], idx);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().field() == "instances[1].features.x");
    CHECK(idx == std::optional<std::size_t>(1));
}

TEST_CASE("an entity empty or longer than a fact's is refused, naming it, by both readers") {
    // It was accepted and logged at any size (1 MB), though no outcome fact
    // (entities of at most 256 bytes) could ever be joined to it.
    const auto m = test_model();
    const std::string e256(256, 'e'), e257(257, 'e');
    std::optional<std::size_t> idx;
    auto ok = parse_predict_body(m, R"({"entity":")" + e256 + R"(","features":{"x":1}})", idx);
    REQUIRE(ok);
    CHECK(ok->instances[0].entity == e256);
    auto single = parse_predict_body(m, R"({"entity":")" + e257 + R"(","features":{"x":1}})", idx);
    REQUIRE_FALSE(single);
    CHECK(single.error().field() == "entity");
    CHECK_THAT(single.error().message(), Catch::Contains("1-256 bytes"));
    // An empty one was logged as no entity at all: no outcome could join it.
    auto empty = parse_predict_body(m, R"({"entity":"","features":{"x":1}})", idx);
    REQUIRE_FALSE(empty);
    CHECK(empty.error().field() == "entity");
    CHECK_FALSE(parse_predict_fast(m, R"({"entity":"","features":{"x":1}})").has_value());
    auto no_entity = parse_predict_body(m, R"({"entity":null,"features":{"x":1}})", idx);
    REQUIRE(no_entity);
    CHECK(no_entity->instances[0].entity.empty());
    auto batch = parse_predict_body(
        m, R"({"instances":[{"features":{}},{"entity":")" + e257 + R"(","features":{}}]})", idx);
    REQUIRE_FALSE(batch);
    CHECK(batch.error().field() == "instances[1].entity");
    CHECK(idx == std::optional<std::size_t>(1));
}

TEST_CASE("a body mixing one instance and a list of instances says so, naming instances") {
    // It was "entity: unknown field", though entity is a field of the single form.
    const auto m = test_model();
    for (const std::string body :
         {R"({"entity":"x","features":{"x":1},"instances":[{"features":{"x":2}}]})",
          R"({"instances":[{"features":{"x":2}}],"features":{"x":1}})",
          R"({"deadline_ms":50,"features":{},"instances":[{"features":{}}]})"}) {
        INFO(body);
        REQUIRE_FALSE(compare_readers(m, body));
        std::optional<std::size_t> idx;
        auto r = parse_predict_body(m, body, idx);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == error_kind::invalid_argument);
        CHECK(r.error().field() == "instances");
        CHECK_THAT(r.error().message(), Catch::Contains("either one instance") &&
                                            Catch::Contains("{\"instances\": [...]}, not both"));
        CHECK_FALSE(idx.has_value());
    }
    // Any other field beside the list is still unknown by its name.
    std::optional<std::size_t> idx;
    auto other = parse_predict_body(m, R"({"instances":[{"features":{}}],"model":"m"})", idx);
    REQUIRE_FALSE(other);
    CHECK(other.error().field() == "model");
    CHECK(other.error().message() == "unknown field");
}

TEST_CASE("a key that looks like an index is a field, never an instance number") {
    // The instance was once read back from the error's path: "[]" threw
    // from std::stoull (a 500) and "[7]" claimed instance 7 of a single body.
    const auto m = test_model();
    for (const std::string body :
         {R"({"[]": NaN})", R"({"instances[]": 1e999})", R"({"[7]": NaN})",
          R"({"[99999999999999999999]": NaN})", R"({"instances[x]": [1e999]})"}) {
        INFO(body);
        std::optional<std::size_t> idx = 3;
        auto r = parse_predict_body(m, body, idx);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == error_kind::invalid_argument);
        CHECK(r.error().message().starts_with("malformed JSON"));
        CHECK_FALSE(idx.has_value());
    }
    std::optional<std::size_t> idx;
    auto r =
        parse_predict_body(m, R"({"instances":[{"features":{}},{"features":{"[2]":NaN}}]})", idx);
    REQUIRE_FALSE(r);
    CHECK(r.error().field() == "instances[1].features.[2]");
    CHECK(idx == std::optional<std::size_t>(1));
}

TEST_CASE("a feature value nested without end is refused by name, not written out") {
    // 100,000 levels in a 200 KB body once overflowed the stack of the
    // thread that hashed the value.
    const auto m = test_model();
    const int depth = 100000;
    for (const std::string field : {"unknown", "x"}) {
        std::string body = R"({"instances":[{"features":{"y":1}},{"features":{")" + field +
                           "\":" + std::string(depth, '[') + std::string(depth, ']') + "}}]}";
        INFO(field);
        std::optional<std::size_t> idx;
        auto r = parse_predict_body(m, body, idx);
        REQUIRE_FALSE(r);
        // The parse itself stops at 64 levels (parse_json_input), naming
        // where under the feature.
        CHECK(r.error().field().rfind("instances[1].features." + field + "[0]", 0) == 0);
        CHECK(r.error().to_string().find("nested deeper than 64 levels") != std::string::npos);
        CHECK(idx == std::optional<std::size_t>(1));
    }
    // Within what JSON parses, past a feature's four levels: named as such.
    {
        std::optional<std::size_t> at;
        auto r = parse_predict_body(m,
                                    R"({"instances":[{"features":{"y":1}},{"features":{"x":)" +
                                        std::string(10, '[') + std::string(10, ']') + "}}]}",
                                    at);
        REQUIRE_FALSE(r);
        CHECK(r.error().field() == "instances[1].features.x");
        CHECK(r.error().to_string().find("nested deeper than 4") != std::string::npos);
    }
    // An interval is two levels: still taken.
    std::optional<std::size_t> idx;
    CHECK(parse_predict_body(m, R"({"features":{"span":{"lower":1,"upper":2}}})", idx));
}

TEST_CASE("on 20,000 generated bodies the fast reader never disagrees with the document reader") {
    const auto m = test_model();
    std::mt19937 rng(20261202);
    std::size_t fast = 0, total = 20000;
    for (std::size_t i = 0; i < total; ++i) fast += compare_readers(m, body(rng)) ? 1 : 0;
    // The generator makes many valid bodies; the fast reader must take a good share.
    INFO("fast reader answered " << fast << " of " << total);
    CHECK(fast > total / 20);
}

TEST_CASE("a key given twice is refused by both readers, naming the field and the instance") {
    // The fast reader leaves such a body to the document reader, which kept
    // the second value (nlohmann's parse) and scored it.
    const auto m = test_model();
    struct bad_case {
        std::string body;
        std::string field;
        std::optional<std::size_t> instance;
    };
    for (const bad_case& c : {
             bad_case{R"({"features":{"x":1,"y":2,"x":3}})", "features.x", std::nullopt},
             bad_case{R"({"entity":"a","entity":"b","features":{}})", "entity", std::nullopt},
             bad_case{R"({"features":{"x":1},"features":{"x":2}})", "features", std::nullopt},
             bad_case{R"({"instances":[{"features":{}}],"instances":[{"features":{}}]})",
                      "instances", std::nullopt},
             bad_case{R"({"instances":[{"features":{"x":1}},{"features":{"cat":"a","cat":"b"}}]})",
                      "instances[1].features.cat", 1},
         }) {
        INFO(c.body);
        CHECK_FALSE(parse_predict_fast(m, c.body).has_value());
        std::optional<std::size_t> idx = 7;
        auto r = parse_predict_body(m, c.body, idx);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == error_kind::invalid_argument);
        CHECK(r.error().field() == c.field);
        CHECK_THAT(r.error().message(), Catch::Contains("appears twice"));
        CHECK(idx == c.instance);
    }
}

TEST_CASE("a number's uncertainty object follows a fact's rules, or is a 400 naming the field") {
    // {"lower":"a","upper":1,"value":3} passed the type check on its numeric
    // value, and reading its bounds as numbers threw: a 500.
    const auto m = test_model();
    struct bad_case {
        std::string features;
        std::string field;
    };
    for (const bad_case& c : {
             bad_case{R"({"x":{"lower":"a","upper":1,"value":3}})", "features.x.lower"},
             bad_case{R"({"x":{"lower":0,"upper":null,"value":3}})", "features.x.upper"},
             bad_case{R"({"span":{"lower":true,"upper":[]}})", "features.span.lower"},
             bad_case{R"({"x":{"lower":1,"value":3}})", "features.x"},
             bad_case{R"({"x":{"lower":2,"upper":1}})", "features.x"},
             bad_case{R"({"x":{"value":3,"confidence":5}})", "features.x.confidence"},
             bad_case{R"({"y":{"value":"3"}})", "features.y"},
             bad_case{R"({"x":{"other":1}})", "features.x"},
             // A category or boolean reads {"value": number}, as training
             // does; not an interval, a value of another type, nor a
             // boolean's value other than 0 or 1.
             bad_case{R"({"cat":{"lower":1,"upper":2}})", "features.cat"},
             bad_case{R"({"cat":{"value":"red"}})", "features.cat"},
             bad_case{R"({"cat":{"value":2,"confidence":"high"}})", "features.cat.confidence"},
             bad_case{R"({"flag":{"value":2}})", "features.flag"},
             bad_case{R"({"flag":{"value":true}})", "features.flag"},
             bad_case{R"({"cat":{"value":1e999}})", "features.cat.value"},
         }) {
        for (const std::string& body :
             {R"({"features":)" + c.features + "}",
              R"({"instances":[{"features":{}},{"features":)" + c.features + "}]}"}) {
            INFO(body);
            std::optional<std::size_t> idx;
            auto r = parse_predict_body(m, body, idx);
            REQUIRE_FALSE(r);
            CHECK(r.error().kind() == error_kind::invalid_argument);
            const bool batch = body.starts_with(R"({"instances")");
            CHECK(r.error().field() == (batch ? "instances[1]." + c.field : c.field));
        }
    }
    // The forms a fact may take are read: the bounds, or the value.
    std::optional<std::size_t> idx;
    auto ok = parse_predict_body(
        m, R"({"features":{"x":{"lower":1,"upper":3,"confidence":0.9},"y":{"value":2}}})", idx);
    REQUIRE(ok);
    CHECK(std::get<ml::interval>(ok->instances[0].record.at("x")).lower == 1);
    CHECK(std::get<double>(ok->instances[0].record.at("y")) == 2);
    // A category's and a boolean's number with its uncertainty: refused
    // with a 400 though training had read the same fact's field as 2 and 1.
    ok = parse_predict_body(
        m, R"({"features":{"cat":{"value":2,"confidence":0.8},"flag":{"value":1}}})", idx);
    REQUIRE(ok);
    CHECK(std::get<double>(ok->instances[0].record.at("cat")) == 2);
    CHECK(std::get<double>(ok->instances[0].record.at("flag")) == 1);
}

TEST_CASE("an entity with a NUL character is refused by name, as a fact's") {
    const auto m = test_model();
    std::optional<std::size_t> idx;
    auto single = parse_predict_body(m, R"({"entity":"a\u0000b","features":{"x":1}})", idx);
    REQUIRE_FALSE(single);
    CHECK(single.error().field() == "entity");
    CHECK_THAT(single.error().message(), Catch::Contains("NUL"));
    auto batch = parse_predict_body(
        m, R"({"instances":[{"features":{}},{"entity":"\u0000","features":{}}]})", idx);
    REQUIRE_FALSE(batch);
    CHECK(batch.error().field() == "instances[1].entity");
    CHECK(idx == std::optional<std::size_t>(1));
}
