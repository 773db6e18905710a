/* Bilinear projection, forward and backward, float32, AVX-512 (see bilinear_pair.py).
 *
 * Per sample n and channel pair (o, i), with X_n = X_{n,i} (d1 x d2), U = U_oi (d1 x k1),
 * V = V_oi (d2 x k2), B = B_o (k1 x k2), all row-major, the output channel o sums over i:
 *   right order:  T_n = X_n V           Y_n = U^T T_n + B
 *   left order:   Z_n = U^T X_n         Y_n = Z_n V + B
 * The middle product M_n (T_n or Z_n) is written out for the backward pass, which computes
 *   right:  dT = U G_n,   dX_n = dT V^T,  dV += X_n^T dT,  dU += T_n G_n^T
 *   left:   dZ = G_n V^T, dX_n = U dZ,    dV += Z_n^T G_n, dU += X_n dZ^T
 *   both:   dB += G_n
 * (dX_i sums over the output channels o, as Y_o sums over the input channels i.)
 * Why a hand-written kernel: at these sizes (d = 28..64) every product is a few tens of
 * thousands of multiply-adds on matrices that fit in L1, and a BLAS call spends a third of its
 * time packing operands. Here each sample's products run back to back on L1-resident data.
 *
 * Threads: OpenMP over samples (the process's libgomp, shared with torch, so torch's thread
 * count applies). Each thread sums dU, dV, dB over its own contiguous block of samples into its
 * own buffer; the blocks are then added in thread order, so a given thread count gives the same
 * bits on every run.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#ifndef __AVX512F__
#error "bilinear_pair.c needs AVX-512F (compile with -march=native on a CPU that has it)"
#endif

/* C (mr x up to 32, row-major, ldc) (+)= A (mr x k, strides a_rs, a_cs) @ B (k x n, ldb).
 * m0/m1 mask the two 16-wide column halves. mr is a literal at every call, so the
 * accumulators stay in registers. */
static inline __attribute__((always_inline)) void tile(
    const int mr, int k, const float *A, long a_rs, long a_cs, const float *B, long ldb,
    float *C, long ldc, __mmask16 m0, __mmask16 m1, int accumulate)
{
    __m512 c0[8], c1[8];
    for (int r = 0; r < mr; r++) {
        if (accumulate) {
            c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
        } else {
            c0[r] = _mm512_setzero_ps();
            c1[r] = _mm512_setzero_ps();
        }
    }
    for (int p = 0; p < k; p++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, B + p * ldb);
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, B + p * ldb + 16);
        const float *a = A + p * a_cs;
        for (int r = 0; r < mr; r++) {
            const __m512 av = _mm512_set1_ps(a[r * a_rs]);
            c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
        _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
    }
}

/* C (m x n) = or += A (m x k; element (i, p) at A[i * a_rs + p * a_cs]) @ B (k x n, row-major). */
static void gemm(int m, int n, int k, const float *A, long a_rs, long a_cs, const float *B,
                 long ldb, float *C, long ldc, int accumulate)
{
    for (int j = 0; j < n; j += 32) {
        const int rem = n - j;
        const __mmask16 m0 = rem >= 16 ? 0xFFFF : (__mmask16)((1u << rem) - 1);
        const __mmask16 m1 = rem >= 32 ? 0xFFFF
                             : rem <= 16 ? 0 : (__mmask16)((1u << (rem - 16)) - 1);
        int i = 0;
        for (; i + 8 <= m; i += 8)
            tile(8, k, A + i * a_rs, a_rs, a_cs, B + j, ldb, C + i * ldc + j, ldc, m0, m1,
                 accumulate);
        const float *a = A + i * a_rs;
        float *c = C + i * ldc + j;
        switch (m - i) {
#define REST(R) case R: tile(R, k, a, a_rs, a_cs, B + j, ldb, c, ldc, m0, m1, accumulate); break;
            REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7)
#undef REST
            default: break;
        }
    }
}

static void transpose(int rows, int cols, const float *src, float *dst)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[c * rows + r] = src[r * cols + c];
}

/* Shapes (all row-major, contiguous): x (n, ci, d1, d2), u (co, ci, d1, k1), v (co, ci, d2, k2),
 * vt = V^T per pair (co, ci, k2, d2), bias (co, k1, k2) or NULL, mid (n, co, ci, ms) with
 * ms = d1*k2 (right order) or k1*d2 (left order), y and g (n, co, k1, k2). */
struct dims {
    long n;
    int ci, co, d1, d2, k1, k2, right;
    long xs, ms, ys, us, vs;  /* one channel's block of x, mid, y; one pair's block of u, v */
};

static struct dims make_dims(long n, int ci, int co, int d1, int d2, int k1, int k2, int right)
{
    struct dims d = {n, ci, co, d1, d2, k1, k2, right, (long)d1 * d2,
                     right ? (long)d1 * k2 : (long)k1 * d2, (long)k1 * k2, (long)d1 * k1,
                     (long)d2 * k2};
    return d;
}

/* Y_o = sum_i U_oi^T X_i V_oi + B_o for every sample; the middle products go to mid. */
void bp_forward(long n, int ci, int co, int d1, int d2, int k1, int k2, int right,
                const float *x, const float *u, const float *v, const float *bias, float *mid,
                float *y)
{
    const struct dims d = make_dims(n, ci, co, d1, d2, k1, k2, right);
#pragma omp parallel for schedule(static)
    for (long s = 0; s < n; s++) {
        for (int o = 0; o < co; o++) {
            float *yo = y + (s * co + o) * d.ys;
            if (bias)
                memcpy(yo, bias + o * d.ys, sizeof(float) * d.ys);
            for (int i = 0; i < ci; i++) {
                const long pair = (long)o * ci + i;
                const float *xi = x + (s * ci + i) * d.xs, *uo = u + pair * d.us,
                            *vo = v + pair * d.vs;
                float *m = mid + (s * co * ci + pair) * d.ms;
                const int acc = bias != 0 || i > 0;
                if (right) {
                    gemm(d1, k2, d2, xi, d2, 1, vo, k2, m, k2, 0);        /* T = X V */
                    gemm(k1, k2, d1, uo, 1, k1, m, k2, yo, k2, acc);      /* Y += U^T T */
                } else {
                    gemm(k1, d2, d1, uo, 1, k1, xi, d2, m, d2, 0);        /* Z = U^T X */
                    gemm(k1, k2, d2, m, d2, 1, vo, k2, yo, k2, acc);      /* Y += Z V */
                }
            }
        }
    }
}

/* One sample's gradients. dm: scratch for dMid (ms floats); tr: scratch for one transpose. */
static void backward_sample(const struct dims *d, long s, const float *x, const float *u,
                            const float *vt, const float *mid, const float *g, float *gx,
                            float *pu, float *pv, float *pb, float *dm, float *tr)
{
    const int ci = d->ci, co = d->co, d1 = d->d1, d2 = d->d2, k1 = d->k1, k2 = d->k2;
    for (int o = 0; o < co; o++) {
        const float *gn = g + (s * co + o) * d->ys;
        for (int i = 0; i < ci; i++) {
            const long pair = (long)o * ci + i;
            const float *xn = x + (s * ci + i) * d->xs, *mn = mid + (s * co * ci + pair) * d->ms;
            const float *uo = u + pair * d->us, *vto = vt + pair * d->vs;
            float *gxn = gx ? gx + (s * ci + i) * d->xs : NULL;
            float *pui = pu ? pu + pair * d->us : NULL, *pvi = pv ? pv + pair * d->vs : NULL;
            const int acc_x = o > 0;  /* dX_i sums over the output channels */
            if (d->right) {
                if (gxn || pvi || pui)
                    gemm(d1, k2, k1, uo, k1, 1, gn, k2, dm, k2, 0);           /* dT = U G */
                if (gxn)
                    gemm(d1, d2, k2, dm, k2, 1, vto, d2, gxn, d2, acc_x);     /* dX += dT V^T */
                if (pvi)
                    gemm(d2, k2, d1, xn, 1, d2, dm, k2, pvi, k2, 1);          /* dV += X^T dT */
                if (pui) {
                    transpose(k1, k2, gn, tr);                                 /* G^T */
                    gemm(d1, k1, k2, mn, k2, 1, tr, k1, pui, k1, 1);          /* dU += T G^T */
                }
            } else {
                if (gxn || pui)
                    gemm(k1, d2, k2, gn, k2, 1, vto, d2, dm, d2, 0);          /* dZ = G V^T */
                if (gxn)
                    gemm(d1, d2, k1, uo, k1, 1, dm, d2, gxn, d2, acc_x);      /* dX += U dZ */
                if (pvi)
                    gemm(d2, k2, k1, mn, 1, d2, gn, k2, pvi, k2, 1);          /* dV += Z^T G */
                if (pui) {
                    transpose(k1, d2, dm, tr);                                 /* dZ^T */
                    gemm(d1, k1, d2, xn, d2, 1, tr, k1, pui, k1, 1);          /* dU += X dZ^T */
                }
            }
        }
        if (pb)
            for (long j = 0; j < d->ys; j++)
                pb[o * d->ys + j] += gn[j];
    }
}

/* g -> gx (or NULL), gu (co, ci, d1, k1), gv (co, ci, d2, k2), gb (co, k1, k2); each NULL when
 * not wanted; gu, gv, gb are overwritten. Returns 0, or -1 when out of memory (then nothing is
 * written but possibly part of gx). */
int bp_backward(long n, int ci, int co, int d1, int d2, int k1, int k2, int right,
                const float *x, const float *u, const float *vt, const float *mid,
                const float *g, float *gx, float *gu, float *gv, float *gb)
{
    const struct dims d = make_dims(n, ci, co, d1, d2, k1, k2, right);
    const long nu = (long)co * ci * d.us, nv = (long)co * ci * d.vs, nb = (long)co * d.ys;
    /* per thread: partial dU, dV, dB, then scratch for dMid and one transposed matrix */
    const long per = nu + nv + nb + d.ms + (right ? (long)k2 * k1 : (long)d2 * k1);
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
        float *pu = buf + t * per, *pv = pu + nu, *pb = pv + nv, *dm = pb + nb, *tr = dm + d.ms;
#pragma omp for schedule(static)
        for (long s = 0; s < n; s++)
            backward_sample(&d, s, x, u, vt, mid, g, gx, gu ? pu : NULL, gv ? pv : NULL,
                            gb ? pb : NULL, dm, tr);
    }
    float *outs[3] = {gu, gv, gb};
    const long offsets[3] = {0, nu, nu + nv}, sizes[3] = {nu, nv, nb};
    for (int o = 0; o < 3; o++) {
        if (!outs[o])
            continue;
        memcpy(outs[o], buf + offsets[o], sizeof(float) * sizes[o]);
        for (int t = 1; t < used; t++)
            for (long i = 0; i < sizes[o]; i++)
                outs[o][i] += buf[t * per + offsets[o] + i];
    }
    free(buf);
    return 0;
}
