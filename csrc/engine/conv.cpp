// The binary conv driver: tiling over pixels and output channels, im2col on bits, the
// padded-tap correction and the integer/bit epilogues. The GEMM micro-kernels and the float
// epilogue come from the active kernel table (kernels/), so this file has no ISA code.
#include <algorithm>
#include <vector>

#include "conv.h"
#include "kernels/kernels.h"
#include "threads.h"

namespace dwr {
namespace {

// The outputs o0..o1-1 of pixels p0..p0+m-1 (o0 a multiple of 64, so that bit words are
// whole), from their dot products.
void epilogue(const Kernels& kt, const ConvGeom& g, const Epilogue& ep, const Dots& dots,
              int64_t p0, int m, int o0, int o1) {
  if (ep.mode == MODE_FLOAT) {
    kt.epilogue_float(g, ep, dots, p0, m, o0, o1);
  } else if (ep.mode == MODE_BITS && kt.epilogue_bits) {
    kt.epilogue_bits(g, ep, dots, p0, m, o0, o1);
  } else if (ep.mode == MODE_INT) {
    for (int r = 0; r < m; ++r) {
      int32_t* __restrict out = ep.out_int + (p0 + r) * g.O;
      for (int o = o0; o < o1; ++o) out[o] = dots.at(r, o);
    }
  } else {
    const int ocw = (g.O + 63) / 64;
    for (int r = 0; r < m; ++r) {
      uint64_t* out = ep.out_bits + (p0 + r) * ocw;
      for (int w = o0 / 64; w < (o1 + 63) / 64; ++w) {
        uint64_t word = 0;
        const int end = std::min(g.O, 64 * w + 64);
        for (int o = 64 * w; o < end; ++o) {
          const int32_t d = dots.at(r, o);
          const bool positive = ep.flip[o] ? d <= ep.thr[o] : d >= ep.thr[o];
          word |= static_cast<uint64_t>(!positive) << (o & 63);
        }
        out[w] = word;
      }
    }
  }
}

// Output pixel coordinates of a run of consecutive pixels, advanced without divisions.
struct PixelCursor {
  const ConvGeom& g;
  int n, oy, ox;
  PixelCursor(const ConvGeom& geom, int64_t p) : g(geom) {
    const int64_t per_image = static_cast<int64_t>(g.OH) * g.OW;
    n = static_cast<int>(p / per_image);
    const int rem = static_cast<int>(p % per_image);
    oy = rem / g.OW;
    ox = rem % g.OW;
  }
  void next() {
    if (++ox < g.OW) return;
    ox = 0;
    if (++oy < g.OH) return;
    oy = 0;
    ++n;
  }
};

// A few words (a tap row is 1-12 words at the usual widths): a plain loop, not memmove's call
// and size dispatch, which cost about as much as a 64-channel layer's GEMM (3 calls a pixel).
// GCC would turn the loop back into memmove; this attribute (on both functions, so that the
// copy inlines) keeps it a loop.
#if defined(__GNUC__) && !defined(__clang__)
#define DWR_NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DWR_NO_MEMMOVE
#endif
DWR_NO_MEMMOVE inline void copy_words(const uint64_t* __restrict src, int n, uint64_t* __restrict dst) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}

// im2col on bits for pixels p0..p0+m-1, each input pixel `cw` words (Cw times the table's
// words per input word): row = [tap][word], padded taps zero. padded[r] has bit t set for
// each tap t of pixel r's window outside the image (k <= 7: at most 49 taps), which its dot
// product must leave out.
DWR_NO_MEMMOVE void im2col(const ConvGeom& g, const uint64_t* in, int cw, int64_t p0, int m, uint64_t* rows,
            uint64_t* padded) {
  const int k = g.k, width = g.T * cw;
  PixelCursor at(g, p0);
  for (int r = 0; r < m; ++r, at.next()) {
    uint64_t* dst = rows + static_cast<int64_t>(r) * width;
    const int iy0 = at.oy * g.stride - g.pad, ix0 = at.ox * g.stride - g.pad;
    const bool inside = iy0 >= 0 && ix0 >= 0 && iy0 + k <= g.H && ix0 + k <= g.W;
    padded[r] = 0;
    const uint64_t* base = in + static_cast<int64_t>(at.n) * g.H * g.W * cw;
    if (inside) {
      for (int ky = 0; ky < k; ++ky)
        copy_words(base + (static_cast<int64_t>(iy0 + ky) * g.W + ix0) * cw, k * cw,
                   dst + ky * k * cw);
      continue;
    }
    std::fill(dst, dst + width, 0);
    for (int ky = 0; ky < k; ++ky) {
      const int iy = iy0 + ky;
      for (int kx = 0; kx < k; ++kx) {
        const int ix = ix0 + kx, t = ky * k + kx;
        if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W) {
          padded[r] |= 1ULL << t;
          continue;
        }
        copy_words(base + (static_cast<int64_t>(iy) * g.W + ix) * cw, cw, dst + t * cw);
      }
    }
  }
}

// How a layer's work splits into tasks: `chunk` pixels by `slice_blocks` 64-channel blocks.
struct Tiling {
  int chunk, slice_blocks, n_slices;
  int64_t n_tasks;
};

// Pixels per task: an im2col chunk that stays in L1. With several threads the work must
// also split into enough tasks to balance them. Every pixel task streams all the weights,
// so layers with large weights (the deep 3x3 convs on few pixels) split their output
// channels into slices of whole 64-channel blocks instead of making more pixel tasks.
Tiling tiling(const ConvGeom& g, int64_t P, int threads) {
  int chunk = static_cast<int>(std::max<int64_t>(2, 3072 / std::max(1, g.Kp)));
  const int blocks = (g.Op + 63) / 64;
  int slice_blocks = blocks;
  if (threads > 1) {
    const int64_t want = 4 * static_cast<int64_t>(threads);
    const int64_t weight_bytes = static_cast<int64_t>(g.Op) * g.Kp * 16;
    const int64_t pixel_tasks = (P + chunk - 1) / chunk;
    if (weight_bytes > (64 << 10) && pixel_tasks < want && blocks > 1) {
      const int64_t slices = std::min<int64_t>(blocks, (want + pixel_tasks - 1) / pixel_tasks);
      slice_blocks = static_cast<int>((blocks + slices - 1) / slices);
    } else {
      const int64_t per_thread = (P + want - 1) / want;
      chunk = static_cast<int>(std::min<int64_t>(chunk, std::max<int64_t>(8, per_thread)));
    }
  }
  chunk = std::max(2, chunk & ~1);
  const int n_slices = (blocks + slice_blocks - 1) / slice_blocks;
  return {chunk, slice_blocks, n_slices, (P + chunk - 1) / chunk * n_slices};
}

// dot = |valid| * C - 2 * (pop - sum of padded taps' popcounts): the padded taps come out of
// pop here (border pixels only), the rest is done as the epilogue reads the dots.
void correct_borders(const ConvGeom& g, const uint64_t* padded, const int32_t* wpop_t, int m,
                     int o0, int o1, int32_t* pop, int32_t* full) {
  for (int r = 0; r < m; ++r) {
    full[r] = g.T * g.C;
    if (padded[r] == 0) continue;  // an interior pixel
    full[r] -= popcount64(padded[r]) * g.C;
    int32_t* __restrict drow = pop + static_cast<int64_t>(r) * g.Op;
    for (int t = 0; padded[r] >> t != 0; ++t) {
      if (!(padded[r] >> t & 1)) continue;
      const int32_t* __restrict wq = wpop_t + static_cast<int64_t>(t) * g.O;
      for (int o = o0; o < o1; ++o) drow[o] -= wq[o];
    }
  }
}

}  // namespace

void binary_conv(const ConvGeom& g, const uint64_t* in_bits, const uint64_t* wbits,
                 const int32_t* wpop, const Epilogue& ep, const uint64_t* wprep) {
  const int64_t P = static_cast<int64_t>(g.N) * g.OH * g.OW;
  if (P == 0 || g.O == 0) return;
  const Kernels& kt = kernels();
  const Tiling tl = tiling(g, P, get_num_threads());
  // Weight tap popcounts as [T][O], so the border correction runs along output channels.
  thread_local std::vector<int32_t> wpop_t_buf;
  wpop_t_buf.resize(static_cast<size_t>(g.T) * g.O);
  for (int o = 0; o < g.O; ++o)
    for (int t = 0; t < g.T; ++t)
      wpop_t_buf[static_cast<size_t>(t) * g.O + o] = wpop[static_cast<int64_t>(o) * g.T + t];
  const int32_t* wpop_t = wpop_t_buf.data();
  thread_local std::vector<uint64_t> wprep_buf;
  if (wprep == nullptr) {
    wprep_buf.resize(static_cast<size_t>(kt.weight_words(g.Op, g.Kp)));
    kt.prepare_weight(wbits, g.Op, g.Kp, wprep_buf.data());
    wprep = wprep_buf.data();
  }
  // The input in the GEMM's operand form, made once instead of once per tap that reads it.
  const uint64_t* in = in_bits;
  thread_local std::vector<uint64_t> in_buf;
  if (kt.prepare_input) {
    const int64_t n_words = static_cast<int64_t>(g.N) * g.H * g.W * g.Cw;
    in_buf.resize(static_cast<size_t>(n_words * kt.in_words));
    kt.prepare_input(in_bits, n_words, in_buf.data());
    in = in_buf.data();
  }
  const int cw = g.Cw * kt.in_words;
  const int64_t wstride = static_cast<int64_t>(g.Kp) * kt.weight_per_output;

  parallel_for(static_cast<int>(tl.n_tasks), [&](int task) {
    const int64_t p0 = static_cast<int64_t>(task / tl.n_slices) * tl.chunk;
    const int m = static_cast<int>(std::min<int64_t>(tl.chunk, P - p0));
    // output channels [o0, o1) of this task: GEMM rows [o0, op1) of the 4-padded weight
    const int o0 = (task % tl.n_slices) * tl.slice_blocks * 64;
    const int op1 = std::min(g.Op, o0 + tl.slice_blocks * 64), o1 = std::min(g.O, op1);
    thread_local std::vector<uint64_t> rows, padded;
    thread_local std::vector<int32_t> pop, full;
    rows.resize(static_cast<size_t>(m) * g.T * cw);
    pop.resize(static_cast<size_t>(m) * g.Op);
    padded.resize(static_cast<size_t>(m));
    full.resize(static_cast<size_t>(m));
    im2col(g, in, cw, p0, m, rows.data(), padded.data());
    kt.popgemm(rows.data(), m, wprep + o0 * wstride, op1 - o0, g.Kp, pop.data() + o0, g.Op);
    correct_borders(g, padded.data(), wpop_t, m, o0, o1, pop.data(), full.data());
    epilogue(kt, g, ep, Dots{pop.data(), full.data(), g.Op}, p0, m, o0, o1);
  });
}

}  // namespace dwr
