/* midl's native kernels for SparseMIDLayer's evaluation pass (and its top-k in training).
   Built by midl/native.py with -O3 -ffp-contract=off: no multiply-add is fused into an FMA, so every output is the
   same sequence of float32 roundings whichever code path (a group of 8 rows or a single row) and whichever thread
   computes it, and whichever instruction set the build targets (tested for -march=native and -march=x86-64-v2).
   Every entry point trusts its caller for pointers and sizes: midl/native.py checks shapes, dtypes, devices and
   contiguity before each call. What it can check cheaply itself (k against the width) it checks: status 3. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>                  /* INFINITY, expf */
#define V 16                       /* partial sums per row: independent adds the compiler vectorises */
#define G 8                        /* rows of W read at once: G memory streams in flight (4 and 16 were slower here) */
#define B 11                       /* radix selection: 2^B buckets a round */
typedef float v8 __attribute__((vector_size(32)));   /* 8 floats: one AVX register, two NEON ones */
typedef int32_t v8i __attribute__((vector_size(32)));
static v8 load8(const float* p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static float hsum(const float* s) { float a = 0; for (int u = 0; u < V; u++) a += s[u]; return a; }

/* r[q] = W_{j_q} . x for the G rows w[0..G-1] */
static void dot_group(const float* const* w, const float* x, int64_t d, float* r) {
  float s[G][V] = {{0}}; int64_t i = 0;
  for (; i + V <= d; i += V)
    for (int u = 0; u < V; u++) { float xv = x[i + u]; for (int q = 0; q < G; q++) s[q][u] += w[q][i + u] * xv; }
  for (int q = 0; q < G; q++) { r[q] = hsum(s[q]); for (int64_t e = i; e < d; e++) r[q] += w[q][e] * x[e]; }
}

static float dot_one(const float* w, const float* x, int64_t d) {
  float s[V] = {0}; int64_t i = 0;
  for (; i + V <= d; i += V) for (int u = 0; u < V; u++) s[u] += w[i + u] * x[i + u];
  float a = hsum(s); for (; i < d; i++) a += w[i] * x[i]; return a;
}

/* z_j = c_j + alpha_j (W_j . x + b_j - c_j); out holds c = F_cheap on entry */
static void mix(float* out, const float* alpha, const float* b, int64_t j, float dot) {
  float rich = dot + (b ? b[j] : 0.f), c = out[j];
  out[j] = c + alpha[j] * (rich - c);
}

/* the mix of one sample at its selected j = id[t], t0 <= t < t1 */
static void mix_row(const float* w, const float* b, const int64_t* id, const float* xn, const float* an, float* on,
                    int64_t d_in, int64_t t0, int64_t t1) {
  float r[G]; const float* ws[G]; int64_t t = t0;
  for (; t + G <= t1; t += G) {
    for (int q = 0; q < G; q++) ws[q] = w + id[t + q] * d_in;
    dot_group(ws, xn, d_in, r);
    for (int q = 0; q < G; q++) mix(on, an, b, id[t + q], r[q]);
  }
  for (; t < t1; t++) mix(on, an, b, id[t], dot_one(w + id[t] * d_in, xn, d_in));
}

/* the mix at the selected j = idx[n, t], t0 <= t < t1, of every row n (a, out: rows x d_out) */
void midl_gather_mix(const float* w, const float* b, const int64_t* idx, const float* x, const float* a, float* out,
                     int64_t rows, int64_t k, int64_t d_in, int64_t d_out, int64_t t0, int64_t t1) {
  for (int64_t n = 0; n < rows; n++) mix_row(w, b, idx + n * k, x + n * d_in, a + n * d_out, out + n * d_out, d_in, t0, t1);
}

/* c = U_c h + b_c for every neuron (uc: d_out x r); where r is a multiple of 8, 8-wide vectors with four independent
   sums (one sum would wait on each multiply-add before the next) */
static void cheap_row(const float* h, const float* uc, const float* bc, float* on, int64_t r, int64_t d_out) {
  for (int64_t j = 0; j < d_out; j++) {
    const float* u = uc + j * r; float t = 0; int64_t i = 0;
    if (r % 8 == 0) {
      v8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
      for (; i + 32 <= r; i += 32) {
        s0 += load8(u + i) * load8(h + i);           s1 += load8(u + i + 8) * load8(h + i + 8);
        s2 += load8(u + i + 16) * load8(h + i + 16); s3 += load8(u + i + 24) * load8(h + i + 24);
      }
      for (; i < r; i += 8) s0 += load8(u + i) * load8(h + i);
      v8 s = (s0 + s1) + (s2 + s3);
      t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    }
    for (; i < r; i++) t += u[i] * h[i];
    on[j] = t + (bc ? bc[j] : 0.f);
  }
}

/* sigma(z) = 1 / (1 + e^-z), 8 at a time: e^x = 2^n e^f with n = round(x / ln 2) and f = x - n ln 2 (ln 2 in two
   parts, Cody and Waite) in [-0.35, 0.35], e^f by its Taylor polynomial of degree 7 (remainder below 6e-9 of e^f);
   x is clamped to [-87, 87], where 2^n is a normal float. NaN stays NaN */
static v8 sigmoid8(v8 z) {
  const v8 lim = {87, 87, 87, 87, 87, 87, 87, 87}, magic = {12582912, 12582912, 12582912, 12582912, 12582912, 12582912, 12582912, 12582912};
  v8 x = -z; v8i hi = x > lim, lo = x < -lim;
  x = (v8)(((v8i)x & ~(hi | lo)) | ((v8i)lim & hi) | ((v8i)(-lim) & lo));
  v8 n = (x * 1.44269504f + magic) - magic;                 /* round to nearest: 1.5 * 2^23 pushes the fraction out */
  v8 f = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  v8 p = 1.f + f * (1.f + f * (1.f / 2 + f * (1.f / 6 + f * (1.f / 24 + f * (1.f / 120 + f * (1.f / 720 + f * (1.f / 5040)))))));
  v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;   /* 2^n */
  return 1.f / (1.f + p * (v8)e);
}

/* the gate of each row: h = D x (D: r x d_in, 8 of its rows at a time) and alpha = sigmoid(U_a h + b_a). Every pass that
   runs natively, forward and forward_dense alike, computes the gate here: the same code, so the same bits, so the
   same selected neurons */
void midl_gate(const float* x, const float* dw, const float* ua, const float* ba, float* h, float* alpha,
               int64_t rows, int64_t r, int64_t d_in, int64_t d_out) {
  for (int64_t n = 0; n < rows; n++) {
    const float* xn = x + n * d_in; float* hn = h + n * r; float* an = alpha + n * d_out; int64_t q = 0;
    for (; q + G <= r; q += G) {
      const float* ws[G]; for (int g = 0; g < G; g++) ws[g] = dw + (q + g) * d_in;
      dot_group(ws, xn, d_in, hn + q);
    }
    for (; q < r; q++) hn[q] = dot_one(dw + q * d_in, xn, d_in);
    cheap_row(hn, ua, ba, an, r, d_out);                    /* the logits U_a h + b_a */
    int64_t j = 0;
    for (; j + 8 <= d_out; j += 8) { v8 v = sigmoid8(load8(an + j)); memcpy(an + j, &v, sizeof v); }
    for (; j < d_out; j++) an[j] = 1.f / (1.f + expf(-an[j]));
  }
}

/* an order-preserving integer key: a < b exactly when ukey(a) < ukey(b); NaN ranks as -inf */
static uint32_t ukey(float v) {
  uint32_t u;
  if (v != v) v = -INFINITY;
  memcpy(&u, &v, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* id = the k largest of a[0..n) in ascending order (u, cand: n entries of scratch each). Radix selection over a
   shrinking set of candidates: each round spreads the candidates' keys, minus their smallest, over 2^B buckets (so the
   narrow range of sigmoid outputs is split as finely as a wide one), keeps the bucket that holds the k-th largest,
   and ends when the candidates' keys are equal. Returns 1 when the k-th and (k+1)-th largest are equal: then more than
   one set is the top k, and the caller asks torch.topk (the reference) which one; a set without such a tie is unique,
   so torch.topk would return the same */
static int select_row(const float* a, int64_t* id, uint32_t* u, int32_t* cand, int64_t n, int64_t k) {
  if (k < 1 || k > n) return 3;                             /* no k largest of n: the caller's error (it would never end) */
  int64_t m = n, need = k;
  uint32_t lo = 0xffffffffu, hi = 0;
  for (int64_t j = 0; j < n; j++) { uint32_t v = ukey(a[j]); u[j] = v; cand[j] = (int32_t)j; lo = v < lo ? v : lo; hi = v > hi ? v : hi; }
  while (lo != hi) {
    int shift = 0, d;
    while (((hi - lo) >> shift) >= (1u << B)) shift++;
    int32_t hist[1 << B]; int64_t above = 0, kept = 0;
    memset(hist, 0, (((hi - lo) >> shift) + 1) * sizeof(int32_t));
    for (int64_t c = 0; c < m; c++) hist[(u[cand[c]] - lo) >> shift]++;
    for (d = (int)((hi - lo) >> shift); above + hist[d] < need; d--) above += hist[d];   /* the bucket of the need-th largest */
    need -= above;
    uint32_t nlo = 0xffffffffu, nhi = 0;
    for (int64_t c = 0; c < m; c++) {                       /* keep the candidates in that bucket, without a branch */
      int32_t v = cand[c]; uint32_t key = u[v]; int in = ((key - lo) >> shift) == (uint32_t)d;
      cand[kept] = v; kept += in;
      nlo = in && key < nlo ? key : nlo; nhi = in && key > nhi ? key : nhi;
    }
    m = kept; lo = nlo; hi = nhi;
  }
  if (need != m) return 1;                                  /* some of the keys equal to the k-th are left out: a tie */
  int64_t q = 0;
  for (int64_t j = 0; j < n && q < k; j++) { id[q] = j; q += u[j] >= lo; }   /* no branch; never past id[k - 1] */
  return 0;
}

/* the top k of each row of a (rows x n); returns 0, 1 (a tie at the k-th place in some row), 2 (no memory) or
   3 (k outside 1..n) */
int midl_topk(const float* a, int64_t* idx, int64_t rows, int64_t n, int64_t k) {
  if (k < 1 || k > n) return 3;
  uint32_t* u = malloc((n > 0 ? n : 1) * sizeof(uint32_t)); int32_t* cand = malloc((n > 0 ? n : 1) * sizeof(int32_t));
  int status = (u && cand) ? 0 : 2;
  for (int64_t r = 0; r < rows && !status; r++) status = select_row(a + r * n, idx + r * k, u, cand, n, k);
  free(u); free(cand);
  return status;
}

/* per row: idx = the top k of alpha (as midl_topk), and out = U_c h + b_c for every neuron;
   the cheap path is computed for every row whatever the selection's status */
int midl_select_cheap(const float* alpha, const float* h, const float* uc, const float* bc, int64_t* idx, float* out,
                      int64_t rows, int64_t k, int64_t r, int64_t d_out) {
  if (k < 1 || k > d_out) return 3;
  uint32_t* u = malloc(d_out * sizeof(uint32_t)); int32_t* cand = malloc(d_out * sizeof(int32_t));
  int status = (u && cand) ? 0 : 2;
  for (int64_t n = 0; n < rows && status != 2; n++) {
    cheap_row(h + n * r, uc, bc, out + n * d_out, r, d_out);
    if (!status) status = select_row(alpha + n * d_out, idx + n * k, u, cand, d_out, k);
  }
  free(u); free(cand);
  return status;
}

/* all of the evaluation pass after the gate, in one call: midl_select_cheap, then the mix at the selected neurons of
   every row; on a tie (1) out holds the cheap path of every row and nothing is mixed; 2 and 3 as midl_topk */
int midl_select_mix(const float* alpha, const float* h, const float* uc, const float* bc, const float* w, const float* b,
                    const float* x, float* out, int64_t rows, int64_t k, int64_t r, int64_t d_in, int64_t d_out) {
  if (k < 1 || k > d_out) return 3;
  int64_t* idx = malloc((rows > 0 ? rows : 1) * k * sizeof(int64_t));
  if (!idx) return 2;
  int status = midl_select_cheap(alpha, h, uc, bc, idx, out, rows, k, r, d_out);
  if (!status) midl_gather_mix(w, b, idx, x, alpha, out, rows, k, d_in, d_out, 0, k);
  free(idx);
  return status;
}
