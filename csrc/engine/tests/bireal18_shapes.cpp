// Bi-Real-18 at 224x224, batch 1, one thread, as the engine runs it: the stem, max-pool and
// sign packing, the 16 binary convs (float epilogue with residual, next input packed), the
// three downsampling shortcuts (2x2 average pool + 1x1 float conv) and the classifier, on
// random weights. Not a correctness test: benchmarks/arm_count.py runs it under qemu-aarch64
// with an instruction trace to count each kernel's instructions (docs/engine.md, ARM).
// Usage: bireal18_shapes [isa]   (default neon)
#include <cstdio>
#include <random>
#include <vector>

#include "conv.h"
#include "dispatch.h"
#include "float_conv.h"
#include "threads.h"

namespace {

std::mt19937 rng(18);

std::vector<float> randoms(size_t n) {
  std::vector<float> v(n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& x : v) x = normal(rng);
  return v;
}

// A float conv k x k, stride s, padding k/2 on an NHWC (or NCHW) image of side S.
std::vector<float> float_conv(const std::vector<float>& x, int S, int C, int O, int k, int s,
                              bool nchw) {
  dwr::FloatConvArgs a{};
  a.N = 1;
  a.H = a.W = S;
  a.C = C;
  a.O = O;
  a.Op = (O + 7) / 8 * 8;
  a.k = k;
  a.stride = s;
  a.pad = k / 2;
  a.OH = a.OW = (S + 2 * a.pad - k) / s + 1;
  a.nchw = nchw;
  const std::vector<float> w = randoms(static_cast<size_t>(k) * k * C * a.Op), b = randoms(O);
  a.w = w.data();
  a.bias = b.data();
  std::vector<float> out(static_cast<size_t>(a.OH) * a.OW * O);
  dwr::float_conv(a, x.data(), out.data());
  return out;
}

// One binary 3x3 conv of the Bi-Real block: y = scale * dot + bias + residual, and the signs
// of y packed for the next conv.
void binary_block(const std::vector<uint64_t>& bits, int S, int C, int O, int stride,
                  const std::vector<float>& residual, std::vector<float>& y,
                  std::vector<uint64_t>& next) {
  dwr::ConvGeom g{};
  g.N = 1;
  g.H = g.W = S;
  g.C = C;
  g.Cw = (C + 63) / 64;
  g.O = O;
  g.Op = (O + 3) / 4 * 4;
  g.k = 3;
  g.stride = stride;
  g.pad = 1;
  g.OH = g.OW = (S + 2 - 3) / stride + 1;
  g.T = 9;
  g.Kp = 9 * g.Cw;
  std::vector<uint64_t> w(static_cast<size_t>(g.Op) * g.Kp);
  for (uint64_t& v : w) v = (static_cast<uint64_t>(rng()) << 32) | rng();
  const std::vector<int32_t> wpop(static_cast<size_t>(O) * 9, 32 * g.Cw);
  std::vector<uint64_t> prep(dwr::prepared_weight_words(g.Op, g.Kp));
  dwr::prepare_weight(w.data(), g.Op, g.Kp, prep.data());  // once per layer, at load
  const std::vector<float> scale = randoms(O), bias = randoms(O);
  const size_t P = static_cast<size_t>(g.OH) * g.OW;
  y.assign(P * O, 0.0f);
  next.assign(P * ((O + 63) / 64), 0);
  dwr::Epilogue ep;
  ep.mode = dwr::MODE_FLOAT;
  ep.out_float = y.data();
  ep.scale = scale.data();
  ep.bias = bias.data();
  ep.residual = residual.data();
  ep.next_bits = next.data();
  dwr::binary_conv(g, bits.data(), w.data(), wpop.data(), ep, prep.data());
}

}  // namespace

int main(int argc, char** argv) {
  dwr::set_num_threads(1);
  if (!dwr::set_isa(argc > 1 ? argv[1] : "neon")) return 2;
  const std::vector<float> image = randoms(3 * 224 * 224);
  const std::vector<float> stem = float_conv(image, 224, 3, 64, 7, 2, true);  // 112 x 112
  std::vector<float> x(56 * 56 * 64);
  dwr::max_pool(stem.data(), 1, 112, 112, 64, 3, 2, 1, x.data());
  std::vector<uint64_t> bits(56 * 56);
  dwr::pack_signs(x.data(), nullptr, 56 * 56, 64, bits.data());
  int S = 56, C = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int O = 64 << stage;
    for (int i = 0; i < 4; ++i) {
      const int stride = stage > 0 && i == 0 ? 2 : 1;
      std::vector<float> residual = x;
      if (stride == 2) {  // 2x2 average pool, then a 1x1 float conv to O channels
        std::vector<float> pooled(static_cast<size_t>(S / 2) * (S / 2) * C);
        dwr::avg_pool_ceil(x.data(), 1, S, S, C, 2, pooled.data());
        residual = float_conv(pooled, S / 2, C, O, 1, 1, false);
      }
      std::vector<uint64_t> next;
      binary_block(bits, S, C, O, stride, residual, x, next);
      bits.swap(next);
      S /= stride;
      C = O;
    }
  }
  std::vector<float> pooled(512), logits(1000);
  dwr::avg_pool_ceil(x.data(), 1, 7, 7, 512, 7, pooled.data());
  const std::vector<float> fc = randoms(16 * 512 * 64), fb = randoms(16 * 64);
  dwr::dense(pooled.data(), 1, 512, fc.data(), fb.data(), 1000, logits.data());
  std::printf("bireal18_shapes: %s, logit 0 = %g\n", dwr::kernel_isa(), logits[0]);
  return 0;
}
