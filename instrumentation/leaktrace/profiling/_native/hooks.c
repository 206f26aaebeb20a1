/*
 * The allocator hooks and the sampling slow path.
 *
 * Sampling. The byte stream of all allocations is cut by a Poisson process of rate 1/I
 * (I = sample interval, mean bytes between sample points). A block of s bytes is sampled when at
 * least one point falls in it, with probability p(s) = 1 - exp(-s/I), and weighted 1/p(s)
 * objects and s/p(s) bytes, so E[estimate] = s for every size. (The "each sample stands for I
 * bytes" shortcut is only right for s << I and under-reports the large retained buffers a leak
 * hunt cares about.) The process is a countdown drawn from Exp(mean I), drawn afresh from the
 * end of a sampled block (memorylessness). One countdown is correct because the GIL serialises
 * the hooks: a Poisson process over the interleaved stream of all threads is one over each
 * thread's stream.
 *
 * What the slow path may do. It runs inside CPython's allocation, so it calls only the
 * functions listed in docs/heap-profiler.md ("What the hook calls"): it reads the thread state,
 * frame records and the context's HAMT, writes the sampler's own libc-allocated tables, and
 * takes strong references to code objects for new stacks. It creates no Python object, writes
 * no CPython cache, raises nothing and cannot start a collection. A thread-local guard still
 * lets any allocation made while the sampler itself works (snapshots) pass through unsampled;
 * a sample point landing there is discarded, which biases nothing because Poisson points in
 * disjoint byte ranges are independent.
 */
#include <math.h>

#include "lt_frames.h"

static _Thread_local int lt_t_guard;

int lt_guard_enter(void) {
    int saved = lt_t_guard;
    lt_t_guard = 1;
    return saved;
}

void lt_guard_exit(int saved) { lt_t_guard = saved; }

static inline uint64_t lt_rand(lt_state *st) {
    /* xorshift64*: period 2^64-1, good enough for exponential draws, no libc state. */
    uint64_t x = st->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int64_t lt_draw(lt_state *st) {
    double u = (double)((lt_rand(st) >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double v = -log(u) * st->interval;
    if (v < 1.0) v = 1.0;
    if (v > 9.0e18) v = 9.0e18;
    return (int64_t)v;
}

#if LT_SUPPORTED
__attribute__((noinline, cold)) static void lt_sample(lt_state *st, void *p, size_t size) {
    st->countdown = lt_draw(st);
    if (lt_t_guard || !st->enabled || size == 0) return;
    PyThreadState *ts = LT_TSTATE_UNCHECKED();
    if (ts == NULL || ts->interp != st->interp || lt_finalizing()) return;
    lt_t_guard = 1;

    lt_frame frames[LT_MAX_FRAMES_CAP];
    int n = 0, truncated = 0;
    for (lt_iframe *f = lt_top_frame(ts); f != NULL; f = f->previous) {
        PyCodeObject *co = lt_frame_code(f);
        if (co == NULL) continue;
        if (n >= st->max_frames) {
            truncated = 1;
            break;
        }
        frames[n].code = (PyObject *)co;
        frames[n].line = lt_frame_line(f, co);
        n++;
    }
    uint64_t thi, tlo, span;
    lt_current_span(st, ts, &thi, &tlo, &span);

    double s = (double)size;
    double prob = -expm1(-s / st->interval);
    double w = prob > 0.0 ? 1.0 / prob : 1.0;
    uint32_t sid = lt_intern_stack(st, frames, n, truncated);
    st->sampled++;
    if (span == 0) st->unattributed++;
    lt_agg_add(st, sid, thi, tlo, span, w, s * w);
    lt_live_insert(st, (uintptr_t)p, size, w, sid, thi, tlo, span);
    lt_t_guard = 0;
}
#else
static void lt_sample(lt_state *st, void *p, size_t size) { st->countdown = INT64_MAX; }
#endif

/* --- the hooks: the hot path is one subtraction and a compare --------------------------------- */
void *lt_malloc(void *ctx, size_t n) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.malloc(h->orig.ctx, n);
    lt_state *st = h->st;
    if (LT_UNLIKELY((st->countdown -= (int64_t)n) <= 0) && p != NULL) lt_sample(st, p, n);
    return p;
}

static void *lt_calloc(void *ctx, size_t nelem, size_t elsize) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.calloc(h->orig.ctx, nelem, elsize);
    if (p != NULL) {
        lt_state *st = h->st;
        size_t n = nelem * elsize; /* orig already refused an overflowing product */
        if ((st->countdown -= (int64_t)n) <= 0) lt_sample(st, p, n);
    }
    return p;
}

static void *lt_realloc(void *ctx, void *old, size_t n) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.realloc(h->orig.ctx, old, n);
    if (p != NULL) {
        lt_state *st = h->st;
        /* free + alloc: the old block (if sampled) is gone, the new one is a fresh candidate */
        if (old != NULL && st->live_count != 0) lt_untrack(st, old);
        if ((st->countdown -= (int64_t)n) <= 0) lt_sample(st, p, n);
    }
    return p;
}

static void lt_free(void *ctx, void *p) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    lt_state *st = h->st;
    if (LT_UNLIKELY(st->live_count != 0) && p != NULL) lt_untrack(st, p);
    h->orig.free(h->orig.ctx, p);
}

/* The probe of a free that the filter could not rule out. Only the sampled interpreter's
 * threads touch the table: another interpreter's block was never sampled (a live address
 * belongs to one interpreter), and its threads do not hold the GIL that guards the table. */
void lt_untrack_checked(lt_state *st, uintptr_t p, uint64_t h, uint8_t *c) {
    PyThreadState *ts = LT_TSTATE_UNCHECKED();
    /* no thread state (a thread being torn down): as before the guard, untrack */
    if (ts == NULL || ts->interp == st->interp) lt_untrack_slow(st, p, h, c);
}

PyMemAllocatorEx lt_hook_obj = {&lt_g.obj, lt_malloc, lt_calloc, lt_realloc, lt_free};
PyMemAllocatorEx lt_hook_mem = {&lt_g.mem, lt_malloc, lt_calloc, lt_realloc, lt_free};
