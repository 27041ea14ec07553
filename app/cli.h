// cli.h: command-line flags from an options struct's field list (util/fields.h), with CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <type_traits>

#include "util/fields.h"

namespace ddpm {

// Adds one option (or flag, for a bool) per field that has a flag, with its help,
// its default, its choices and its range; nested field lists add their flags too.
template <class S> void add_cli_options(CLI::App* cmd, S& s) {
    S::fields(s, [&](const Field& f, auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (HasFields<T>) {
            add_cli_options(cmd, value);
        } else if (*f.flag) {
            if constexpr (std::is_same_v<T, bool>) {
                cmd->add_flag(f.flag, value, f.help);
            } else {
                CLI::Option* o = cmd->add_option(f.flag, value, f.help)->capture_default_str();
                if (*f.choices) o->check(CLI::IsMember(split_choices(f.choices)));
                if (!std::isnan(f.min)) o->check(CLI::Range(f.min, f.max));
            }
        }
    });
}

}  // namespace ddpm
