// Which kernel table runs (kernels/kernels.h): chosen once at load from CPUID, the best this
// CPU supports, unless the environment variable DWR_ISA names another supported one.
#pragma once
#include <string>
#include <vector>

namespace dwr {

// The names of the tables this CPU runs, best first ("avx512", "avx2", "portable").
std::vector<std::string> supported_isas();
// Every table this build has, whether or not the CPU runs it.
std::vector<std::string> known_isas();
// Switch to the table called `name`; false (and no change) unless this CPU runs it.
bool set_isa(const std::string& name);
// The active table's name, and the one chosen at load.
const char* kernel_isa();
const char* load_isa();

}  // namespace dwr
