/* Bilinear projection, forward and backward, float32, for 256- or 512-bit vectors
 * (see bilinear_pair.py). Built with -DVEC_BITS=512 (AVX-512F) or -DVEC_BITS=256 (AVX2 + FMA).
 *
 * The kernel evaluates the right order only; the left order is the right order of the
 * transposed problem (Y_o^T = sum_i V_oi^T X_i^T U_oi), which the caller asks for with tx = 1
 * and U, V (and their grids) swapped: X_i is then read transposed, Y_o and dX_i are written
 * transposed, and the upstream gradient G_o is read transposed.
 *
 * Per sample n, with X_i = X_{n,i} (d1 x d2), U_oi (d1 x k1), V_oi (d2 x k2), all row-major:
 *   T_i  = X_i [V_i1 | V_i2 | ... | V_iCo]       one GEMM per input channel, d1 x (C_out*k2)
 *   Y_o  = [U_1o; ...; U_Cio]^T [T_1o; ...; T_Cio] + B_o      one GEMM per output channel,
 *                                                             K = C_in*d1
 * so every product is wide (C_out*k2 columns) or long (C_in*d1 deep), also for 8 x 8 grids of
 * many channels, instead of C_in*C_out tiny ones. Backward, with G_o the upstream gradient:
 *   dT_o = U_o^cat G_o (C_in*d1 x k2)     dX_i = dT_i V_i^cat^T  (K = C_out*k2)
 *   dV_i^cat += X_i^T dT_i                dU_o^cat += T_o G_o^T        dB_o += G_o
 * T is either saved by the forward pass (mid != NULL) or recomputed per sample in the backward
 * pass (mid == NULL: no memory traffic for large C_in*C_out intermediates; the caller decides).
 *
 * Threads: OpenMP over samples (the process's libgomp, shared with torch, so torch's thread
 * count applies). Y and dX depend on their sample only, so they are the same bits for every
 * thread count. Each thread sums dU, dV, dB over its own contiguous block of samples into its
 * own buffer; the blocks are then added in thread order, so a given thread count gives the
 * same bits on every run.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Two vector widths: "wide" (VL lanes: zmm for 512, ymm for 256) for panels of many columns,
 * and "half" (8 lanes, ymm: AVX2 instructions, on every CPU that runs either build) for the
 * last <= 8 columns, so an 8-wide matrix (an 8 x 8 grid) does not leave half of each zmm idle. */
#if VEC_BITS == 512
#ifndef __AVX512F__
#error "VEC_BITS=512 needs AVX-512F (compile with -march=native on a CPU that has it)"
#endif
typedef __m512 vw;
typedef __mmask16 mw;
#define VL 16
#define MRW 8   /* rows of a two-vector wide tile: 16 accumulators of 32 */
#define MRH 16  /* rows of a one-vector half tile */
#define W_MASK(rem) ((mw)((1u << (rem)) - 1))
#define W_LOADU(p) _mm512_loadu_ps(p)
#define W_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define W_STOREU(p, v) _mm512_storeu_ps((p), (v))
#define W_STOREM(p, v, m) _mm512_mask_storeu_ps((p), (m), (v))
#define W_BCAST(p) _mm512_set1_ps(*(p))
#define W_FMADD(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define W_ZERO() _mm512_setzero_ps()
#elif VEC_BITS == 256
#if !defined(__AVX2__) || !defined(__FMA__)
#error "VEC_BITS=256 needs AVX2 and FMA (compile with -mavx2 -mfma or -march=native)"
#endif
typedef __m256 vw;
typedef __m256i mw;
#define VL 8
#define MRW 6   /* 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers */
#define MRH 12
#define W_MASK(rem) H_MASK(rem)
#define W_LOADU(p) H_LOADU(p)
#define W_LOADM(p, m) H_LOADM(p, m)
#define W_STOREU(p, v) H_STOREU(p, v)
#define W_STOREM(p, v, m) H_STOREM(p, v, m)
#define W_BCAST(p) H_BCAST(p)
#define W_FMADD(a, b, c) H_FMADD(a, b, c)
#define W_ZERO() H_ZERO()
#else
#error "compile with -DVEC_BITS=512 or -DVEC_BITS=256"
#endif
typedef __m256 vh;
typedef __m256i mh;
#define H_MASK(rem) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define H_LOADU(p) _mm256_loadu_ps(p)
#define H_LOADM(p, m) _mm256_maskload_ps((p), (m))
#define H_STOREU(p, v) _mm256_storeu_ps((p), (v))
#define H_STOREM(p, v, m) _mm256_maskstore_ps((p), (m), (v))
#define H_BCAST(p) _mm256_broadcast_ss(p)
#define H_FMADD(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define H_ZERO() _mm256_setzero_ps()

/* C (mr x nr vectors, row-major, ldc) (+)= A (mr x k; element (r, p) at A[r*a_rs + p*a_cs])
 * @ B (k x nr vectors, ldb). With ``masked`` the last vector covers the lanes of ``m`` only.
 * mr, nr, masked are literals at every call, so the accumulators stay in registers. */
#define DEFINE_TILE(NAME, V, M, P, LANES, MAXR)                                                 \
    static inline __attribute__((always_inline)) void NAME(                                    \
        const int mr, const int nr, const int masked, int k, const float *A, long a_rs,        \
        long a_cs, const float *B, long ldb, float *C, long ldc, M m, int accumulate)          \
    {                                                                                          \
        /* two arrays, not one [MAXR][2]: GCC keeps each in registers (a 2-D one spilled) */  \
        V c0[MAXR], c1[MAXR];                                                                  \
        const int m0 = masked && nr == 1, m1 = masked && nr == 2;                              \
        _Pragma("GCC unroll 16") for (int r = 0; r < mr; r++) {                               \
            if (!accumulate) {                                                                 \
                c0[r] = P##_ZERO();                                                            \
                c1[r] = P##_ZERO();                                                            \
            } else {                                                                           \
                c0[r] = m0 ? P##_LOADM(C + r * ldc, m) : P##_LOADU(C + r * ldc);               \
                if (nr == 2)                                                                   \
                    c1[r] = m1 ? P##_LOADM(C + r * ldc + LANES, m)                             \
                               : P##_LOADU(C + r * ldc + LANES);                               \
            }                                                                                  \
        }                                                                                      \
        for (int p = 0; p < k; p++) {                                                          \
            const V b0 = m0 ? P##_LOADM(B + p * ldb, m) : P##_LOADU(B + p * ldb);              \
            V b1 = b0;                                                                         \
            if (nr == 2)                                                                       \
                b1 = m1 ? P##_LOADM(B + p * ldb + LANES, m) : P##_LOADU(B + p * ldb + LANES);  \
            const float *a = A + p * a_cs;                                                     \
            _Pragma("GCC unroll 16") for (int r = 0; r < mr; r++) {                           \
                const V av = P##_BCAST(a + r * a_rs);                                          \
                c0[r] = P##_FMADD(av, b0, c0[r]);                                              \
                if (nr == 2)                                                                   \
                    c1[r] = P##_FMADD(av, b1, c1[r]);                                          \
            }                                                                                  \
        }                                                                                      \
        _Pragma("GCC unroll 16") for (int r = 0; r < mr; r++) {                               \
            if (m0)                                                                            \
                P##_STOREM(C + r * ldc, c0[r], m);                                             \
            else                                                                               \
                P##_STOREU(C + r * ldc, c0[r]);                                                \
            if (nr == 2) {                                                                     \
                if (m1)                                                                        \
                    P##_STOREM(C + r * ldc + LANES, c1[r], m);                                 \
                else                                                                           \
                    P##_STOREU(C + r * ldc + LANES, c1[r]);                                    \
            }                                                                                  \
        }                                                                                      \
    }
DEFINE_TILE(tile_w, vw, mw, W, VL, MRH)
DEFINE_TILE(tile_h, vh, mh, H, 8, MRH)

#define ROWS_1_TO_15(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) \
    X(14) X(15)

/* All m rows of one column panel: full tiles of ROWS rows, then the rest. */
#define DEFINE_PANEL(NAME, TILE, M, NR, MASKED, ROWS)                                          \
    static void NAME(int m, int k, const float *A, long a_rs, long a_cs, const float *B,       \
                     long ldb, float *C, long ldc, M msk, int acc)                             \
    {                                                                                          \
        int i = 0;                                                                             \
        for (; i + ROWS <= m; i += ROWS)                                                       \
            TILE(ROWS, NR, MASKED, k, A + i * a_rs, a_rs, a_cs, B, ldb, C + i * ldc, ldc, msk, \
                 acc);                                                                         \
        const float *a = A + i * a_rs;                                                         \
        float *c = C + i * ldc;                                                                \
        switch (m - i) {                                                                       \
            ROWS_1_TO_15(NAME##_REST)                                                          \
            default: break;                                                                    \
        }                                                                                      \
    }
#define PANEL_CASE(TILE, NR, MASKED, ROWS, R)                                                  \
    case R:                                                                                    \
        if (R < ROWS)                                                                          \
            TILE(R < ROWS ? R : 1, NR, MASKED, k, a, a_rs, a_cs, B, ldb, c, ldc, msk, acc);    \
        break;
#define panel_w2_REST(R) PANEL_CASE(tile_w, 2, 0, MRW, R)
#define panel_w2m_REST(R) PANEL_CASE(tile_w, 2, 1, MRW, R)
#define panel_w1_REST(R) PANEL_CASE(tile_w, 1, 0, MRH, R)
#define panel_w1m_REST(R) PANEL_CASE(tile_w, 1, 1, MRH, R)
#define panel_h_REST(R) PANEL_CASE(tile_h, 1, 0, MRH, R)
#define panel_hm_REST(R) PANEL_CASE(tile_h, 1, 1, MRH, R)
DEFINE_PANEL(panel_w2, tile_w, mw, 2, 0, MRW)
DEFINE_PANEL(panel_w2m, tile_w, mw, 2, 1, MRW)
DEFINE_PANEL(panel_w1, tile_w, mw, 1, 0, MRH)
DEFINE_PANEL(panel_w1m, tile_w, mw, 1, 1, MRH)
DEFINE_PANEL(panel_h, tile_h, mh, 1, 0, MRH)
DEFINE_PANEL(panel_hm, tile_h, mh, 1, 1, MRH)

/* C (m x n) = or += A (m x k; element (i, p) at A[i * a_rs + p * a_cs]) @ B (k x n, row-major):
 * panels of two wide vectors, then the rest as one wide (masked) vector, one half vector
 * (512-bit build: the last <= 8 columns), or two wide vectors with the second masked. */
static void gemm(int m, int n, int k, const float *A, long a_rs, long a_cs, const float *B,
                 long ldb, float *C, long ldc, int accumulate)
{
    int j = 0;
    for (; j + 2 * VL <= n; j += 2 * VL)
        panel_w2(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, W_MASK(0), accumulate);
    const int rem = n - j;
    if (rem > VL)
        panel_w2m(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, W_MASK(rem - VL), accumulate);
    else if (rem == VL)
        panel_w1(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, W_MASK(0), accumulate);
    else if (rem > 8)
        panel_w1m(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, W_MASK(rem), accumulate);
    else if (rem == 8)
        panel_h(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, H_MASK(0), accumulate);
    else if (rem > 0)
        panel_hm(m, k, A, a_rs, a_cs, B + j, ldb, C + j, ldc, H_MASK(rem), accumulate);
}

/* dst (8 x 8, ld ldd) = src (8 x 8, ld lds)^T in registers (AVX: both builds have it). */
static inline void transpose8(const float *src, long lds, float *dst, long ldd)
{
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
}

/* dst (cols x rows) = src (rows x cols)^T, both row-major: 8 x 8 blocks, then the edges. */
static void transpose(int rows, int cols, const float *src, float *dst)
{
    const int r8 = rows & ~7, c8 = cols & ~7;
    for (int r = 0; r < r8; r += 8)
        for (int c = 0; c < c8; c += 8)
            transpose8(src + (long)r * cols + c, cols, dst + (long)c * rows + r, rows);
    for (int r = 0; r < rows; r++)
        for (int c = r < r8 ? c8 : 0; c < cols; c++)
            dst[(long)c * rows + r] = src[(long)r * cols + c];
}

/* Shapes (row-major, contiguous), in the right-order problem the kernel solves:
 * x (n, ci, d1, d2) (with tx: (n, ci, d2, d1), each channel read transposed),
 * u (co, ci, d1, k1), vcat (ci, d2, co*k2) = V_i^cat, vcatt (ci, co*k2, d2) = its transpose,
 * bias (co, k1, k2) (tx: (co, k2, k1)) or NULL, mid (n, ci, d1, co*k2) or NULL,
 * y and g (n, co, k1, k2) (tx: (n, co, k2, k1)). */
struct dims {
    long n;
    int ci, co, d1, d2, k1, k2, tx;
    long xs, ys, wide, tn;  /* one channel of x, of y; co*k2; T of one sample */
    long x_rs, x_cs;        /* element (p, q) of X_i at p*x_rs + q*x_cs */
};

static struct dims make_dims(long n, int ci, int co, int d1, int d2, int k1, int k2, int tx)
{
    struct dims d = {n, ci, co, d1, d2, k1, k2, tx, (long)d1 * d2, (long)k1 * k2,
                     (long)co * k2, (long)ci * d1 * co * k2, tx ? 1 : d2, tx ? d1 : 1};
    return d;
}

/* T = X_i V_i^cat for every input channel of sample s. */
static void middle(const struct dims *d, long s, const float *x, const float *vcat, float *t)
{
    for (int i = 0; i < d->ci; i++)
        gemm(d->d1, (int)d->wide, d->d2, x + (s * d->ci + i) * d->xs, d->x_rs, d->x_cs,
             vcat + (long)i * d->d2 * d->wide, d->wide, t + (long)i * d->d1 * d->wide, d->wide,
             0);
}

static void forward_sample(const struct dims *d, long s, const float *x, const float *u,
                           const float *vcat, const float *bias, float *t, float *yt, float *y)
{
    const int k1 = d->k1, k2 = d->k2;
    middle(d, s, x, vcat, t);
    for (int o = 0; o < d->co; o++) {
        float *yo = y + (s * d->co + o) * d->ys;
        const float *uo = u + (long)o * d->ci * d->d1 * k1;  /* ((i, p), r), ld k1 */
        const float *bo = bias ? bias + o * d->ys : NULL;
        if (!d->tx) {
            if (bo)
                memcpy(yo, bo, sizeof(float) * d->ys);
            gemm(k1, k2, d->ci * d->d1, uo, 1, k1, t + (long)o * k2, d->wide, yo, k2, bo != NULL);
        } else {
            gemm(k1, k2, d->ci * d->d1, uo, 1, k1, t + (long)o * k2, d->wide, yt, k2, 0);
            for (int a = 0; a < k2; a++)
                for (int b = 0; b < k1; b++)
                    yo[a * k1 + b] = yt[b * k2 + a] + (bo ? bo[a * k1 + b] : 0.0f);
        }
    }
}

/* Y for every sample; mid (when not NULL) keeps each sample's T for the backward pass.
 * Returns 0, or -1 when out of memory (then y is not written). */
int bp_forward(long n, int ci, int co, int d1, int d2, int k1, int k2, int tx, const float *x,
               const float *u, const float *vcat, const float *bias, float *mid, float *y)
{
    const struct dims d = make_dims(n, ci, co, d1, d2, k1, k2, tx);
    const long per = (mid ? 0 : d.tn) + d.ys;
    float *buf = malloc(sizeof(float) * (size_t)omp_get_max_threads() * per);
    if (!buf)
        return -1;
#pragma omp parallel
    {
        float *own = buf + omp_get_thread_num() * per;
#pragma omp for schedule(static)
        for (long s = 0; s < n; s++)
            forward_sample(&d, s, x, u, vcat, bias, mid ? mid + s * d.tn : own, own + per - d.ys,
                           y);
    }
    free(buf);
    return 0;
}

struct scratch {
    float *pu, *pv, *pb;  /* this thread's partial dU (co, ci*d1, k1), dV^cat, dB */
    float *dt, *t, *gt, *xt;  /* dT, T (when recomputed), G transposed, one dX transposed */
};

static void backward_sample(const struct dims *d, long s, const float *x, const float *u,
                            const float *vcat, const float *vcatt, const float *mid,
                            const float *g, float *gx, const struct scratch *w)
{
    const int ci = d->ci, co = d->co, d1 = d->d1, d2 = d->d2, k1 = d->k1, k2 = d->k2;
    const long rows = (long)ci * d1, wide = d->wide;
    const float *t = NULL;
    if (w->pu) {
        if (mid) {
            t = mid + s * d->tn;
        } else {
            middle(d, s, x, vcat, w->t);
            t = w->t;
        }
    }
    for (int o = 0; o < co; o++) {
        const float *go = g + (s * co + o) * d->ys;  /* as stored: k1 x k2 (tx: k2 x k1) */
        const float *uo = u + o * rows * k1;
        const float *gr, *grt;  /* G_o (k1 x k2) and G_o^T (k2 x k1) of the right-order problem */
        if (d->tx) {
            transpose(k2, k1, go, w->gt);
            gr = w->gt;
            grt = go;
        } else {
            transpose(k1, k2, go, w->gt);
            gr = go;
            grt = w->gt;
        }
        if (gx || w->pv)
            gemm((int)rows, k2, k1, uo, k1, 1, gr, k2, w->dt + (long)o * k2, wide, 0);  /* dT */
        if (w->pu)
            gemm((int)rows, k1, k2, t + (long)o * k2, wide, 1, grt, k1, w->pu + o * rows * k1,
                 k1, 1);                                                        /* dU += T G^T */
        if (w->pb)
            for (long j = 0; j < d->ys; j++)
                w->pb[o * d->ys + j] += go[j];
    }
    for (int i = 0; i < ci; i++) {
        const float *dti = w->dt + (long)i * d1 * wide, *xi = x + (s * ci + i) * d->xs;
        if (gx) {
            float *gxi = gx + (s * ci + i) * d->xs;
            gemm(d1, d2, (int)wide, dti, wide, 1, vcatt + (long)i * wide * d2, d2,
                 d->tx ? w->xt : gxi, d2, 0);                               /* dX = dT V^T */
            if (d->tx)
                transpose(d1, d2, w->xt, gxi);
        }
        if (w->pv)
            gemm(d2, (int)wide, d1, xi, d->x_cs, d->x_rs, dti, wide,
                 w->pv + (long)i * d2 * wide, wide, 1);                     /* dV += X^T dT */
    }
}

/* g -> gx (or NULL), gu (co, ci, d1, k1), gv (co, ci, d2, k2), gb (co, k1, k2); each NULL when
 * not wanted; gu, gv, gb are overwritten. mid as given to bp_forward (or NULL: T is
 * recomputed). Returns 0, or -1 when out of memory (then nothing is written). */
int bp_backward(long n, int ci, int co, int d1, int d2, int k1, int k2, int tx, const float *x,
                const float *u, const float *vcat, const float *vcatt, const float *mid,
                const float *g, float *gx, float *gu, float *gv, float *gb)
{
    const struct dims d = make_dims(n, ci, co, d1, d2, k1, k2, tx);
    const long nu = (long)co * ci * d1 * k1, nv = (long)ci * d2 * d.wide, nb = (long)co * d.ys;
    const long nt = (gu && !mid) ? d.tn : 0, ng = d.ys > d.xs ? d.ys : d.xs;
    const long per = nu + nv + nb + d.tn + nt + ng;
    const int threads = omp_get_max_threads();
    float *buf = calloc((size_t)threads * per, sizeof(float));
    if (!buf)
        return -1;
    int used = 1;
#pragma omp parallel
    {
        const int t = omp_get_thread_num();
#pragma omp single
        used = omp_get_num_threads();
        float *base = buf + t * per;
        const struct scratch w = {gu ? base : NULL, gv ? base + nu : NULL,
                                  gb ? base + nu + nv : NULL, base + nu + nv + nb,
                                  base + nu + nv + nb + d.tn, base + nu + nv + nb + d.tn + nt,
                                  base + nu + nv + nb + d.tn + nt};
#pragma omp for schedule(static)
        for (long s = 0; s < n; s++)
            backward_sample(&d, s, x, u, vcat, vcatt, mid, g, gx, &w);
    }
    for (int t = 1; t < used; t++)  /* thread order: the same bits for a given thread count */
        for (long j = 0; j < nu + nv + nb; j++)
            buf[j] += buf[t * per + j];
    if (gu)
        memcpy(gu, buf, sizeof(float) * nu);
    if (gb)
        memcpy(gb, buf + nu + nv, sizeof(float) * nb);
    if (gv)  /* V^cat (ci, d2, co, k2) -> (co, ci, d2, k2) */
        for (int o = 0; o < co; o++)
            for (int i = 0; i < ci; i++)
                for (int q = 0; q < d2; q++)
                    memcpy(gv + (((long)o * ci + i) * d2 + q) * k2,
                           buf + nu + ((long)i * d2 + q) * d.wide + (long)o * k2,
                           sizeof(float) * k2);
    free(buf);
    return 0;
}
