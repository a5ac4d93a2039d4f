// Clean stops on Ctrl-C. install_interrupt_handler() (the CLI calls it) makes SIGINT and SIGTERM
// set a flag instead of killing the process; long loops (evaluation chunks, training batches,
// download progress) poll it and stop at a safe point, throwing Interrupted. Every file lmquant
// writes is written whole (temporary file + rename), so a stop never leaves a partial file:
//   train     keeps its last resumable state (OUT.last), `--resume` continues from it
//   sweep     keeps its finished cells in --out, rerunning the command resumes
//   download  removes its partial file; nothing lands in the cache
// A second signal while stopping restores the default action (the next one kills at once), and
// a process that reaches no safe point within 30 s of the first signal is ended by SIGALRM.
#pragma once
#include <stdexcept>
#include <string>

namespace lmquant {

struct Interrupted : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void install_interrupt_handler();
bool interrupted();
// Throws Interrupted("interrupted " + what) when a signal arrived.
void throw_if_interrupted(const std::string& what);
// For tests: set or clear the flag as a signal would.
void set_interrupted(bool value);

}  // namespace lmquant
