// The command line: `kennel <command> [options]`. Every option is a flag, a
// KENNEL_<NAME> environment variable and an entry in the --config INI file,
// with that precedence over the built-in default.
#pragma once

namespace kennel {

int run_cli(int argc, char** argv);

}  // namespace kennel
