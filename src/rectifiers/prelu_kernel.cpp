// PReLU forward and fused backward over (outer, C, inner) memory blocks; see prelu_kernel.py.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>
#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace {

typedef uint16_t bf16;  // bfloat16 bits: the high half of a float

inline float bf16_load(bf16 b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN to the canonical quiet NaN: c10::BFloat16's rule.
inline bf16 bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return f != f ? static_cast<bf16>(0x7fc0) : static_cast<bf16>(r);
}

// Storage type S, the type arithmetic happens in (op), and the chunk accumulator (acc): S itself
// for float and double.
template <typename S> struct Io {
  typedef S op;
  typedef S acc;
  static inline S ld(S v) { return v; }
  static inline S st(S v) { return v; }
};
template <> struct Io<bf16> {
  typedef float op;
  typedef float acc;
  static inline float ld(bf16 v) { return bf16_load(v); }
  static inline bf16 st(float v) { return bf16_round(v); }
};

double read_slope(int wdtype, const void* w, int64_t i) {
  if (wdtype == 0) return static_cast<const float*>(w)[i];
  if (wdtype == 1) return static_cast<const double*>(w)[i];
  return bf16_load(static_cast<const bf16*>(w)[i]);
}

void write_slope(int wdtype, void* w, int64_t i, double v) {
  if (wdtype == 0) static_cast<float*>(w)[i] = static_cast<float>(v);
  else if (wdtype == 1) static_cast<double*>(w)[i] = v;
  else static_cast<bf16*>(w)[i] = bf16_round(static_cast<float>(v));
}

// The slope as the reference uses it: weight.to(x.dtype), then widened for arithmetic.
template <typename S> typename Io<S>::op slope_as(double v) { return static_cast<S>(v); }
template <> float slope_as<bf16>(double v) { return bf16_load(bf16_round(static_cast<float>(v))); }

// Explicit loops for bfloat16 on CPUs with AVX512_BF16 (Vec<bf16>::on); the portable loops below
// compile to ~6 integer ops per rounding, which made the bfloat16 backward compute-bound. Every other
// dtype or CPU keeps the portable loops; both give the same bits.
template <typename S> struct Vec { static constexpr bool on = false; };
#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
template <> struct Vec<bf16> {
  static constexpr bool on = true;

  static inline __m512 widen(__m256i b) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
  }
  // vcvtneps2bf16 rounds to nearest even in one instruction, but flushes denormals to zero and
  // keeps a NaN's sign and payload; lanes holding those (rare) take bf16_round's integer rule.
  static inline __m256i round(__m512 f) {
    const __m256i r = (__m256i)_mm512_cvtneps_pbh(f);
    const __mmask16 odd = _mm512_fpclass_ps_mask(f, 0x01 | 0x20 | 0x80);  // QNaN, denormal, SNaN
    if (__builtin_expect(odd == 0, 1)) return r;
    const __m512i u = _mm512_castps_si512(f);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
    __m256i slow = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_add_epi32(u, bias), 16));
    slow = _mm256_mask_set1_epi16(slow, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q), 0x7fc0);
    return _mm256_mask_blend_epi16(odd, r, slow);
  }
  // Lanes left for the last, partial vector of n elements.
  static inline __mmask16 tail(int64_t n) { return static_cast<__mmask16>((1u << (n & 15)) - 1); }

  // y = x > 0 ? x : round(a·x) over n elements; slopes a[i] (STEP 1) or a[0] (STEP 0).
  template <int STEP>
  static void forward(const bf16* x, bf16* y, const float* a, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) forward_step<STEP>(x + i, y + i, a + STEP * i, 0xffff);
    if (i < n) forward_step<STEP>(x + i, y + i, a + STEP * i, tail(n));
  }
  template <int STEP>
  static inline void forward_step(const bf16* x, bf16* y, const float* a, __mmask16 m) {
    const __m256i xb = _mm256_maskz_loadu_epi16(m, x);
    const __m512 v = widen(xb);
    const __m512 s = STEP ? _mm512_maskz_loadu_ps(m, a) : _mm512_set1_ps(a[0]);
    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    _mm256_mask_storeu_epi16(y, m, _mm256_mask_blend_epi16(pos, round(_mm512_mul_ps(s, v)), xb));
  }

  // 16 lanes (mask m) of the backward: gx = x > 0 ? g : round(a·g); returns sum + (x > 0 ? 0 : g·x).
  template <bool GX, bool GW>
  static inline __m512 step(const bf16* x, const bf16* g, bf16* gx, __m512 a, __m512 sum, __mmask16 m) {
    const __m512 v = widen(_mm256_maskz_loadu_epi16(m, x));
    const __m256i gb = _mm256_maskz_loadu_epi16(m, g);
    const __m512 d = widen(gb);
    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    if (GX) _mm256_mask_storeu_epi16(gx, m, _mm256_mask_blend_epi16(pos, round(_mm512_mul_ps(a, d)), gb));
    if (GW) sum = _mm512_mask3_fmadd_ps(d, v, sum, static_cast<__mmask16>(~pos & m));
    return sum;
  }

  // One run of n elements sharing the slope s; returns its Σ g·x over x <= 0.
  template <bool GX, bool GW>
  static float backward_run(const bf16* x, const bf16* g, bf16* gx, float s, int64_t n) {
    const __m512 a = _mm512_set1_ps(s);
    __m512 sum = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) sum = step<GX, GW>(x + i, g + i, gx + i, a, sum, 0xffff);
    if (i < n) sum = step<GX, GW>(x + i, g + i, gx + i, a, sum, tail(n));
    return _mm512_reduce_add_ps(sum);
  }

  // n elements against per-element slopes a[i], adding to per-element sums[i].
  template <bool GX, bool GW>
  static void backward_tiled(const bf16* x, const bf16* g, bf16* gx, const float* a, float* sums, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = i + 16 <= n ? 0xffff : tail(n);
      const __m512 s = GW ? _mm512_maskz_loadu_ps(m, sums + i) : _mm512_setzero_ps();
      const __m512 ai = _mm512_maskz_loadu_ps(m, a + i);
      const __m512 r = step<GX, GW>(x + i, g + i, gx ? gx + i : nullptr, ai, s, m);
      if (GW) _mm512_mask_storeu_ps(sums + i, m, r);
    }
  }

  // `groups` groups of W elements (W a multiple of 16), slopes and sums held in registers.
  template <bool GX, bool GW, int64_t W>
  static void backward_groups(const bf16* x, const bf16* g, bf16* gx, const float* a, float* sums,
                              int64_t groups) {
    __m512 al[W / 16], sr[W / 16];
    for (int64_t j = 0; j < W / 16; ++j) {
      al[j] = _mm512_loadu_ps(a + 16 * j);
      sr[j] = _mm512_setzero_ps();
    }
    for (int64_t t = 0; t < groups; ++t, x += W, g += W, gx = GX ? gx + W : nullptr)
#pragma GCC unroll 8
      for (int64_t j = 0; j < W / 16; ++j)
        sr[j] = step<GX, GW>(x + 16 * j, g + 16 * j, GX ? gx + 16 * j : nullptr, al[j], sr[j], 0xffff);
    if (GW)
      for (int64_t j = 0; j < W / 16; ++j) _mm512_storeu_ps(sums + 16 * j, sr[j]);
  }
};
#endif

// Work is split into chunks that depend only on its size (never on the thread count), so the
// slope gradient's summation order, hence its value, is the same for any number of threads.
inline int64_t chunk_count(int64_t work) {
  int64_t k = work / 32768;
  return k < 1 ? 1 : (k > 64 ? 64 : k);
}

// Rows of C channels, the channel being the fastest axis (channels_last maps, (N, C) fc outputs).
// A row holds only 16 to 128 elements in the small nets, so the loop must not restart per row with
// the slopes and the per-channel sums in memory. Where C divides a fixed width W (fixed_width: 64
// for C = 8 or 16, C itself for 32, 64, 128) a group of W / C rows is one loop of W elements over
// slopes and sums in fixed-size arrays the compiler keeps in vector registers across groups. Any
// other C loops over groups of about 1024 elements against the slopes tiled once per row (W = 0).
inline int64_t fixed_width(int64_t C) {
  if (C == 8 || C == 16) return 64;
  return C == 32 || C == 64 || C == 128 ? C : 0;
}

inline int64_t row_width(int64_t C) {
  const int64_t w = fixed_width(C);
  return w ? w : (C >= 1024 ? C : (1024 / C) * C);
}

template <typename T>
std::vector<T> tile(const T* a, int64_t C, int64_t width) {
  std::vector<T> tiled(width);
  for (int64_t t = 0; t < width / C; ++t)
    for (int64_t c = 0; c < C; ++c) tiled[t * C + c] = a[c];
  return tiled;
}

// The parallel chunks of `outer` rows (`rows` each, the last one shorter) and their groups of
// `group` rows spanning `width` values, with the slopes tiled to that width.
template <typename T, int64_t W>
struct RowChunks {
  int64_t outer, chunks, rows, width, group;
  std::vector<T> tiled;
  RowChunks(const T* a, int64_t outer_, int64_t C, int64_t chunks_)
      : outer(outer_), chunks(chunks_), rows((outer_ + chunks_ - 1) / chunks_),
        width(W ? W : row_width(C)), group(width / C), tiled(tile(a, C, width)) {}

  // body(k, first row, end row) for every chunk k, on up to `threads` threads.
  template <typename F>
  void each(int threads, F&& body) const {
#pragma omp parallel for num_threads(threads) schedule(static) if (chunks > 1)
    for (int64_t k = 0; k < chunks; ++k) body(k, k * rows, (k + 1) * rows < outer ? (k + 1) * rows : outer);
  }
};

// y = PReLU(x) over n elements, with a slope per element (PER = 1: a[i]) or one for all (PER = 0:
// a[0]). Inlined with a constant n (a register group), the compiler unrolls it for that width.
template <typename S, int PER>
inline void forward_span(const S* __restrict x, S* __restrict y, const typename Io<S>::op* __restrict a,
                         int64_t n) {
  typedef typename Io<S>::op op;
  if constexpr (Vec<S>::on) {
    Vec<S>::template forward<PER>(x, y, a, n);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const op v = Io<S>::ld(x[i]);
      y[i] = v > 0 ? x[i] : Io<S>::st((PER ? a[i] : a[0]) * v);
    }
  }
}

template <typename S, int64_t W>
void forward_rows(const S* __restrict x, S* __restrict y, const typename Io<S>::op* __restrict a,
                  int64_t outer, int64_t C, int64_t chunks, int threads) {
  typedef typename Io<S>::op op;
  const RowChunks<op, W> rc(a, outer, C, chunks);
  const int64_t group = rc.group;
  rc.each(threads, [&](int64_t, int64_t o, int64_t end) {
    if constexpr (W > 0) {
      op al[W];
      for (int64_t i = 0; i < W; ++i) al[i] = rc.tiled[i];
      for (; o + group <= end; o += group) forward_span<S, 1>(x + o * C, y + o * C, al, W);
    }
    for (; o < end; o += group) {  // every group when W = 0, else the last rows of the chunk
      const int64_t n = (end - o < group ? end - o : group) * C;
      forward_span<S, 1>(x + o * C, y + o * C, rc.tiled.data(), n);
    }
  });
}

// Each chunk leaves row_width(C) partial sums (group · C), which the caller folds per channel.
template <typename S, bool GX, bool GW, int64_t W>
void backward_rows(const S* __restrict x, const S* g, S* gx,
                   const typename Io<S>::op* __restrict a, typename Io<S>::acc* __restrict sums,
                   int64_t outer, int64_t C, int64_t chunks, int threads) {
  typedef typename Io<S>::op op;
  typedef typename Io<S>::acc acc;
  const RowChunks<op, W> rc(a, outer, C, chunks);
  const int64_t group = rc.group;
  rc.each(threads, [&](int64_t k, int64_t o, int64_t end) {
    acc* __restrict sk = GW ? sums + k * rc.width : nullptr;
    if constexpr (W > 0) {
      op al[W];
      acc sr[W];
      for (int64_t i = 0; i < W; ++i) {
        al[i] = rc.tiled[i];
        sr[i] = acc(0);
      }
      if constexpr (Vec<S>::on) {  // the same loop, on whole vectors
        const int64_t groups = (end - o) / group;
        Vec<S>::template backward_groups<GX, GW, W>(x + o * C, g + o * C, GX ? gx + o * C : nullptr, al, sr,
                                                   groups);
        o += groups * group;
      }
      // Written out, not shared with the tail loop below: in a shared helper the sums left their
      // registers (slower in float32).
      for (; !Vec<S>::on && o + group <= end; o += group) {
        const S* __restrict xr = x + o * C;
        const S* gr = g + o * C;
        S* gxr = GX ? gx + o * C : nullptr;
#pragma omp simd
        for (int64_t i = 0; i < W; ++i) {
          const op v = Io<S>::ld(xr[i]);
          const op d = Io<S>::ld(gr[i]);
          if (GX) gxr[i] = v > 0 ? gr[i] : Io<S>::st(al[i] * d);
          if (GW) sr[i] += v > 0 ? op(0) : d * v;
        }
      }
      if (GW)
        for (int64_t i = 0; i < W; ++i) sk[i] = sr[i];
    }
    const op* __restrict at = rc.tiled.data();
    for (; o < end; o += group) {  // every group when W = 0, else the last rows of the chunk
      const int64_t n = (end - o < group ? end - o : group) * C;
      const S* __restrict xr = x + o * C;
      const S* gr = g + o * C;
      S* gxr = GX ? gx + o * C : nullptr;
      if constexpr (Vec<S>::on) {
        Vec<S>::template backward_tiled<GX, GW>(xr, gr, gxr, at, sk, n);
        continue;
      }
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) {
        const op v = Io<S>::ld(xr[i]);
        const op d = Io<S>::ld(gr[i]);
        if (GX) gxr[i] = v > 0 ? gr[i] : Io<S>::st(at[i] * d);
        if (GW) sk[i] += v > 0 ? op(0) : d * v;
      }
    }
  });
}

// body(k, p, n, c) for every chunk k and each of its runs of n elements from p that share channel
// c's slope (in NCHW maps a channel is a run of `inner` elements), on up to `threads` threads.
template <typename F>
void each_run(int64_t total, int64_t inner, int64_t C, int64_t chunks, int threads, F&& body) {
  const int64_t per = (total + chunks - 1) / chunks;
#pragma omp parallel for num_threads(threads) schedule(static) if (chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t end = (k + 1) * per < total ? (k + 1) * per : total;
    for (int64_t p = k * per; p < end;) {
      const int64_t run = p / inner;
      const int64_t stop = (run + 1) * inner < end ? (run + 1) * inner : end;
      body(k, p, stop - p, run % C);
      p = stop;
    }
  }
}

template <typename S>
void forward(const S* __restrict x, S* __restrict y, const typename Io<S>::op* __restrict a,
             int64_t outer, int64_t C, int64_t inner, int threads) {
  typedef typename Io<S>::op op;
  const int64_t total = outer * C * inner;
  const int64_t chunks = chunk_count(total);
  if (inner == 1 && C > 1) {
    switch (fixed_width(C)) {
      case 32: return forward_rows<S, 32>(x, y, a, outer, C, chunks, threads);
      case 64: return forward_rows<S, 64>(x, y, a, outer, C, chunks, threads);
      case 128: return forward_rows<S, 128>(x, y, a, outer, C, chunks, threads);
      default: return forward_rows<S, 0>(x, y, a, outer, C, chunks, threads);
    }
  }
  each_run(total, inner, C, chunks, threads, [&](int64_t, int64_t p, int64_t n, int64_t c) {
    const op s = a[c];
    forward_span<S, 0>(x + p, y + p, &s, n);
  });
}

// x may also be the forward's output y when every slope is positive: y > 0 exactly where x > 0,
// and the caller divides Σ g·y by the slope (see run_backward).
template <typename S, bool GX, bool GW>
void backward(const S* __restrict x, const S* g, S* gx,
              const typename Io<S>::op* __restrict a, double* __restrict gw, int64_t outer, int64_t C,
              int64_t inner, int threads) {
  typedef typename Io<S>::op op;
  typedef typename Io<S>::acc acc;
  const int64_t total = outer * C * inner;
  const int64_t chunks = chunk_count(total);
  const bool rows_of_channels = inner == 1 && C > 1;
  const int64_t width = rows_of_channels ? row_width(C) : C;
  std::vector<acc> partial(GW ? chunks * width : 0, acc(0));
  acc* sums = partial.data();
  if (rows_of_channels) {
    switch (fixed_width(C)) {
      case 32: backward_rows<S, GX, GW, 32>(x, g, gx, a, sums, outer, C, chunks, threads); break;
      case 64: backward_rows<S, GX, GW, 64>(x, g, gx, a, sums, outer, C, chunks, threads); break;
      case 128: backward_rows<S, GX, GW, 128>(x, g, gx, a, sums, outer, C, chunks, threads); break;
      default: backward_rows<S, GX, GW, 0>(x, g, gx, a, sums, outer, C, chunks, threads);
    }
  } else {
    each_run(total, inner, C, chunks, threads, [&](int64_t k, int64_t p, int64_t n, int64_t c) {
      const op s = a[c];
      const S* __restrict xs = x + p;
      const S* gs = g + p;
      S* gxs = GX ? gx + p : nullptr;
      acc sum = 0;
      if constexpr (Vec<S>::on) {
        sum = Vec<S>::template backward_run<GX, GW>(xs, gs, gxs, s, n);
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) {
          const op v = Io<S>::ld(xs[i]);
          const op d = Io<S>::ld(gs[i]);
          if (GX) gxs[i] = v > 0 ? gs[i] : Io<S>::st(s * d);
          if (GW) sum += v > 0 ? op(0) : d * v;
        }
      }
      if (GW) sums[k * width + c] += sum;
    });
  }
  if (GW) {
    const int64_t group = width / C;
    for (int64_t c = 0; c < C; ++c) gw[c] = 0.0;
    for (int64_t k = 0; k < chunks; ++k)
      for (int64_t t = 0; t < group; ++t)
        for (int64_t c = 0; c < C; ++c) gw[c] += static_cast<double>(sums[k * width + t * C + c]);
  }
}

template <typename S>
std::vector<typename Io<S>::op> slopes(int wdtype, const void* w, int64_t C) {
  std::vector<typename Io<S>::op> a(C);
  for (int64_t c = 0; c < C; ++c) a[c] = slope_as<S>(read_slope(wdtype, w, c));
  return a;
}

// Whether x can be told from y = PReLU(x) for the backward: every slope positive (so y > 0
// exactly where x > 0, and x = y / a on the other side) and within [2^-20, 2^20] (so a·x neither
// underflows nor overflows for any activation a network produces).
template <typename T>
bool invertible(const std::vector<T>& a) {
  for (const T v : a)
    if (!(v >= T(1.0 / 1048576.0) && v <= T(1048576.0))) return false;
  return true;
}

template <typename S>
int run_forward(const void* x, void* y, int wdtype, const void* w, int64_t outer, int64_t C,
                int64_t inner, int threads) {
  const auto a = slopes<S>(wdtype, w, C);
  forward<S>(static_cast<const S*>(x), static_cast<S*>(y), a.data(), outer, C, inner, threads);
  return invertible(a) ? 0 : 2;
}

// src is x, or y when from_output: then Σ_{y<=0} g·y = a·Σ_{x<=0} g·(y/a), and the sum is divided
// by the slope a (the one the forward used, in x's dtype) to give Eq. 2's Σ g·x.
template <typename S>
void run_backward(const void* src, const void* g, void* gx, int wdtype, const void* w, void* gw,
                  int64_t outer, int64_t C, int64_t inner, int threads, int from_output) {
  const auto a = slopes<S>(wdtype, w, C);
  const S* xs = static_cast<const S*>(src);
  const S* gs = static_cast<const S*>(g);
  S* gxs = static_cast<S*>(gx);
  std::vector<double> sums(gw ? C : 0);
  if (gx && gw) backward<S, true, true>(xs, gs, gxs, a.data(), sums.data(), outer, C, inner, threads);
  else if (gx) backward<S, true, false>(xs, gs, gxs, a.data(), nullptr, outer, C, inner, threads);
  else if (gw) backward<S, false, true>(xs, gs, nullptr, a.data(), sums.data(), outer, C, inner, threads);
  if (gw)
    for (int64_t c = 0; c < C; ++c)
      write_slope(wdtype, gw, c, from_output ? sums[c] / static_cast<double>(a[c]) : sums[c]);
}

}  // namespace

extern "C" {

int rectifiers_prelu_abi() { return 2; }

// Returns 1 for unsupported dtypes, else 0 when x can be recovered from y (see invertible), 2 when not.
int rectifiers_prelu_forward(int dtype, const void* x, void* y, int wdtype, const void* w,
                             int64_t outer, int64_t C, int64_t inner, int threads) {
  if (wdtype < 0 || wdtype > 2) return 1;
  if (dtype == 0) return run_forward<float>(x, y, wdtype, w, outer, C, inner, threads);
  if (dtype == 1) return run_forward<double>(x, y, wdtype, w, outer, C, inner, threads);
  if (dtype == 2) return run_forward<bf16>(x, y, wdtype, w, outer, C, inner, threads);
  return 1;
}

// src is x, or the forward's output y when from_output (only where the forward returned 0);
// gx or gw may be null: that gradient is not computed. gx may be g itself: every element of g is
// read before the same element of gx is written (no __restrict on them; `omp simd` vectorizes).
int rectifiers_prelu_backward(int dtype, const void* src, const void* g, void* gx, int wdtype,
                              const void* w, void* gw, int64_t outer, int64_t C, int64_t inner,
                              int threads, int from_output) {
  if (wdtype < 0 || wdtype > 2) return 1;
  if (dtype == 0) run_backward<float>(src, g, gx, wdtype, w, gw, outer, C, inner, threads, from_output);
  else if (dtype == 1) run_backward<double>(src, g, gx, wdtype, w, gw, outer, C, inner, threads, from_output);
  else if (dtype == 2) run_backward<bf16>(src, g, gx, wdtype, w, gw, outer, C, inner, threads, from_output);
  else return 1;
  return 0;
}

}  // extern "C"
