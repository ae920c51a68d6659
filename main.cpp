// kennel: a reactive machine-learning server in one binary. See README.md.
#include "server/cli.h"

int main(int argc, char** argv) { return kennel::run_cli(argc, argv); }
