// lmquant: one binary, subcommands as functions (see commands() in commands.cpp). With no
// subcommand it runs the main job. main() is the one place that catches: it prints
// "error: ..." and returns non-zero.
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "util/interrupt.h"

namespace {

void usage() {
  std::cout << "usage: lmquant [COMMAND] [OPTIONS]\n\n"
               "Post-training quantization of LSTM language models, measured in perplexity.\n\n"
               "commands:\n";
  for (const auto& c : lmquant::cli::commands())
    std::cout << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ') << c.help
              << "\n";
  std::cout << "\nWithout a command, lmquant runs 'report' (e.g. lmquant --corpus wikitext2 "
               "--bits 4).\n'lmquant COMMAND --help' shows a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  lmquant::install_interrupt_handler();
  try {
    std::string name = "report";
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
      usage();
      return 0;
    }
    if (!args.empty() && args[0].rfind("-", 0) != 0) {
      name = args[0];
      args.erase(args.begin());
    }
    for (const auto& c : lmquant::cli::commands())
      if (name == c.name) return c.run(args);
    std::string valid;
    for (const auto& c : lmquant::cli::commands()) valid += std::string(valid.empty() ? "" : ", ") + c.name;
    std::cerr << "error: unknown command '" << name << "'; valid commands: " << valid << "\n";
    return 2;
  } catch (const lmquant::Interrupted& e) {
    std::cerr << "\n" << e.what() << "\n";
    return 130;  // 128 + SIGINT, as a shell reports it
  } catch (const boost::program_options::error& e) {
    std::cerr << "error: " << e.what() << " (see 'lmquant --help')\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
