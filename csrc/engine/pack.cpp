// Bit packing: signs of float activations into words, the 2x2 max-pool on bits, and the
// repacking of the ISA-neutral weight layout (lane layout, as stored in engine files) into
// the active kernel table's own.
#include <algorithm>

#include "conv.h"
#include "kernels/kernels.h"
#include "threads.h"

namespace dwr {

int64_t prepared_weight_words(int Op, int Kp) { return kernels().weight_words(Op, Kp); }

void prepare_weight(const uint64_t* wbits, int Op, int Kp, uint64_t* dst) {
  kernels().prepare_weight(wbits, Op, Kp, dst);
}

void pack_signs(const float* x, const float* shift, int64_t P, int C, uint64_t* bits) {
  if (P <= 0 || C <= 0) return;
  const int Cw = (C + 63) / 64;
  const int threads = get_num_threads();
  const int64_t chunk = std::max<int64_t>(64, (P + 4 * threads - 1) / (4 * threads));
  const int64_t n_tasks = (P + chunk - 1) / chunk;
  const auto pack_row = kernels().pack_row;
  parallel_for(static_cast<int>(n_tasks), [&](int task) {
    const int64_t a = task * chunk, b = std::min(P, a + chunk);
    for (int64_t p = a; p < b; ++p) pack_row(x + p * C, shift, C, bits + p * Cw);
  });
}

void pool_bits_2x2(const uint64_t* in, int N, int H, int W, int Cw, uint64_t* out) {
  const int OH = H / 2, OW = W / 2;
  for (int n = 0; n < N; ++n)
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const uint64_t* r0 = in + ((static_cast<int64_t>(n) * H + 2 * y) * W + 2 * x) * Cw;
        const uint64_t* r1 = r0 + static_cast<int64_t>(W) * Cw;
        uint64_t* d = out + ((static_cast<int64_t>(n) * OH + y) * OW + x) * Cw;
        for (int w = 0; w < Cw; ++w) d[w] = r0[w] & r0[Cw + w] & r1[w] & r1[Cw + w];
      }
}

}  // namespace dwr
