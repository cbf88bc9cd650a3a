// Causal-LM cross-entropy on CUDA: the contract of ferrofix-core's `loss` module.
//
// Compiled by NVRTC at first use (no headers: 16-bit floats are handled as their bits).
// Per contributing row, with c = softcap(x), lse = log sum exp(c), smoothing e, z-loss z:
//   loss_row = lse - (1 - e) c[y] - (e / V) sum(c) + z lse^2
//   dloss_row/dc_j = softmax_j (1 + 2 z lse) - e / V - (1 - e) [j = y]
// times (1 - (c_j / s)^2) for the softcap's chain rule, times the reduction's scale.
//
// Launch order on the caller's stream (the host reads the label check once step 1 is done,
// while the rest runs):
//   1. ce_count: one block checks every label and counts the contributing rows;
//      counters = {valid rows, first bad label position or INT64_MAX}, also written to
//      the host's mapped pinned copy.
//   2. ce_onchip_*_c{1,2,4,8} (each row held in the shared memory of a cluster of blocks;
//      ce_onchip_plain_* when the call has no softcap, smoothing or z-loss),
//      ce_fused_* (whole rows per block, each row read twice) for rows too wide for that,
//      or for few rows of a large vocabulary ce_split_stats_* / ce_split_finish_* /
//      ce_split_grad_* (several blocks per row).
//   3. ce_reduce (mean and sum only): the f64 sum of the row losses in a fixed order.
// Backward may add ce_scale_* (the gradient times grad_output, read on the device).
// Every kernel that writes returns at once when counters[1] reports a bad label, so an
// in-place gradient leaves the logits untouched behind the error the host then raises.
// Reductions run in a fixed order for a fixed launch shape: results are bit-reproducible.

typedef unsigned short u16;
typedef long long i64;

#define NO_BAD_LABEL 0x7fffffffffffffffLL
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define REDUCTION_MEAN 0
#define REDUCTION_SUM 1
// Largest block the row kernels are launched with (the host checks it).
#define MAX_THREADS 1024
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fffffff)

// ---- element types ------------------------------------------------------------------

struct F32 { typedef float storage; };
struct F16 { typedef u16 storage; };
struct BF16 { typedef u16 storage; };

template <class D> __device__ __forceinline__ float to_f32(typename D::storage v);
template <> __device__ __forceinline__ float to_f32<F32>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<BF16>(u16 v) {
    return __uint_as_float(((unsigned)v) << 16);
}
template <> __device__ __forceinline__ float to_f32<F16>(u16 v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
}

template <class D> __device__ __forceinline__ typename D::storage from_f32(float v);
template <> __device__ __forceinline__ float from_f32<F32>(float v) { return v; }
// Round to nearest even: one instruction from sm_80 on, else on the bit pattern with NaN
// kept quiet (the CPU backend's rounding).
template <> __device__ __forceinline__ u16 from_f32<BF16>(float v) {
#if __CUDA_ARCH__ >= 800
    u16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
#else
    unsigned bits = __float_as_uint(v);
    if (v != v) return (u16)((bits >> 16) | 0x0040u);
    return (u16)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
#endif
}
template <> __device__ __forceinline__ u16 from_f32<F16>(float v) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// 16 bytes of elements: one vectorised load or store.
template <class D> struct __align__(16) Pack {
    static const int N = 16 / sizeof(typename D::storage);
    typename D::storage v[N];
};

// A pack's elements as f32 and back. bf16 goes word by word: a 32-bit word holds two
// elements, each widened by one shift or mask and narrowed in pairs by one instruction.
template <class D>
__device__ __forceinline__ void unpack(const Pack<D>& p, float (&v)[Pack<D>::N]) {
#pragma unroll
    for (int j = 0; j < Pack<D>::N; ++j) v[j] = to_f32<D>(p.v[j]);
}
template <class D>
__device__ __forceinline__ void repack(const float (&v)[Pack<D>::N], Pack<D>& p) {
#pragma unroll
    for (int j = 0; j < Pack<D>::N; ++j) p.v[j] = from_f32<D>(v[j]);
}
template <>
__device__ __forceinline__ void unpack<BF16>(const Pack<BF16>& p, float (&v)[8]) {
    const unsigned* words = reinterpret_cast<const unsigned*>(p.v);
#pragma unroll
    for (int w = 0; w < 4; ++w) {
        v[2 * w] = __uint_as_float(words[w] << 16);
        v[2 * w + 1] = __uint_as_float(words[w] & 0xffff0000u);
    }
}
template <>
__device__ __forceinline__ void unpack<F16>(const Pack<F16>& p, float (&v)[8]) {
    const unsigned* words = reinterpret_cast<const unsigned*>(p.v);
#pragma unroll
    for (int w = 0; w < 4; ++w)
        asm("{ .reg .f16 lo, hi; mov.b32 {lo, hi}, %2; cvt.f32.f16 %0, lo; cvt.f32.f16 %1, hi; }"
            : "=f"(v[2 * w]), "=f"(v[2 * w + 1]) : "r"(words[w]));
}
#if __CUDA_ARCH__ >= 800
template <>
__device__ __forceinline__ void repack<F16>(const float (&v)[8], Pack<F16>& p) {
    unsigned* words = reinterpret_cast<unsigned*>(p.v);
#pragma unroll
    for (int w = 0; w < 4; ++w)
        asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(words[w]) : "f"(v[2 * w + 1]), "f"(v[2 * w]));
}
template <>
__device__ __forceinline__ void repack<BF16>(const float (&v)[8], Pack<BF16>& p) {
    unsigned* words = reinterpret_cast<unsigned*>(p.v);
#pragma unroll
    for (int w = 0; w < 4; ++w)
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(words[w]) : "f"(v[2 * w + 1]), "f"(v[2 * w]));
}
#endif

// ---- per-call constants -------------------------------------------------------------

struct Options {
    float softcap;     // 0: none
    float smoothing;   // label smoothing e
    float z_scale;     // z-loss scale z
    int reduction;     // REDUCTION_MEAN, REDUCTION_SUM or 2 (none)
    float num_items;   // > 0: divisor of the mean instead of the valid-row count
};

__device__ __forceinline__ float softcapped(float x, float cap) {
    return cap > 0.0f ? cap * tanhf(x / cap) : x;
}

// The softcap as a template argument: the per-element loops carry no tanh or division
// (not even predicated off) unless the call asked for it.
template <bool CAP> __device__ __forceinline__ float capped(float x, float cap) {
    return CAP ? cap * tanhf(x / cap) : x;
}

// 2^x on the special-function unit. Arguments here are <= 0 (x - max); results below
// 2^-126 flush to 0, which no sum or probability of a row can tell apart.
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ i64 label_at(const void* labels, int labels_i64, i64 i) {
    return labels_i64 ? ((const i64*)labels)[i] : (i64)((const int*)labels)[i];
}

// The label row `row` is scored against, or -1 when the row contributes nothing.
__device__ __forceinline__ i64 target_of(const void* labels, int labels_i64, i64 row,
                                         i64 seq_len, int shift, i64 ignore_index,
                                         int vocab) {
    if (row % seq_len + shift >= seq_len) return -1;
    i64 label = label_at(labels, labels_i64, row + shift);
    if (label == ignore_index || label < 0 || label >= vocab) return -1;
    return label;
}

__device__ __forceinline__ float gradient_scale(const Options& o, const i64* counters) {
    if (o.reduction != REDUCTION_MEAN) return 1.0f;
    if (o.num_items > 0.0f) return 1.0f / o.num_items;
    i64 valid = counters[0];
    return valid > 0 ? (float)(1.0 / (double)valid) : 0.0f;
}

// ---- streaming over a span of a row -------------------------------------------------

// Packs each thread loads before using any: several 16-byte loads in flight per thread
// keep enough bytes moving to saturate HBM with one resident block per SM.
#define PACKS_IN_FLIGHT 4

// Streams row[begin, end) over the block's threads: `one(i, x)` for the unaligned head
// and tail elements, `pack(first, v)` for each aligned 16-byte pack of the middle (v holds
// the pack's elements as f32, first is the index of v[0]). Each thread loads AHEAD packs
// before using any. With COPY, every element is also stored to local[i] (`local` is
// addressed like `row` and shares its alignment mod 16, so packs land on 16-byte
// boundaries), by the thread that will read it back.
template <class D, int AHEAD, bool COPY, class One, class Packed>
__device__ __forceinline__ void stream_span(const typename D::storage* row,
                                            typename D::storage* local, int begin, int end,
                                            One one, Packed pack) {
    typedef typename D::storage S;
    const int n = Pack<D>::N;
    unsigned long long address = (unsigned long long)(row + begin);
    int head = (int)(((16u - (unsigned)(address & 15u)) & 15u) / sizeof(S));
    if (head > end - begin) head = end - begin;
    for (int i = begin + (int)threadIdx.x; i < begin + head; i += blockDim.x) {
        S x = row[i];
        if (COPY) local[i] = x;
        one(i, to_f32<D>(x));
    }
    int body = begin + head;
    int packs = (end - body) / n;
    const Pack<D>* vectors = reinterpret_cast<const Pack<D>*>(row + body);
    Pack<D>* copies = COPY ? reinterpret_cast<Pack<D>*>(local + body) : 0;
    const int stride = blockDim.x;
    for (int k0 = threadIdx.x; k0 < packs; k0 += AHEAD * stride) {
        Pack<D> p[AHEAD];
#pragma unroll
        for (int u = 0; u < AHEAD; ++u)
            if (k0 + u * stride < packs) p[u] = vectors[k0 + u * stride];
#pragma unroll
        for (int u = 0; u < AHEAD; ++u) {
            int k = k0 + u * stride;
            if (k < packs) {
                if (COPY) copies[k] = p[u];
                float v[n];
                unpack<D>(p[u], v);
                pack(body + k * n, v);
            }
        }
    }
    for (int i = body + packs * n + (int)threadIdx.x; i < end; i += blockDim.x) {
        S x = row[i];
        if (COPY) local[i] = x;
        one(i, to_f32<D>(x));
    }
}

template <class D, class One, class Packed>
__device__ __forceinline__ void visit(const typename D::storage* row, int begin, int end,
                                      One one, Packed pack) {
    stream_span<D, PACKS_IN_FLIGHT, false>(row, 0, begin, end, one, pack);
}

// Writes out[i] = f(i, in[i]) for row[begin, end): `one(i, x)` returns the new value of
// a head or tail element, `pack(first, v)` rewrites a 16-byte pack's values in place.
// Stores are 16 bytes wide when `in` and `out` share their alignment (always true in
// place and for torch's allocations). In place, every pack is read before it is written
// and packs never overlap, so loading several ahead is safe.
template <class D, class One, class Packed>
__device__ __forceinline__ void rewrite(const typename D::storage* in,
                                        typename D::storage* out, int begin, int end,
                                        One one, Packed pack) {
    typedef typename D::storage S;
    const int n = Pack<D>::N;
    unsigned long long a = (unsigned long long)(in + begin);
    unsigned long long b = (unsigned long long)(out + begin);
    int head = ((a ^ b) & 15u) ? end - begin
                               : (int)(((16u - (unsigned)(a & 15u)) & 15u) / sizeof(S));
    if (head > end - begin) head = end - begin;
    for (int i = begin + (int)threadIdx.x; i < begin + head; i += blockDim.x)
        out[i] = from_f32<D>(one(i, to_f32<D>(in[i])));
    int body = begin + head;
    int packs = (end - body) / n;
    const Pack<D>* source = reinterpret_cast<const Pack<D>*>(in + body);
    Pack<D>* target = reinterpret_cast<Pack<D>*>(out + body);
    const int stride = blockDim.x;
    for (int k0 = threadIdx.x; k0 < packs; k0 += PACKS_IN_FLIGHT * stride) {
        Pack<D> p[PACKS_IN_FLIGHT];
#pragma unroll
        for (int u = 0; u < PACKS_IN_FLIGHT; ++u)
            if (k0 + u * stride < packs) p[u] = source[k0 + u * stride];
#pragma unroll
        for (int u = 0; u < PACKS_IN_FLIGHT; ++u) {
            int k = k0 + u * stride;
            if (k < packs) {
                float v[n];
                unpack<D>(p[u], v);
                pack(body + k * n, v);
                repack<D>(v, p[u]);
                target[k] = p[u];
            }
        }
    }
    for (int i = body + packs * n + (int)threadIdx.x; i < end; i += blockDim.x)
        out[i] = from_f32<D>(one(i, to_f32<D>(in[i])));
}

template <class D>
__device__ __forceinline__ void zero_span(typename D::storage* out, int begin, int end) {
    for (int i = begin + (int)threadIdx.x; i < end; i += blockDim.x) out[i] = from_f32<D>(0.0f);
}

// ---- online log-sum-exp, in base 2 (ex2 is one SFU instruction) --------------------

struct Stats {
    float max2;  // running max of c * log2(e); NaN is skipped here and poisons `sum`
    float sum;   // sum of 2^(c log2 e - max2)
    float sum_c; // sum of c (label smoothing only)
};

__device__ __forceinline__ Stats empty_stats() {
    Stats s;
    s.max2 = -INFINITY;
    s.sum = 0.0f;
    s.sum_c = 0.0f;
    return s;
}

__device__ __forceinline__ void add_value(Stats& s, float c, bool smooth) {
    float x = c * LOG2E;
    if (x > s.max2) {
        s.sum = s.sum * fast_exp2(s.max2 - x) + 1.0f;  // 2^-inf = 0 on the first value
        s.max2 = x;
    } else {
        s.sum += (x == -INFINITY) ? 0.0f : fast_exp2(x - s.max2);  // NaN stays NaN
    }
    if (smooth) s.sum_c += c;
}

// A pack of N values: one rescale at most (against the pack's max), then N independent
// exponentials summed on their own before joining the running sum.
template <int N>
__device__ __forceinline__ void add_pack(Stats& s, const float (&c)[N], bool smooth) {
    float m = c[0];
#pragma unroll
    for (int j = 1; j < N; ++j) m = fmaxf(m, c[j]);  // skips NaN; the sum below does not
    float m2 = m * LOG2E;
    if (m2 > s.max2) {
        s.sum *= fast_exp2(s.max2 - m2);
        s.max2 = m2;
    }
    // While every value so far is -inf (max2 = -inf), subtract nothing: -inf still gives
    // 0 and NaN still poisons the sum.
    float shift = s.max2 == -INFINITY ? 0.0f : s.max2;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < N; ++j) sum += fast_exp2(fmaf(c[j], LOG2E, -shift));
    s.sum += sum;
    if (smooth) {
#pragma unroll
        for (int j = 0; j < N; ++j) s.sum_c += c[j];
    }
}

__device__ __forceinline__ Stats merge(Stats a, Stats b) {
    Stats s;
    s.max2 = fmaxf(a.max2, b.max2);
    if (s.max2 == -INFINITY) {
        s.sum = a.sum + b.sum;
    } else {
        float fa = a.max2 == -INFINITY ? 0.0f : fast_exp2(a.max2 - s.max2);
        float fb = b.max2 == -INFINITY ? 0.0f : fast_exp2(b.max2 - s.max2);
        s.sum = a.sum * fa + b.sum * fb;
    }
    s.sum_c = a.sum_c + b.sum_c;
    return s;
}

// Block-wide merge in a fixed tree order; every thread gets the result.
__device__ Stats block_merge(Stats s) {
    __shared__ Stats warps[32];
    __shared__ Stats total;
    for (int offset = 16; offset > 0; offset >>= 1) {
        Stats o;
        o.max2 = __shfl_xor_sync(0xffffffffu, s.max2, offset);
        o.sum = __shfl_xor_sync(0xffffffffu, s.sum, offset);
        o.sum_c = __shfl_xor_sync(0xffffffffu, s.sum_c, offset);
        s = merge(s, o);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warps[warp] = s;
    __syncthreads();
    if (warp == 0) {
        int count = (blockDim.x + 31) / 32;
        Stats w = lane < count ? warps[lane] : empty_stats();
        for (int offset = 16; offset > 0; offset >>= 1) {
            Stats o;
            o.max2 = __shfl_xor_sync(0xffffffffu, w.max2, offset);
            o.sum = __shfl_xor_sync(0xffffffffu, w.sum, offset);
            o.sum_c = __shfl_xor_sync(0xffffffffu, w.sum_c, offset);
            w = merge(w, o);
        }
        if (lane == 0) total = w;
    }
    __syncthreads();
    Stats result = total;
    __syncthreads();  // `total` may be reused by the next call
    return result;
}

template <class D, bool CAP>
__device__ __forceinline__ Stats span_stats(const typename D::storage* row, int begin,
                                            int end, const Options& o) {
    Stats s = empty_stats();
    const float cap = o.softcap;
    const bool smooth = o.smoothing != 0.0f;
    visit<D>(
        row, begin, end, [&](int, float x) { add_value(s, capped<CAP>(x, cap), smooth); },
        [&](int, float(&v)[Pack<D>::N]) {
#pragma unroll
            for (int j = 0; j < Pack<D>::N; ++j) v[j] = capped<CAP>(v[j], cap);
            add_pack(s, v, smooth);
        });
    return block_merge(s);
}

// lse in natural log; +inf logits give NaN, as on the CPU.
__device__ __forceinline__ float lse_of(const Stats& s) {
    if (s.max2 == INFINITY) return NAN;
    return (s.max2 + log2f(s.sum)) * LN2;
}

// The smoothing term only when smoothing is on: 0 * sum_c would be NaN for a row with
// masked (-inf) entries.
__device__ __forceinline__ float row_loss_of(float lse, float target_c, float sum_c,
                                             int vocab, const Options& o) {
    float loss = lse - (1.0f - o.smoothing) * target_c + o.z_scale * lse * lse;
    if (o.smoothing != 0.0f) loss -= o.smoothing / (float)vocab * sum_c;
    return loss;
}

// The gradient of one span, given the row's lse, target and scale.
template <class D, bool CAP>
__device__ __forceinline__ void span_gradient(const typename D::storage* row,
                                              typename D::storage* out, int begin, int end,
                                              float lse, i64 target, int vocab, float scale,
                                              const Options& o) {
    const float prob_factor = (1.0f + 2.0f * o.z_scale * lse) * scale;
    const float uniform = o.smoothing / (float)vocab * scale;
    const float target_term = (1.0f - o.smoothing) * scale;
    const float lse2 = lse * LOG2E;
    const float cap = o.softcap;
    // d/dx of one element; `hit` says whether it is the target.
    auto grad_of = [&](float x, bool hit) {
        float c = capped<CAP>(x, cap);
        float g = fast_exp2(fmaf(c, LOG2E, -lse2)) * prob_factor - uniform;
        if (hit) g -= target_term;
        if (CAP) {
            float t = c / cap;
            g *= 1.0f - t * t;
        }
        return g;
    };
    rewrite<D>(
        row, out, begin, end, [&](int j, float x) { return grad_of(x, j == target); },
        [&](int first, float(&v)[Pack<D>::N]) {
            // The target's offset in this pack, -1 for every other pack.
            int at = target >= first && target < first + Pack<D>::N ? (int)(target - first) : -1;
#pragma unroll
            for (int j = 0; j < Pack<D>::N; ++j) v[j] = grad_of(v[j], j == at);
        });
}

// ---- 1. label check and valid-row count (one block) ---------------------------------

extern "C" __global__ void ce_count(const void* labels, int labels_i64, i64 rows,
                                    i64 seq_len, int shift, i64 ignore_index, int vocab,
                                    i64* counters, i64* host_counters) {
    __shared__ i64 valid_of[32];
    __shared__ i64 bad_of[32];
    // Label i is the target of row i - shift when that row exists in the same sequence
    // (target_of, read from the label's side); COUNT_AHEAD loads in flight per thread.
    const int COUNT_AHEAD = 4;
    i64 valid = 0, bad = NO_BAD_LABEL;
    for (i64 base = threadIdx.x; base < rows; base += COUNT_AHEAD * blockDim.x) {
        i64 label[COUNT_AHEAD];
#pragma unroll
        for (int u = 0; u < COUNT_AHEAD; ++u) {
            i64 i = base + u * (i64)blockDim.x;
            label[u] = i < rows ? label_at(labels, labels_i64, i) : ignore_index;
        }
#pragma unroll
        for (int u = 0; u < COUNT_AHEAD; ++u) {
            i64 i = base + u * (i64)blockDim.x;
            if (label[u] == ignore_index) continue;
            if (label[u] < 0 || label[u] >= vocab) {
                bad = i < bad ? i : bad;
            } else if (i % seq_len >= shift) {
                ++valid;
            }
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        valid += __shfl_xor_sync(0xffffffffu, valid, offset);
        i64 other = __shfl_xor_sync(0xffffffffu, bad, offset);
        bad = other < bad ? other : bad;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        valid_of[warp] = valid;
        bad_of[warp] = bad;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        i64 total = 0, first = NO_BAD_LABEL;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; ++w) {
            total += valid_of[w];
            first = bad_of[w] < first ? bad_of[w] : first;
        }
        counters[0] = total;
        counters[1] = first;
        // The host's copy, in mapped pinned memory: no copy on the stream to wait for.
        if (host_counters) {
            host_counters[0] = total;
            host_counters[1] = first;
            __threadfence_system();
        }
    }
}

// ---- 2a. whole rows per block: statistics, loss and gradient in one kernel ---------

template <class D, bool CAP>
__device__ __forceinline__ void fused_row(const typename D::storage* logits,
                                          typename D::storage* grad, const void* labels,
                                          int labels_i64, i64 row, i64 seq_len, int shift,
                                          i64 ignore_index, int vocab, const Options& o,
                                          const i64* counters, float* row_loss,
                                          float* lse_out) {
    const typename D::storage* in = logits + row * (i64)vocab;
    typename D::storage* out = grad ? grad + row * (i64)vocab : 0;
    i64 target = target_of(labels, labels_i64, row, seq_len, shift, ignore_index, vocab);
    if (target < 0) {
        if (threadIdx.x == 0) {
            row_loss[row] = 0.0f;
            lse_out[row] = NAN;
        }
        if (out) zero_span<D>(out, 0, vocab);
        return;
    }
    // Read before the statistics' block merge: after it, an in-place gradient may
    // already be overwriting the row.
    float target_c = threadIdx.x == 0 ? softcapped(to_f32<D>(in[target]), o.softcap) : 0.0f;
    Stats s = span_stats<D, CAP>(in, 0, vocab, o);
    float lse = lse_of(s);
    if (threadIdx.x == 0) {
        row_loss[row] = row_loss_of(lse, target_c, s.sum_c, vocab, o);
        lse_out[row] = lse;
    }
    if (out)
        span_gradient<D, CAP>(in, out, 0, vocab, lse, target, vocab,
                              gradient_scale(o, counters), o);
}

// Block b takes rows b, b + gridDim.x, ...: the host sizes the grid so that the rows in
// flight fit in L2, where the gradient pass finds the row the statistics pass just read.
template <class D>
__device__ __forceinline__ void fused_rows(const typename D::storage* logits,
                                           typename D::storage* grad, const void* labels,
                                           int labels_i64, i64 rows, i64 seq_len, int shift,
                                           i64 ignore_index, int vocab, const Options& o,
                                           const i64* counters, float* row_loss,
                                           float* lse_out) {
    if (counters[1] != NO_BAD_LABEL) return;
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        if (o.softcap > 0.0f)
            fused_row<D, true>(logits, grad, labels, labels_i64, row, seq_len, shift,
                               ignore_index, vocab, o, counters, row_loss, lse_out);
        else
            fused_row<D, false>(logits, grad, labels, labels_i64, row, seq_len, shift,
                                ignore_index, vocab, o, counters, row_loss, lse_out);
    }
}

#define FUSED(NAME, D)                                                                      \
    extern "C" __global__ void __launch_bounds__(MAX_THREADS) NAME(                         \
        const D::storage* logits, D::storage* grad, const void* labels, int labels_i64,     \
        i64 rows, i64 seq_len, int shift, i64 ignore_index, int vocab, Options o,           \
        const i64* counters, float* row_loss, float* lse_out) {                             \
        fused_rows<D>(logits, grad, labels, labels_i64, rows, seq_len, shift, ignore_index, \
                      vocab, o, counters, row_loss, lse_out);                               \
    }
FUSED(ce_fused_f32, F32)
FUSED(ce_fused_f16, F16)
FUSED(ce_fused_bf16, BF16)

// ---- 2c. rows on chip: a cluster of C blocks holds each row in shared memory --------
//
// Block r of a cluster copies span r of the row into its shared memory while folding it
// into its statistics; the blocks swap statistics through distributed shared memory and
// merge them in rank order (so all C agree on the lse bit for bit); each then writes its
// span's gradient from shared memory. The logits cross HBM once, the gradient once.
// Clusters (C > 1) need sm_90; the host launches only C = 1 on older devices.

#if __CUDA_ARCH__ >= 900
#define HAS_CLUSTERS 1
#else
#define HAS_CLUSTERS 0
#endif

__device__ __forceinline__ unsigned cluster_rank() {
#if HAS_CLUSTERS
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
#else
    return 0;
#endif
}

// The part [begin, end) of each row of `vocab` entries that this block of a cluster of C
// owns (empty for the last ranks of a narrow row).
template <int C> __device__ __forceinline__ void cluster_span(int vocab, int* begin, int* end) {
    const int width = (vocab + C - 1) / C;
    *begin = min((int)cluster_rank() * width, vocab);
    *end = min(*begin + width, vocab);
}

// Index of this block's cluster and how many clusters the grid holds.
template <int C> __device__ __forceinline__ void cluster_position(i64* index, i64* count) {
#if HAS_CLUSTERS
    if (C > 1) {
        unsigned id, n;
        asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(id));
        asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(n));
        *index = id;
        *count = n;
        return;
    }
#endif
    *index = blockIdx.x;
    *count = gridDim.x;
}

// Every thread of every block of the cluster arrives before any continues; shared
// memory written before it is visible to the whole cluster after it.
__device__ __forceinline__ void cluster_sync() {
#if HAS_CLUSTERS
    asm volatile("barrier.cluster.arrive.release.aligned;\n\t"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
    __syncthreads();
#endif
}

// Store `s` into block `rank`'s copy of the shared variable at `local` (its own when the
// rank is this block's).
__device__ __forceinline__ void push_stats(Stats* local, unsigned rank, const Stats& s) {
#if HAS_CLUSTERS
    unsigned address, remote;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }"
                 : "=r"(address) : "l"(local));
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(address), "r"(rank));
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote), "f"(s.max2) : "memory");
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote + 4), "f"(s.sum) : "memory");
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote + 8), "f"(s.sum_c) : "memory");
#else
    *local = s;
#endif
}

// Packs each thread of the on-chip kernel loads ahead: its blocks are small (the staging
// buffer, not registers, limits how many share an SM), so each thread keeps more bytes in
// flight than the fused kernel's.
#define STAGE_AHEAD 8
// Largest block of the on-chip kernels (the host checks it): a lower bound than the other
// kernels' leaves registers for the loads in flight.
#define ONCHIP_MAX_THREADS 256

// visit() that also copies row[begin, end) to local[begin, end), with more loads ahead.
template <class D, class One, class Packed>
__device__ __forceinline__ void stage(const typename D::storage* row,
                                      typename D::storage* local, int begin, int end,
                                      One one, Packed pack) {
    stream_span<D, STAGE_AHEAD, true>(row, local, begin, end, one, pack);
}

template <class D, int C, bool CAP>
__device__ __forceinline__ void onchip_row(const typename D::storage* logits,
                                           typename D::storage* grad, i64 row, i64 target,
                                           int vocab, const Options& o, const i64* counters,
                                           float* row_loss, float* lse_out,
                                           typename D::storage* staging, Stats* slots) {
    typedef typename D::storage S;
    const unsigned rank = cluster_rank();
    int begin, end;
    cluster_span<C>(vocab, &begin, &end);
    const S* in = logits + row * (i64)vocab;
    S* out = grad ? grad + row * (i64)vocab : 0;
    // `local[i]` is element i of the row: the staging buffer shifted so that the span's
    // first element sits at the same offset mod 16 bytes as in global memory.
    const int misalign = (int)(((unsigned long long)(in + begin) & 15u) / sizeof(S));
    S* local = staging + misalign - begin;
    // Read before the cluster barrier, after which an in-place gradient may overwrite it.
    float target_c = rank == 0 && threadIdx.x == 0 ? capped<CAP>(to_f32<D>(in[target]), o.softcap)
                                                   : 0.0f;
    Stats s = empty_stats();
    const float cap = o.softcap;
    const bool smooth = o.smoothing != 0.0f;
    auto one = [&](int, float x) { add_value(s, capped<CAP>(x, cap), smooth); };
    auto pack = [&](int, float(&v)[Pack<D>::N]) {
#pragma unroll
        for (int j = 0; j < Pack<D>::N; ++j) v[j] = capped<CAP>(v[j], cap);
        add_pack(s, v, smooth);
    };
    stage<D>(in, local, begin, end, one, pack);
    s = block_merge(s);
    if (C > 1) {
        // Thread t hands this block's statistics to block t (`slots[rank]` there); after
        // one cluster barrier every block holds all C and merges them in rank order. No
        // block touches another's shared memory after the barrier, so none needs a
        // second one before it moves on or exits.
        if (threadIdx.x < C) push_stats(&slots[rank], threadIdx.x, s);
        cluster_sync();
        s = slots[0];
#pragma unroll
        for (int r = 1; r < C; ++r) s = merge(s, slots[r]);
    }
    float lse = lse_of(s);
    if (rank == 0 && threadIdx.x == 0) {
        row_loss[row] = row_loss_of(lse, target_c, s.sum_c, vocab, o);
        lse_out[row] = lse;
    }
    // Each thread reads back exactly the shared memory it staged: no barrier needed.
    if (out)
        span_gradient<D, CAP>(local, out, begin, end, lse, target, vocab,
                              gradient_scale(o, counters), o);
}

// Asks the copy engine to bring bytes [begin, end) into L2, one 16 KiB bulk prefetch per
// thread from the first (sm_90 on; nothing before). Non-binding: the 16-byte granules
// rounded out at either end lie on pages the row already occupies.
__device__ __forceinline__ void prefetch_l2(const void* begin, const void* end) {
#if __CUDA_ARCH__ >= 900
    const unsigned long long CHUNK = 16384;
    unsigned long long a = (unsigned long long)begin & ~15ull;
    unsigned long long b = ((unsigned long long)end + 15ull) & ~15ull;
    unsigned long long at = a + (unsigned long long)threadIdx.x * CHUNK;
    if (at < b) {
        unsigned size = (unsigned)(b - at < CHUNK ? b - at : CHUNK);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(at), "r"(size) : "memory");
    }
#endif
}

// PLAIN: the call has no softcap, smoothing or z-loss, and the kernel is compiled knowing
// it. The general kernel carries those paths' registers (80, with a few bytes spilled);
// the plain one spills nothing.
template <class D, int C, bool PLAIN>
__device__ __forceinline__ void onchip_rows(const typename D::storage* logits,
                                            typename D::storage* grad, const void* labels,
                                            int labels_i64, i64 rows, i64 seq_len, int shift,
                                            i64 ignore_index, int vocab, Options o,
                                            const i64* counters, float* row_loss,
                                            float* lse_out) {
    if (PLAIN) {
        o.softcap = 0.0f;
        o.smoothing = 0.0f;
        o.z_scale = 0.0f;
    }
    extern __shared__ __align__(16) unsigned char staging_bytes[];
    // Every cluster block's statistics, pushed by their owners; two sets used in turn, so a
    // block that runs ahead to its next row never overwrites a set a peer still reads.
    __shared__ Stats slots[2][C];
    typedef typename D::storage S;
    S* staging = reinterpret_cast<S*>(staging_bytes);
    if (counters[1] != NO_BAD_LABEL) return;
    i64 first, clusters;
    cluster_position<C>(&first, &clusters);
    int begin, end;
    cluster_span<C>(vocab, &begin, &end);
    int turn = 0;
    for (i64 row = first; row < rows; row += clusters) {
        i64 target = target_of(labels, labels_i64, row, seq_len, shift, ignore_index, vocab);
        if (target < 0) {  // the same answer in every block of the cluster
            if (cluster_rank() == 0 && threadIdx.x == 0) {
                row_loss[row] = 0.0f;
                lse_out[row] = NAN;
            }
            if (grad) zero_span<D>(grad + row * (i64)vocab, begin, end);
            continue;
        }
        // Clusters hand their span to the copy engine at once (sm_90): the staging loads
        // then mostly hit L2 instead of waiting on HBM a few packs at a time.
        if (C > 1) {
            const typename D::storage* in = logits + row * (i64)vocab;
            prefetch_l2(in + begin, in + end);
        }
        if (o.softcap > 0.0f)
            onchip_row<D, C, true>(logits, grad, row, target, vocab, o, counters, row_loss,
                                   lse_out, staging, slots[turn]);
        else
            onchip_row<D, C, false>(logits, grad, row, target, vocab, o, counters, row_loss,
                                    lse_out, staging, slots[turn]);
        turn ^= 1;
    }
}

#if HAS_CLUSTERS
#define CLUSTER_OF_2 __cluster_dims__(2, 1, 1)
#define CLUSTER_OF_4 __cluster_dims__(4, 1, 1)
#define CLUSTER_OF_8 __cluster_dims__(8, 1, 1)
#else
#define CLUSTER_OF_2
#define CLUSTER_OF_4
#define CLUSTER_OF_8
#endif
#define CLUSTER_OF_1

#define ONCHIP(NAME, D, C, PLAIN)                                                           \
    extern "C" __global__ void __launch_bounds__(ONCHIP_MAX_THREADS, 3) CLUSTER_OF_##C NAME(\
        const D::storage* logits, D::storage* grad, const void* labels, int labels_i64,     \
        i64 rows, i64 seq_len, int shift, i64 ignore_index, int vocab, Options o,           \
        const i64* counters, float* row_loss, float* lse_out) {                             \
        onchip_rows<D, C, PLAIN>(logits, grad, labels, labels_i64, rows, seq_len, shift,    \
                                 ignore_index, vocab, o, counters, row_loss, lse_out);      \
    }
ONCHIP(ce_onchip_f32_c1, F32, 1, false)
ONCHIP(ce_onchip_f16_c1, F16, 1, false)
ONCHIP(ce_onchip_bf16_c1, BF16, 1, false)
ONCHIP(ce_onchip_f32_c2, F32, 2, false)
ONCHIP(ce_onchip_f16_c2, F16, 2, false)
ONCHIP(ce_onchip_bf16_c2, BF16, 2, false)
ONCHIP(ce_onchip_f32_c4, F32, 4, false)
ONCHIP(ce_onchip_f16_c4, F16, 4, false)
ONCHIP(ce_onchip_bf16_c4, BF16, 4, false)
ONCHIP(ce_onchip_f32_c8, F32, 8, false)
ONCHIP(ce_onchip_f16_c8, F16, 8, false)
ONCHIP(ce_onchip_bf16_c8, BF16, 8, false)
ONCHIP(ce_onchip_plain_f32_c1, F32, 1, true)
ONCHIP(ce_onchip_plain_f16_c1, F16, 1, true)
ONCHIP(ce_onchip_plain_bf16_c1, BF16, 1, true)
ONCHIP(ce_onchip_plain_f32_c2, F32, 2, true)
ONCHIP(ce_onchip_plain_f16_c2, F16, 2, true)
ONCHIP(ce_onchip_plain_bf16_c2, BF16, 2, true)
ONCHIP(ce_onchip_plain_f32_c4, F32, 4, true)
ONCHIP(ce_onchip_plain_f16_c4, F16, 4, true)
ONCHIP(ce_onchip_plain_bf16_c4, BF16, 4, true)
ONCHIP(ce_onchip_plain_f32_c8, F32, 8, true)
ONCHIP(ce_onchip_plain_f16_c8, F16, 8, true)
ONCHIP(ce_onchip_plain_bf16_c8, BF16, 8, true)

// ---- 2b. vocabulary split: grid (rows, splits), a second reduction per row ----------

__device__ __forceinline__ void split_span(int vocab, int splits, int part, int* begin,
                                           int* end) {
    int width = (vocab + splits - 1) / splits;
    *begin = part * width < vocab ? part * width : vocab;
    *end = *begin + width < vocab ? *begin + width : vocab;
}

template <class D>
__device__ __forceinline__ void split_stats(const typename D::storage* logits,
                                            const void* labels, int labels_i64, i64 seq_len,
                                            int shift, i64 ignore_index, int vocab,
                                            const Options& o, const i64* counters,
                                            Stats* partials) {
    if (counters[1] != NO_BAD_LABEL) return;
    i64 row = blockIdx.x;
    if (target_of(labels, labels_i64, row, seq_len, shift, ignore_index, vocab) < 0) return;
    int begin, end;
    split_span(vocab, gridDim.y, blockIdx.y, &begin, &end);
    const typename D::storage* in = logits + row * (i64)vocab;
    Stats s = o.softcap > 0.0f ? span_stats<D, true>(in, begin, end, o)
                               : span_stats<D, false>(in, begin, end, o);
    if (threadIdx.x == 0) partials[row * gridDim.y + blockIdx.y] = s;
}

#define SPLIT_STATS(NAME, D)                                                                \
    extern "C" __global__ void __launch_bounds__(MAX_THREADS) NAME(                         \
        const D::storage* logits, const void* labels, int labels_i64, i64 seq_len,          \
        int shift, i64 ignore_index, int vocab, Options o, const i64* counters,             \
        Stats* partials) {                                                                  \
        split_stats<D>(logits, labels, labels_i64, seq_len, shift, ignore_index, vocab, o,  \
                       counters, partials);                                                 \
    }
SPLIT_STATS(ce_split_stats_f32, F32)
SPLIT_STATS(ce_split_stats_f16, F16)
SPLIT_STATS(ce_split_stats_bf16, BF16)

// One thread per row merges its partials in order.
template <class D>
__device__ __forceinline__ void split_finish(const typename D::storage* logits,
                                             const void* labels, int labels_i64, i64 rows,
                                             i64 seq_len, int shift, i64 ignore_index,
                                             int vocab, int splits, Options o,
                                             const i64* counters, const Stats* partials,
                                             float* row_loss, float* lse_out) {
    if (counters[1] != NO_BAD_LABEL) return;
    i64 row = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= rows) return;
    i64 target = target_of(labels, labels_i64, row, seq_len, shift, ignore_index, vocab);
    if (target < 0) {
        row_loss[row] = 0.0f;
        lse_out[row] = NAN;
        return;
    }
    Stats s = partials[row * splits];
    for (int k = 1; k < splits; ++k) s = merge(s, partials[row * splits + k]);
    float lse = lse_of(s);
    float target_c = softcapped(to_f32<D>(logits[row * (i64)vocab + target]), o.softcap);
    row_loss[row] = row_loss_of(lse, target_c, s.sum_c, vocab, o);
    lse_out[row] = lse;
}

#define SPLIT_FINISH(NAME, D)                                                               \
    extern "C" __global__ void __launch_bounds__(MAX_THREADS) NAME(                         \
        const D::storage* logits, const void* labels, int labels_i64, i64 rows,             \
        i64 seq_len, int shift, i64 ignore_index, int vocab, int splits, Options o,         \
        const i64* counters, const Stats* partials, float* row_loss, float* lse_out) {      \
        split_finish<D>(logits, labels, labels_i64, rows, seq_len, shift, ignore_index,     \
                        vocab, splits, o, counters, partials, row_loss, lse_out);           \
    }
SPLIT_FINISH(ce_split_finish_f32, F32)
SPLIT_FINISH(ce_split_finish_f16, F16)
SPLIT_FINISH(ce_split_finish_bf16, BF16)

// Gradient of one span per block, from the lse the finish kernel stored.
template <class D>
__device__ __forceinline__ void split_grad(const typename D::storage* logits,
                                           typename D::storage* grad, const void* labels,
                                           int labels_i64, i64 seq_len, int shift,
                                           i64 ignore_index, int vocab, Options o,
                                           const i64* counters, const float* lse) {
    if (counters[1] != NO_BAD_LABEL) return;
    i64 row = blockIdx.x;
    int begin, end;
    split_span(vocab, gridDim.y, blockIdx.y, &begin, &end);
    typename D::storage* out = grad + row * (i64)vocab;
    i64 target = target_of(labels, labels_i64, row, seq_len, shift, ignore_index, vocab);
    if (target < 0) {
        zero_span<D>(out, begin, end);
        return;
    }
    const typename D::storage* in = logits + row * (i64)vocab;
    float scale = gradient_scale(o, counters);
    if (o.softcap > 0.0f)
        span_gradient<D, true>(in, out, begin, end, lse[row], target, vocab, scale, o);
    else
        span_gradient<D, false>(in, out, begin, end, lse[row], target, vocab, scale, o);
}

#define SPLIT_GRAD(NAME, D)                                                                 \
    extern "C" __global__ void __launch_bounds__(MAX_THREADS) NAME(                         \
        const D::storage* logits, D::storage* grad, const void* labels, int labels_i64,     \
        i64 seq_len, int shift, i64 ignore_index, int vocab, Options o,                     \
        const i64* counters, const float* lse) {                                            \
        split_grad<D>(logits, grad, labels, labels_i64, seq_len, shift, ignore_index,       \
                      vocab, o, counters, lse);                                             \
    }
SPLIT_GRAD(ce_split_grad_f32, F32)
SPLIT_GRAD(ce_split_grad_f16, F16)
SPLIT_GRAD(ce_split_grad_bf16, BF16)

// ---- 3. the reduced loss: f64 sum of the row losses in a fixed order (one block) ----

extern "C" __global__ void ce_reduce(const float* row_loss, i64 rows, Options o,
                                     const i64* counters, float* result) {
    __shared__ double sums[32];
    if (counters[1] != NO_BAD_LABEL) {  // the host raises; NaN for anyone who reads on
        if (threadIdx.x == 0) result[0] = NAN;
        return;
    }
    double s = 0.0;
    for (i64 i = threadIdx.x; i < rows; i += blockDim.x) s += (double)row_loss[i];
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) sums[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int w = 0; w < (int)(blockDim.x + 31) / 32; ++w) total += sums[w];
        if (o.reduction == REDUCTION_MEAN) {
            double divisor = o.num_items > 0.0f ? (double)o.num_items : (double)counters[0];
            total = divisor > 0.0 ? total / divisor : 0.0;
        }
        result[0] = (float)total;
    }
}

// ---- 4. backward: the gradient times grad_output, read on the device ----------------
//
// autograd hands backward a device scalar; reading it on the host would wait for the
// whole step. The common scale 1 costs one launch whose blocks return at once.

template <class D>
__device__ __forceinline__ void scale_gradient(typename D::storage* grad, i64 n,
                                               const float* scale) {
    const float k = *scale;
    if (k == 1.0f) return;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        grad[i] = from_f32<D>(to_f32<D>(grad[i]) * k);
}

#define SCALE(NAME, D)                                                                      \
    extern "C" __global__ void NAME(D::storage* grad, i64 n, const float* scale) {         \
        scale_gradient<D>(grad, n, scale);                                                  \
    }
SCALE(ce_scale_f32, F32)
SCALE(ce_scale_f16, F16)
SCALE(ce_scale_bf16, BF16)
