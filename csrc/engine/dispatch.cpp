// The kernel choice: the best table this CPU runs, found once at load from CPUID; DWR_ISA
// (or set_isa) forces another one the CPU also runs.
#include "dispatch.h"

#include <cstdlib>
#include <string>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "kernels/kernels.h"

namespace dwr {
namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("popcnt");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

// NEON (ASIMD) is mandatory on AArch64; Linux still reports it in HWCAP, macOS always has it.
bool cpu_has_neon() {
#if defined(__aarch64__) && defined(__linux__)
  return (getauxval(AT_HWCAP) & (1UL << 1)) != 0;  // HWCAP_ASIMD
#elif defined(__aarch64__)
  return true;
#else
  return false;
#endif
}

bool always() { return true; }

struct Entry {
  const Kernels* (*table)();
  bool (*supported)();
};

// Best first. A new ISA adds its row here.
const Entry kEntries[] = {
    {avx512_kernels, cpu_has_avx512},
    {avx2_kernels, cpu_has_avx2},
    {neon_kernels, cpu_has_neon},
    {portable_kernels, always},
};

const Kernels* g_active = nullptr;  // set by set_isa; null: the choice at load

// The supported table called `name`, or nullptr.
const Kernels* find(const std::string& name) {
  for (const Entry& e : kEntries)
    if (e.table() && e.supported() && name == e.table()->name) return e.table();
  return nullptr;
}

// The table at load: DWR_ISA when it names a supported one, else the best.
const Kernels* at_load() {
  static const Kernels* const chosen = [] {
    const char* env = std::getenv("DWR_ISA");
    if (const Kernels* k = env ? find(env) : nullptr) return k;
    for (const Entry& e : kEntries)
      if (e.table() && e.supported()) return e.table();
    return portable_kernels();
  }();
  return chosen;
}

}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const Entry& e : kEntries)
    if (e.table() && e.supported()) out.emplace_back(e.table()->name);
  return out;
}

std::vector<std::string> known_isas() {
  std::vector<std::string> out;
  for (const Entry& e : kEntries)
    if (e.table()) out.emplace_back(e.table()->name);
  return out;
}

bool set_isa(const std::string& name) {
  const Kernels* k = find(name);
  if (k) g_active = k;
  return k != nullptr;
}

const Kernels& kernels() { return g_active ? *g_active : *at_load(); }

decltype(Kernels::float_conv_row_bf16) native_bf16_row() {
  const Kernels& k = kernels();
  return k.float_conv_row_bf16 && k.bf16_supported() ? k.float_conv_row_bf16 : nullptr;
}

decltype(Kernels::float_conv_row_int8) int8_row(bool* native) {
  const Kernels& k = kernels();
  const bool own = k.float_conv_row_int8 && k.int8_supported();
  if (native) *native = own && &k != portable_kernels();
  return own ? k.float_conv_row_int8 : portable_kernels()->float_conv_row_int8;
}

const char* kernel_isa() { return kernels().name; }

const char* load_isa() { return at_load()->name; }

}  // namespace dwr
