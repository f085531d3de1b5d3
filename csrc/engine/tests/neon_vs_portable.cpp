// The NEON kernel table against the portable one, without Python: random binary conv layers
// (widths around every vector width, strides 1 and 2, every padding, every epilogue and
// activation, the partial last channel group, flushes of the byte counters, 1 and 2 threads)
// run through the real driver under each table and must agree bit for bit; so must sign
// packing, pools and the dense layer. The float stem may differ by FMA rounding only.
// Built for aarch64 (-O2 -static -ffp-contract=off, with the engine's .cpp files but
// module.cpp) and run under qemu-aarch64 by tests/engine/test_neon_emulated.py.
// Prints the table chosen at load and the case counts; exits 1 on the first mismatch, 2 when
// NEON is not available.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "conv.h"
#include "dispatch.h"
#include "float_conv.h"
#include "kernels/kernels.h"
#include "threads.h"

namespace {

using dwr::ConvGeom;
using dwr::Epilogue;
std::mt19937 rng(23);

int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// A width: one around a vector or word boundary, or any in [1, 300].
int width() {
  static const int kEdges[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
                               100, 127, 128, 129, 200, 257};
  if (uniform(0, 2) > 0) return kEdges[uniform(0, sizeof(kEdges) / sizeof(int) - 1)];
  return uniform(1, 300);
}

// Floats that make ties and odd values: small integers and halves (exact zeros, so signs
// and clamps meet their edges), -0, an occasional NaN, and plain normals.
float value(float spread) {
  const int kind = uniform(0, 19);
  if (kind < 6) return 0.5f * static_cast<float>(uniform(-4, 4));
  if (kind == 6) return -0.0f;
  if (kind == 7 && spread > 0) return std::nanf("");
  return spread * std::normal_distribution<float>(0.0f, 1.0f)(rng);
}

std::vector<float> values(size_t n, float spread) {
  std::vector<float> v(n);
  for (float& x : v) x = value(spread);
  return v;
}

bool same(const void* a, const void* b, size_t bytes) { return std::memcmp(a, b, bytes) == 0; }

// Runs fn under the portable table, then under NEON, and compares the buffers it fills.
template <class T>
bool both(const std::function<void(std::vector<T>&)>& fn, size_t n) {
  std::vector<T> ref(n), got(n);
  std::memset(ref.data(), 0xA5, n * sizeof(T));
  std::memset(got.data(), 0xA5, n * sizeof(T));
  dwr::set_isa("portable");
  fn(ref);
  dwr::set_isa("neon");
  fn(got);
  return same(ref.data(), got.data(), n * sizeof(T));
}

// A random binary layer: geometry, packed input and weights (bits past C zero).
struct Layer {
  ConvGeom g{};
  std::vector<uint64_t> in, w;
  std::vector<int32_t> wpop;
};

Layer make_layer() {
  Layer L;
  ConvGeom& g = L.g;
  static const int kKernels[] = {1, 3, 3, 5, 7};
  g.k = kKernels[uniform(0, 4)];
  g.stride = uniform(1, 2);
  g.pad = uniform(0, g.k - 1);
  g.N = uniform(1, 2);
  g.H = uniform(std::max(1, g.k - 2 * g.pad), std::max(1, g.k - 2 * g.pad) + 5);
  g.W = uniform(std::max(1, g.k - 2 * g.pad), std::max(1, g.k - 2 * g.pad) + 6);
  g.C = g.k == 7 ? uniform(1, 70) : width();
  g.Cw = (g.C + 63) / 64;
  g.O = width();
  g.Op = (g.O + 3) / 4 * 4;
  g.OH = (g.H + 2 * g.pad - g.k) / g.stride + 1;
  g.OW = (g.W + 2 * g.pad - g.k) / g.stride + 1;
  g.T = g.k * g.k;
  g.Kp = g.T * g.Cw;
  const int64_t pixels = static_cast<int64_t>(g.N) * g.H * g.W;
  // One layer in four is saturated: every input -1 and every weight +1 (or the reverse), so
  // each byte counter gains 8 per word and overflows unless flushed in time.
  const int saturated = uniform(0, 3) == 0 ? uniform(1, 2) : 0;
  std::vector<float> x = values(pixels * g.C, 1.0f);
  if (saturated) std::fill(x.begin(), x.end(), saturated == 1 ? -1.0f : 1.0f);
  L.in.resize(pixels * g.Cw);
  dwr::set_isa("portable");
  dwr::pack_signs(x.data(), nullptr, pixels, g.C, L.in.data());
  L.w.assign(static_cast<size_t>(g.Op) * g.Kp, 0);
  L.wpop.assign(static_cast<size_t>(g.O) * g.T, 0);
  for (int o = 0; o < g.O; ++o)
    for (int t = 0; t < g.T; ++t)
      for (int c = 0; c < g.C; ++c) {
        if (saturated ? saturated == 1 : uniform(0, 1) == 0) continue;
        const int k = t * g.Cw + c / 64;
        L.w[(static_cast<size_t>(o / 4) * g.Kp + k) * 4 + o % 4] |= 1ULL << (c % 64);
        ++L.wpop[static_cast<size_t>(o) * g.T + t];
      }
  return L;
}

// The float epilogue's vectors and buffers for one layer (mode, activation, residual and the
// packing of the next input chosen by `combo`, 0..11).
struct FloatParts {
  std::vector<float> scale, bias, a_in, slope, a_out, shift, res;
};

bool conv_case(int combo) {
  const Layer L = make_layer();
  const ConvGeom& g = L.g;
  const int64_t P = static_cast<int64_t>(g.N) * g.OH * g.OW;
  const int ocw = (g.O + 63) / 64;
  Epilogue ep;
  if (combo == 12) {  // int
    return both<int32_t>([&](std::vector<int32_t>& out) {
      ep.mode = dwr::MODE_INT;
      ep.out_int = out.data();
      dwr::binary_conv(g, L.in.data(), L.w.data(), L.wpop.data(), ep);
    }, P * g.O);
  }
  if (combo == 13) {  // bits through thresholds
    std::vector<int32_t> thr(g.O);
    std::vector<uint8_t> flip(g.O);
    for (int o = 0; o < g.O; ++o) {
      thr[o] = uniform(-g.T * g.C, g.T * g.C);
      flip[o] = uniform(0, 3) == 0;
    }
    return both<uint64_t>([&](std::vector<uint64_t>& out) {
      ep.mode = dwr::MODE_BITS;
      ep.out_bits = out.data();
      ep.thr = thr.data();
      ep.flip = flip.data();
      dwr::binary_conv(g, L.in.data(), L.w.data(), L.wpop.data(), ep);
    }, P * ocw);
  }
  // float: activation combo % 3, residual combo / 3 % 2, next input packed combo / 6
  FloatParts f;
  const float spread = uniform(0, 1) ? 0.05f : 0.5f;
  f.scale = values(g.O, spread);
  for (auto* v : {&f.bias, &f.a_in, &f.slope, &f.a_out, &f.shift}) *v = values(g.O, 1.0f);
  f.res = values(P * g.O, 1.0f);
  ep.mode = dwr::MODE_FLOAT;
  ep.scale = f.scale.data();
  ep.bias = f.bias.data();
  ep.act = combo % 3;
  if (ep.act == dwr::ACT_RPRELU) {
    ep.act_in = f.a_in.data();
    ep.act_slope = f.slope.data();
    ep.act_out = f.a_out.data();
  }
  if (combo / 3 % 2) ep.residual = f.res.data();
  const bool next = combo / 6 == 1;
  const size_t n_float = P * g.O, n_bits = next ? P * ocw : 0;
  const float* shift = uniform(0, 1) ? f.shift.data() : nullptr;
  return both<uint64_t>([&](std::vector<uint64_t>& buf) {
    Epilogue e = ep;
    e.out_float = reinterpret_cast<float*>(buf.data());
    if (next) {
      e.next_bits = buf.data() + (n_float + 1) / 2;
      e.next_shift = shift;
    }
    dwr::binary_conv(g, L.in.data(), L.w.data(), L.wpop.data(), e);
  }, (n_float + 1) / 2 + n_bits);
}

// Sign packing of random rows, with and without a shift.
bool pack_case() {
  const int64_t P = uniform(1, 9);
  const int C = width();
  const std::vector<float> x = values(P * C, 1.0f), shift = values(C, 1.0f);
  const bool shifted = uniform(0, 1);
  return both<uint64_t>([&](std::vector<uint64_t>& out) {
    dwr::pack_signs(x.data(), shifted ? shift.data() : nullptr, P, C, out.data());
  }, P * ((C + 63) / 64));
}

// Max pool (k, s, p) and the ceil-mode average pool on one random image.
bool pool_case() {
  const int N = uniform(1, 2), H = uniform(1, 9), W = uniform(1, 9), C = width() % 80 + 1;
  const std::vector<float> x = values(static_cast<size_t>(N) * H * W * C, 1.0f);
  const int k = uniform(1, 3), s = uniform(1, 2), p = uniform(0, k / 2);
  const int mh = (H + 2 * p - k) / s + 1, mw = (W + 2 * p - k) / s + 1;
  bool ok = true;
  if (mh > 0 && mw > 0)
    ok = both<float>([&](std::vector<float>& out) {
      dwr::max_pool(x.data(), N, H, W, C, k, s, p, out.data());
    }, static_cast<size_t>(N) * mh * mw * C);
  const int ah = (H + s - 1) / s, aw = (W + s - 1) / s;
  return ok && both<float>([&](std::vector<float>& out) {
    dwr::avg_pool_ceil(x.data(), N, H, W, C, s, out.data());
  }, static_cast<size_t>(N) * ah * aw * C);
}

bool dense_case() {
  const int N = uniform(1, 3), C = width(), O = width();
  const int blocks = (O + 63) / 64;
  const std::vector<float> x = values(static_cast<size_t>(N) * C, 1.0f);
  const std::vector<float> w = values(static_cast<size_t>(blocks) * C * 64, 0.1f);
  const std::vector<float> bias = values(static_cast<size_t>(blocks) * 64, 1.0f);
  return both<float>([&](std::vector<float>& out) {
    dwr::dense(x.data(), N, C, w.data(), bias.data(), O, out.data());
  }, static_cast<size_t>(N) * O);
}

// The FMLA stem against the portable one: equal up to float rounding of the sums.
bool stem_case() {
  dwr::FloatConvArgs a{};
  a.N = 1;
  a.C = uniform(1, 4);
  a.k = uniform(1, 7);
  a.stride = uniform(1, 2);
  a.pad = uniform(0, a.k / 2);
  a.H = uniform(a.k, a.k + 6);
  a.W = uniform(a.k, a.k + 9);
  a.O = width() % 70 + 1;
  a.Op = (a.O + 7) / 8 * 8;
  a.OH = (a.H + 2 * a.pad - a.k) / a.stride + 1;
  a.OW = (a.W + 2 * a.pad - a.k) / a.stride + 1;
  a.nchw = uniform(0, 1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(a.H) * a.W * a.C), w(a.k * a.k * a.C * a.Op);
  std::vector<float> bias(a.O), act[3];
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = normal(rng);
  for (float& v : bias) v = normal(rng);
  for (auto& v : act) v = values(a.O, 1.0f);
  for (auto& v : act)
    for (float& e : v) e = std::isnan(e) ? 0.5f : e;
  a.w = w.data();
  a.bias = bias.data();
  a.act = uniform(0, 2);
  a.act_in = act[0].data();
  a.act_slope = act[1].data();
  a.act_out = act[2].data();
  const size_t n = static_cast<size_t>(a.OH) * a.OW * a.O;
  std::vector<float> ref(n), got(n);
  dwr::set_isa("portable");
  dwr::float_conv(a, x.data(), ref.data());
  dwr::set_isa("neon");
  dwr::float_conv(a, x.data(), got.data());
  for (size_t i = 0; i < n; ++i)
    if (!(std::fabs(ref[i] - got[i]) <= 1e-4f * (1.0f + std::fabs(ref[i])))) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 600;
  std::printf("neon_vs_portable: table at load: %s\n", dwr::load_isa());  // HWCAP or DWR_ISA
  if (!dwr::set_isa("neon")) {
    std::printf("neon_vs_portable: this CPU runs no NEON table\n");
    return 2;
  }
  int counts[5] = {};
  static const char* kNames[5] = {"conv", "pack", "pool", "dense", "stem"};
  for (int i = 0; i < cases; ++i) {
    dwr::set_num_threads(i % 4 == 3 ? 2 : 1);
    const bool ok[5] = {conv_case(i % 14), pack_case(), pool_case(), dense_case(),
                        i % 2 == 0 ? stem_case() : true};
    for (int j = 0; j < 5; ++j) {
      if (!ok[j]) {
        std::printf("neon_vs_portable: MISMATCH in %s case %d\n", kNames[j], i);
        return 1;
      }
      counts[j] += j < 4 || i % 2 == 0;
    }
  }
  std::printf("neon_vs_portable: %d conv, %d pack, %d pool, %d dense cases bit-identical; "
              "%d stem cases within rounding\n",
              counts[0], counts[1], counts[2], counts[3], counts[4]);
  return 0;
}
