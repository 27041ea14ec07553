// fields.h: an options struct lists its fields once; JSON files and the command line read that list.
//
// A struct S writes
//     template <class Self, class Visit> static void fields(Self& s, Visit&& visit) {
//         visit(Field{.key = "batch", .flag = "--batch", .help = "images per step"}, s.batch);
//         ...
//     }
// and fields_to_json(s), fields_from_json(s, j, what) and (app/cli.h) add_cli_options(app, s)
// visit that one list, so a new option is one line, not four.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace ddpm {

struct Field {
    const char* key = "";      // its JSON key ("" for a command-line-only field)
    const char* flag = "";     // its command-line flag ("" for a file-only field)
    const char* help = "";
    const char* choices = "";  // "a|b|c": the only values a string field accepts
    double min = NAN, max = NAN;  // the range of a number, when it has one
    bool optional = false;     // may be missing from a file (keeps its default); else refused
};

// A struct with a field list (nested lists become nested JSON objects).
template <class T>
concept HasFields = requires(T& t) { T::fields(t, [](const Field&, auto&) {}); };

// "a|b|c" -> {"a", "b", "c"}.
std::vector<std::string> split_choices(const char* choices);

// Throws std::invalid_argument "WHAT: field 'key' = VALUE is not ..." when a value breaks its field's rules.
template <class T> void check_field(const Field& f, const T& value, const char* what) {
    if constexpr (std::is_same_v<T, std::string>) {
        if (!*f.choices) return;
        for (const std::string& c : split_choices(f.choices))
            if (c == value) return;
        throw std::invalid_argument(fmt::format("{}: field '{}' = '{}' is not one of {}", what, f.key, value, f.choices));
    } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
        if (!(std::isnan(f.min) || value >= f.min) || !(std::isnan(f.max) || value <= f.max))
            throw std::invalid_argument(fmt::format("{}: field '{}' = {} is out of range [{}, {}]", what, f.key, value, f.min, f.max));
    }
}

template <class S> nlohmann::json fields_to_json(const S& s) {
    nlohmann::json j = nlohmann::json::object();
    S::fields(s, [&](const Field& f, const auto& value) {
        if (!*f.key) return;
        if constexpr (HasFields<std::decay_t<decltype(value)>>) j[f.key] = fields_to_json(value);
        else j[f.key] = value;
    });
    return j;
}

// Reads one value with exactly its type: 1.5 channels or "8" groups is refused, never rounded or converted.
template <class T> void read_field(const nlohmann::json& v, const Field& f, T& out, const char* what) {
    auto wrong = [&](const char* expected) {
        throw std::invalid_argument(fmt::format("{}: field '{}' = {} is not {}", what, f.key, v.dump(), expected));
    };
    if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) wrong("a string");
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) wrong("true or false");
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) wrong("a number");
    } else if constexpr (std::is_unsigned_v<T>) {
        if (!v.is_number_unsigned()) wrong("a non-negative integer");
    } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) wrong("an integer");
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (!v.is_array() || v.size() > 4096) wrong("a list of at most 4096 strings");
        for (const nlohmann::json& e : v)
            if (!e.is_string() || e.get<std::string>().size() > 256) wrong("a list of strings (each at most 256 bytes)");
    } else {  // a list of integers
        if (!v.is_array() || v.size() > 64) wrong("a list of at most 64 integers");
        for (const nlohmann::json& e : v)
            if (!e.is_number_integer()) wrong("a list of integers");
    }
    out = v.get<T>();
    check_field(f, out, what);
}

// Reads every field of s from the object j. A key j has that s does not is refused; a
// missing key keeps its default when the field is optional or `all_optional`, else is refused.
template <class S> void fields_from_json(S& s, const nlohmann::json& j, const char* what, bool all_optional = false) {
    if (!j.is_object()) throw std::invalid_argument(fmt::format("{}: expected a JSON object", what));
    size_t known = 0;
    S::fields(s, [&](const Field& f, auto& value) {
        if (!*f.key) return;
        if (!j.contains(f.key)) {
            if (f.optional || all_optional) return;
            throw std::invalid_argument(fmt::format("{}: field '{}' is missing", what, f.key));
        }
        ++known;
        if constexpr (HasFields<std::decay_t<decltype(value)>>) fields_from_json(value, j.at(f.key), what, all_optional);
        else read_field(j.at(f.key), f, value, what);
    });
    if (known == j.size()) return;
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool ours = false;
        S::fields(s, [&](const Field& f, auto&) { ours = ours || it.key() == f.key; });
        if (!ours) throw std::invalid_argument(fmt::format("{}: unknown field '{}'", what, it.key()));
    }
}

inline std::vector<std::string> split_choices(const char* choices) {
    std::vector<std::string> out(1);
    for (const char* c = choices; *c; ++c) {
        if (*c == '|') out.emplace_back();
        else out.back().push_back(*c);
    }
    return out;
}

}  // namespace ddpm
