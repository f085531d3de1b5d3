// The float epilogue's run-time flags (activation kind, residual or not) turned into template
// arguments, once for every ISA: each kernels/<isa>.cpp writes its epilogue_act<ACT, RES>
// and fills its table's epilogue_float with
//
//   dispatch_epilogue(ep, [&](auto act, auto res) {
//     epilogue_act<decltype(act)::value, decltype(res)::value>(g, ep, dots, p0, m, o0, o1);
//   });
//
// The kernel each case runs is the ISA's own, so every path computes what it did before.
#pragma once
#include <type_traits>

#include "../conv.h"

namespace dwr {

// Calls run(std::integral_constant<int, ACT>, std::bool_constant<RES>) for ep.act (Hardtanh,
// RPReLU, else identity) and RES = whether ep carries a residual.
template <class Run>
inline void dispatch_epilogue(const Epilogue& ep, Run&& run) {
  auto with_act = [&](auto res) {
    if (ep.act == ACT_HARDTANH)
      run(std::integral_constant<int, ACT_HARDTANH>{}, res);
    else if (ep.act == ACT_RPRELU)
      run(std::integral_constant<int, ACT_RPRELU>{}, res);
    else
      run(std::integral_constant<int, ACT_NONE>{}, res);
  };
  if (ep.residual)
    with_act(std::true_type{});
  else
    with_act(std::false_type{});
}

}  // namespace dwr
