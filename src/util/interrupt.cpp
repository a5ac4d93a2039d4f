#include "util/interrupt.h"

#include <atomic>
#include <unistd.h>

#include <csignal>

namespace lmquant {
namespace {

std::atomic<bool> g_flag{false};
constexpr unsigned kGraceSeconds = 30;

extern "C" void on_signal(int sig) {
  if (g_flag.exchange(true)) return;
  std::signal(sig, SIG_DFL);  // the next one kills
  // Safe points come at least every few seconds (a batch, a chunk, a download tick); if none
  // comes within the grace period (a stuck library call), SIGALRM ends the process.
  alarm(kGraceSeconds);
}

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGALRM, SIG_DFL);
}

bool interrupted() { return g_flag.load(std::memory_order_relaxed); }

void throw_if_interrupted(const std::string& what) {
  if (interrupted()) throw Interrupted("interrupted " + what);
}

void set_interrupted(bool value) { g_flag = value; }

}  // namespace lmquant
