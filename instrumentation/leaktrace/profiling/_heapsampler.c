/*
 * leaktrace.profiling._heapsampler: a span-linked, Poisson-by-bytes sampling heap profiler.
 *
 * Hooks the PYMEM_DOMAIN_OBJ and PYMEM_DOMAIN_MEM allocators. Both domains are documented to be
 * called with the GIL held, so the GIL is the lock for every table below; RAW is not hooked
 * because it is called without the GIL and would need a lock on the hot path.
 *
 * Sampling. The byte stream of all allocations is cut by a Poisson process of rate 1/I
 * (I = sample interval, mean bytes between sample points). A block of s bytes is sampled when
 * at least one point falls in it, with probability p(s) = 1 - exp(-s/I). Each sampled block gets
 * weight 1/p(s) (objects) and s/p(s) (bytes), so E[estimate] = p * s/p = s: unbiased for every
 * size. The simpler "each sample stands for I bytes" scheme is only right for s << I: a block of
 * s >= I is sampled almost surely and would count as I bytes instead of s, which under-reports
 * exactly the large retained buffers a leak hunt cares about. The process is
 * realised as a countdown drawn from Exp(mean I); because of memorylessness the next countdown is
 * drawn afresh from the end of a sampled block. One global countdown is correct because the
 * GIL serialises the hooks: a Poisson process over the interleaved stream of all threads is a
 * Poisson process over each thread's stream.
 *
 * Reentrancy. The slow path (sampling) reads frames and the span without allocating, but a
 * thread-local guard still makes any allocation made while sampling or snapshotting pass
 * through unsampled; a sample point landing in the profiler's own bytes is discarded, which
 * biases nothing because Poisson points in disjoint byte ranges are independent. The slow path
 * never runs Python bytecode (no method calls, only C-level reads: a call could release the GIL
 * while the caller holds an object half-updated) and keeps the cyclic GC off for its duration,
 * because on 3.11 a GC-tracked allocation can start a collection right inside this hook.
 *
 * Tables (all bounded, allocated with libc calloc so they never re-enter the hooks):
 *  - live: open-addressing (linear probing, backward-shift delete) pointer -> sampled block.
 *    Full -> the sample is counted in `dropped`, never silently lost.
 *  - filter: 64 Ki saturating 8-bit counters over pointer hashes so free() of an untracked
 *    block (nearly all of them) costs one L1/L2 byte read instead of a probe into the table.
 *  - agg: (stack, trace, span) -> weighted alloc objects/bytes since the last reset. Full ->
 *    added to an overflow bucket that is reported as its own synthetic frame.
 *  - stacks: interned (code object, line) sequences, holding strong refs to code objects so
 *    nothing is copied on the hot path. Full -> stack id 0 (reported as a synthetic frame and
 *    counted); compacted at export time when more than 3/4 full.
 *
 * The only static state is the process-level fact "the allocator is hooked", which is what
 * forbids a second sampler; everything else is reset by start()/stop().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The stack is read from the interpreter's own frame records (like tracemalloc does), not via
 * PyThreadState_GetFrame/PyFrame_GetBack: those materialise frame objects, and the hook can run
 * while the top frame is being cleared (its locals' deallocators allocate), where creating a
 * frame object for it leaves one pointing at a popped frame. Reading f_code and the last
 * instruction allocates nothing. The layout is private, so only versions built and tested
 * against are enabled; others report SUPPORTED = 0 and leaktrace falls back to pyroscope-io. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_GIL_DISABLED)
#define LT_FRAME_WALK 1
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE
#else
#define LT_FRAME_WALK 0
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if LT_FRAME_WALK
#define LT_SUPPORTED 1
#else
#define LT_SUPPORTED 0
#endif

#if PY_VERSION_HEX >= 0x030D0000
#define LT_TSTATE() PyThreadState_GetUnchecked()
#define LT_FINALIZING() Py_IsFinalizing()
#else
#define LT_TSTATE() _PyThreadState_UncheckedGet()
#define LT_FINALIZING() _Py_IsFinalizing()
#endif

#define LT_MAX_FRAMES_CAP 512
#define LT_FILTER_BITS 16
#define LT_FILTER_SIZE (1u << LT_FILTER_BITS)

typedef struct {
    PyMemAllocatorEx orig;
} lt_hook_ctx;

typedef struct {
    uintptr_t ptr; /* 0 = empty slot */
    size_t size;
    double weight; /* 1 / p(size) */
    uint64_t trace_hi, trace_lo, span;
    uint32_t stack_id;
} lt_live;

typedef struct {
    uint64_t trace_hi, trace_lo, span;
    double objects, bytes;
    uint32_t stack_id;
    uint32_t used;
} lt_agg;

typedef struct {
    PyObject *code;
    int line;
} lt_frame;

typedef struct {
    uint64_t hash;
    lt_frame *frames; /* NULL for a free slot (after compaction) or the overflow stack 0 */
    uint32_t nframes;
    uint32_t truncated;
    uint32_t in_use;
} lt_stack;

/* --- process-level hook state ------------------------------------------------------------- */
static lt_hook_ctx g_obj, g_mem;
static int g_installed; /* our allocators are in the chain */
static int g_enabled;   /* sampling is on */
static uint64_t g_generation;

/* --- sampling state ----------------------------------------------------------------------- */
static int64_t g_countdown = INT64_MAX;
static double g_interval = 512.0 * 1024.0;
static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static int g_max_frames = 64;
static _Thread_local int t_guard;

/* --- live table --------------------------------------------------------------------------- */
static lt_live *g_live;
static size_t g_live_mask, g_live_count, g_live_max;
static int g_live_shift;
static uint8_t *g_filter;
static double g_live_bytes; /* running sum of size * weight */
static uint64_t g_dropped, g_sampled, g_unattributed;

/* --- alloc aggregation -------------------------------------------------------------------- */
static lt_agg *g_agg;
static size_t g_agg_mask, g_agg_count, g_agg_max;
static double g_agg_over_objects, g_agg_over_bytes;
static uint64_t g_agg_overflowed;

/* --- stacks ------------------------------------------------------------------------------- */
static lt_stack *g_stacks;
static uint32_t g_stack_max, g_stack_used, g_stack_hwm; /* hwm: slots ever handed out */
static uint32_t *g_stack_index; /* open addressing of stack id + 1; 0 = empty */
static size_t g_stack_index_mask;
static uint64_t g_stacks_overflowed, g_stack_epoch;
static uint32_t *g_stack_free; /* free list of stack ids after compaction */
static uint32_t g_stack_free_n;

/* --- span attribution --------------------------------------------------------------------- */
static PyObject *g_ctxvar, *g_span_key, *g_str_context;

/* ------------------------------------------------------------------------------------------ */
static inline uint64_t lt_rand(void) {
    /* xorshift64*: period 2^64-1, good enough for exponential draws, no libc state. */
    uint64_t x = g_rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g_rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int64_t lt_draw(void) {
    double u = (double)((lt_rand() >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double v = -log(u) * g_interval;
    if (v < 1.0) v = 1.0;
    if (v > 9.0e18) v = 9.0e18;
    return (int64_t)v;
}

static inline uint64_t lt_mix(uintptr_t p) { return (uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ULL; }
static inline size_t lt_filter_idx(uint64_t h) { return (size_t)(h >> (64 - LT_FILTER_BITS)); }

static size_t lt_pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* --- live table ops (GIL held, no Python calls) -------------------------------------------- */
static void lt_live_insert(uintptr_t p, size_t size, double weight, uint32_t stack_id, uint64_t thi,
                           uint64_t tlo, uint64_t span) {
    uint64_t h = lt_mix(p);
    size_t i = (size_t)(h >> g_live_shift) & g_live_mask;
    while (g_live[i].ptr != 0) {
        if (g_live[i].ptr == p) { /* stale entry for a reused address: replace it */
            g_live_bytes -= (double)g_live[i].size * g_live[i].weight;
            g_live[i].size = size;
            g_live[i].weight = weight;
            g_live[i].stack_id = stack_id;
            g_live[i].trace_hi = thi;
            g_live[i].trace_lo = tlo;
            g_live[i].span = span;
            g_live_bytes += (double)size * weight;
            return;
        }
        i = (i + 1) & g_live_mask;
    }
    if (g_live_count >= g_live_max) {
        g_dropped++;
        return;
    }
    g_live[i].ptr = p;
    g_live[i].size = size;
    g_live[i].weight = weight;
    g_live[i].stack_id = stack_id;
    g_live[i].trace_hi = thi;
    g_live[i].trace_lo = tlo;
    g_live[i].span = span;
    g_live_count++;
    g_live_bytes += (double)size * weight;
    uint8_t *c = &g_filter[lt_filter_idx(h)];
    if (*c != 255) (*c)++;
}

#define LT_LIKELY(x) __builtin_expect(!!(x), 1)
#define LT_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* The slow parts are kept out of line so the hooks stay a few instructions with no frame. */
__attribute__((noinline)) static void lt_untrack_slow(uintptr_t p, uint64_t h, uint8_t *c) {
    size_t i = (size_t)(h >> g_live_shift) & g_live_mask;
    while (g_live[i].ptr != p) {
        if (g_live[i].ptr == 0) return;
        i = (i + 1) & g_live_mask;
    }
    g_live_bytes -= (double)g_live[i].size * g_live[i].weight;
    g_live_count--;
    if (g_live_count == 0) g_live_bytes = 0.0; /* no float drift once empty */
    if (*c != 255) (*c)--; /* 255 is sticky: it may under-count, never yield a false "absent" */
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & g_live_mask;
        if (g_live[j].ptr == 0) break;
        size_t home = (size_t)(lt_mix(g_live[j].ptr) >> g_live_shift) & g_live_mask;
        /* move j into the hole i if its home is not cyclically within (i, j] */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            g_live[i] = g_live[j];
            i = j;
        }
    }
    g_live[i].ptr = 0;
}

static inline void lt_untrack(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    uint64_t h = lt_mix(p);
    uint8_t *c = &g_filter[lt_filter_idx(h)];
    if (LT_UNLIKELY(*c != 0)) lt_untrack_slow(p, h, c);
}

/* --- alloc aggregation -------------------------------------------------------------------- */
static void lt_agg_add(uint32_t stack_id, uint64_t thi, uint64_t tlo, uint64_t span, double objects,
                       double bytes) {
    uint64_t h = ((uint64_t)stack_id * 0x9E3779B97F4A7C15ULL) ^ (thi * 0xC2B2AE3D27D4EB4FULL) ^
                 (tlo * 0x165667B19E3779F9ULL) ^ (span * 0x27D4EB2F165667C5ULL);
    h ^= h >> 29;
    size_t i = (size_t)h & g_agg_mask;
    while (g_agg[i].used) {
        lt_agg *a = &g_agg[i];
        if (a->stack_id == stack_id && a->trace_hi == thi && a->trace_lo == tlo && a->span == span) {
            a->objects += objects;
            a->bytes += bytes;
            return;
        }
        i = (i + 1) & g_agg_mask;
    }
    if (g_agg_count >= g_agg_max) {
        g_agg_overflowed++;
        g_agg_over_objects += objects;
        g_agg_over_bytes += bytes;
        return;
    }
    g_agg[i].used = 1;
    g_agg[i].stack_id = stack_id;
    g_agg[i].trace_hi = thi;
    g_agg[i].trace_lo = tlo;
    g_agg[i].span = span;
    g_agg[i].objects = objects;
    g_agg[i].bytes = bytes;
    g_agg_count++;
}

/* --- stacks ------------------------------------------------------------------------------- */
static uint64_t lt_stack_hash(const lt_frame *f, int n, int truncated) {
    uint64_t h = 0xCBF29CE484222325ULL ^ (uint64_t)truncated;
    for (int k = 0; k < n; k++) {
        h = (h ^ (uint64_t)(uintptr_t)f[k].code) * 0x100000001B3ULL;
        h = (h ^ (uint64_t)(uint32_t)f[k].line) * 0x100000001B3ULL;
    }
    return h ^ (h >> 31);
}

/* Field by field: memcmp would also compare the struct's uninitialised padding (valgrind found
 * it), which made identical stacks fail to dedupe. */
static int lt_frames_equal(const lt_frame *a, const lt_frame *b, int n) {
    for (int k = 0; k < n; k++)
        if (a[k].code != b[k].code || a[k].line != b[k].line) return 0;
    return 1;
}

static void lt_index_put(uint32_t id) {
    size_t i = (size_t)g_stacks[id].hash & g_stack_index_mask;
    while (g_stack_index[i] != 0) i = (i + 1) & g_stack_index_mask;
    g_stack_index[i] = id + 1;
}

/* Takes ownership of the references in f (consumed or released). Returns a stack id. */
static uint32_t lt_intern_stack(lt_frame *f, int n, int truncated) {
    uint64_t h = lt_stack_hash(f, n, truncated);
    size_t i = (size_t)h & g_stack_index_mask;
    uint32_t slot;
    while ((slot = g_stack_index[i]) != 0) {
        lt_stack *s = &g_stacks[slot - 1];
        if (s->hash == h && s->nframes == (uint32_t)n && s->truncated == (uint32_t)truncated &&
            lt_frames_equal(s->frames, f, n)) {
            for (int k = 0; k < n; k++) Py_DECREF(f[k].code);
            return slot - 1;
        }
        i = (i + 1) & g_stack_index_mask;
    }
    uint32_t id;
    if (g_stack_free_n > 0) {
        id = g_stack_free[--g_stack_free_n];
    } else if (g_stack_hwm < g_stack_max) {
        id = g_stack_hwm++;
    } else {
        g_stacks_overflowed++;
        for (int k = 0; k < n; k++) Py_DECREF(f[k].code);
        return 0;
    }
    lt_frame *copy = (lt_frame *)malloc(sizeof(lt_frame) * (size_t)(n > 0 ? n : 1));
    if (copy == NULL) {
        g_stack_free[g_stack_free_n++] = id;
        g_stacks_overflowed++;
        for (int k = 0; k < n; k++) Py_DECREF(f[k].code);
        return 0;
    }
    memcpy(copy, f, sizeof(lt_frame) * (size_t)n);
    g_stacks[id].hash = h;
    g_stacks[id].frames = copy;
    g_stacks[id].nframes = (uint32_t)n;
    g_stacks[id].truncated = (uint32_t)truncated;
    g_stacks[id].in_use = 1;
    g_stack_used++;
    lt_index_put(id);
    return id;
}

/* --- span attribution: C-level reads only, no bytecode ------------------------------------ */
static int lt_long_to_u128(PyObject *v, uint64_t *hi, uint64_t *lo) {
    unsigned char buf[16];
    if (!PyLong_Check(v)) return -1;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyLong_AsNativeBytes(v, buf, 16, Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER) < 0) {
        PyErr_Clear();
        return -1;
    }
#else
    if (_PyLong_AsByteArray((PyLongObject *)v, buf, 16, 1, 0) < 0) {
        PyErr_Clear();
        return -1;
    }
#endif
    memcpy(lo, buf, 8);
    memcpy(hi, buf + 8, 8);
    return 0;
}

static void lt_current_span(uint64_t *thi, uint64_t *tlo, uint64_t *span) {
    *thi = *tlo = *span = 0;
    if (g_ctxvar == NULL) return;
    PyObject *ctx = NULL;
    if (PyContextVar_Get(g_ctxvar, NULL, &ctx) < 0 || ctx == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyDict_Check(ctx)) {
        PyObject *sp = PyDict_GetItemWithError(ctx, g_span_key); /* borrowed */
        /* Only a plain attribute read: a custom __getattr__, or a property named _context,
         * would run bytecode inside the allocator. _PyType_Lookup only reads the type cache. */
        PyObject *descr = sp != NULL ? _PyType_Lookup(Py_TYPE(sp), g_str_context) : NULL;
        if (sp != NULL && Py_TYPE(sp)->tp_getattro == PyObject_GenericGetAttr &&
            (descr == NULL || Py_IS_TYPE(descr, &PyMemberDescr_Type))) {
            PyObject *sc = PyObject_GenericGetAttr(sp, g_str_context);
            if (sc != NULL && PyTuple_Check(sc) && PyTuple_GET_SIZE(sc) >= 2) {
                uint64_t shi = 0, slo = 0;
                if (lt_long_to_u128(PyTuple_GET_ITEM(sc, 0), thi, tlo) < 0 ||
                    lt_long_to_u128(PyTuple_GET_ITEM(sc, 1), &shi, &slo) < 0) {
                    *thi = *tlo = 0;
                } else {
                    *span = slo;
                }
            }
            Py_XDECREF(sc);
        }
        PyErr_Clear();
    }
    Py_DECREF(ctx);
}

/* --- the sampling slow path ---------------------------------------------------------------- */
__attribute__((noinline, cold)) static void lt_sample(void *p, size_t size) {
    g_countdown = lt_draw();
    if (t_guard || !g_enabled || size == 0) return;
    PyThreadState *ts = LT_TSTATE();
    if (ts == NULL || LT_FINALIZING()) return;

    t_guard = 1;
    uint64_t gen = g_generation;
    int gc_was = PyGC_Disable();
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
#endif

    lt_frame frames[LT_MAX_FRAMES_CAP];
    int n = 0, truncated = 0;
#if LT_FRAME_WALK
    _PyInterpreterFrame *f = ts->cframe->current_frame;
    for (; f != NULL; f = f->previous) {
        if (_PyFrame_IsIncomplete(f)) continue;
        if (n >= g_max_frames) {
            truncated = 1;
            break;
        }
        PyCodeObject *co = f->f_code;
        Py_INCREF(co);
        frames[n].code = (PyObject *)co;
        frames[n].line = PyCode_Addr2Line(co, _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT));
        n++;
    }
#endif
    uint64_t thi, tlo, span;
    lt_current_span(&thi, &tlo, &span);
    PyErr_Clear();

#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(et, ev, etb);
#endif
    if (gc_was) PyGC_Enable();

    if (g_enabled && g_generation == gen) {
        double s = (double)size;
        double prob = -expm1(-s / g_interval);
        double w = prob > 0.0 ? 1.0 / prob : 1.0;
        uint32_t sid = lt_intern_stack(frames, n, truncated);
        g_sampled++;
        if (span == 0) g_unattributed++;
        lt_agg_add(sid, thi, tlo, span, w, s * w);
        lt_live_insert((uintptr_t)p, size, w, sid, thi, tlo, span);
    } else {
        for (int k = 0; k < n; k++) Py_DECREF(frames[k].code);
    }
    t_guard = 0;
}

/* --- allocator hooks (hot path) ------------------------------------------------------------ */
static void *lt_malloc(void *ctx, size_t n) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.malloc(h->orig.ctx, n);
    if (LT_UNLIKELY((g_countdown -= (int64_t)n) <= 0) && p != NULL) lt_sample(p, n);
    return p;
}

static void *lt_calloc(void *ctx, size_t nelem, size_t elsize) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.calloc(h->orig.ctx, nelem, elsize);
    if (p != NULL) {
        size_t n = nelem * elsize; /* orig already refused an overflowing product */
        if ((g_countdown -= (int64_t)n) <= 0) lt_sample(p, n);
    }
    return p;
}

static void *lt_realloc(void *ctx, void *old, size_t n) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    void *p = h->orig.realloc(h->orig.ctx, old, n);
    if (p != NULL) {
        /* free + alloc: the old block (if sampled) is gone, the new one is a fresh candidate */
        if (old != NULL && g_live_count != 0) lt_untrack(old);
        if ((g_countdown -= (int64_t)n) <= 0) lt_sample(p, n);
    }
    return p;
}

static void lt_free(void *ctx, void *p) {
    lt_hook_ctx *h = (lt_hook_ctx *)ctx;
    if (LT_UNLIKELY(g_live_count != 0) && p != NULL) lt_untrack(p);
    h->orig.free(h->orig.ctx, p);
}

static PyMemAllocatorEx lt_hook_obj = {&g_obj, lt_malloc, lt_calloc, lt_realloc, lt_free};
static PyMemAllocatorEx lt_hook_mem = {&g_mem, lt_malloc, lt_calloc, lt_realloc, lt_free};

/* --- table lifetime ------------------------------------------------------------------------ */
static void lt_free_tables(void) {
    /* Detach first (under the GIL) so hooks still in the chain see an empty sampler. */
    lt_live *live = g_live;
    lt_agg *agg = g_agg;
    uint8_t *filter = g_filter;
    lt_stack *stacks = g_stacks;
    uint32_t *index = g_stack_index, *freel = g_stack_free;
    uint32_t hwm = g_stack_hwm;
    g_live_count = 0;
    g_live = NULL;
    g_agg = NULL;
    g_filter = NULL;
    g_stacks = NULL;
    g_stack_index = NULL;
    g_stack_free = NULL;
    g_agg_count = g_live_max = g_agg_max = 0;
    g_stack_used = g_stack_hwm = g_stack_max = g_stack_free_n = 0;
    g_live_bytes = 0.0;
    PyObject *ctxvar = g_ctxvar, *key = g_span_key;
    g_ctxvar = g_span_key = NULL;
    free(live);
    free(agg);
    free(filter);
    free(index);
    free(freel);
    if (stacks != NULL) {
        for (uint32_t i = 0; i < hwm; i++) {
            if (stacks[i].frames != NULL) {
                for (uint32_t k = 0; k < stacks[i].nframes; k++) Py_DECREF(stacks[i].frames[k].code);
                free(stacks[i].frames);
            }
        }
        free(stacks);
    }
    Py_XDECREF(ctxvar);
    Py_XDECREF(key);
}

static int lt_hooks_are_ours(void) {
    PyMemAllocatorEx cur_obj, cur_mem;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur_obj);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &cur_mem);
    return cur_obj.malloc == lt_malloc && cur_obj.ctx == &g_obj && cur_mem.malloc == lt_malloc &&
           cur_mem.ctx == &g_mem;
}

static void lt_disable(void) {
    g_enabled = 0;
    g_generation++;
    /* Unhook only if nobody chained on top of us (tracemalloc, another profiler); otherwise stay
     * in the chain as a pass-through, which is always safe, and reuse the hooks on next start. */
    if (g_installed && lt_hooks_are_ours()) {
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &g_obj.orig);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &g_mem.orig);
        g_installed = 0;
    }
    lt_free_tables();
    g_countdown = INT64_MAX;
}

/* --- module functions ---------------------------------------------------------------------- */
static PyObject *hs_start(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sample_bytes", "max_frames", "max_tracked", "max_stacks", "context_var",
                             "span_key", NULL};
    long long sample_bytes;
    int max_frames;
    Py_ssize_t max_tracked, max_stacks;
    PyObject *ctxvar, *span_key;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LinnOO", kwlist, &sample_bytes, &max_frames, &max_tracked,
                                     &max_stacks, &ctxvar, &span_key))
        return NULL;
#if !LT_SUPPORTED
    PyErr_SetString(PyExc_RuntimeError, "the heap sampler does not support free-threaded builds");
    return NULL;
#endif
    if (g_enabled) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a heap sampler is already running in this process (only one can hook the allocator)");
        return NULL;
    }
    if (sample_bytes < 1 || max_frames < 1 || max_frames > LT_MAX_FRAMES_CAP || max_tracked < 1 ||
        max_stacks < 2) {
        PyErr_Format(PyExc_ValueError,
                     "need sample_bytes >= 1, 1 <= max_frames <= %d, max_tracked >= 1, max_stacks >= 2",
                     LT_MAX_FRAMES_CAP);
        return NULL;
    }
    if (ctxvar != Py_None && !PyContextVar_CheckExact(ctxvar)) {
        PyErr_SetString(PyExc_TypeError, "context_var must be a contextvars.ContextVar or None");
        return NULL;
    }
    PyObject *str_context = g_str_context;
    if (str_context == NULL) {
        str_context = PyUnicode_InternFromString("_context");
        if (str_context == NULL) return NULL;
        g_str_context = str_context; /* immortal for the process */
    }
    size_t live_cap = lt_pow2_at_least((size_t)max_tracked * 2);
    size_t agg_cap = lt_pow2_at_least((size_t)max_tracked * 2);
    size_t idx_cap = lt_pow2_at_least((size_t)max_stacks * 2);
    lt_live *live = (lt_live *)calloc(live_cap, sizeof(lt_live));
    lt_agg *agg = (lt_agg *)calloc(agg_cap, sizeof(lt_agg));
    uint8_t *filter = (uint8_t *)calloc(LT_FILTER_SIZE, 1);
    lt_stack *stacks = (lt_stack *)calloc((size_t)max_stacks, sizeof(lt_stack));
    uint32_t *index = (uint32_t *)calloc(idx_cap, sizeof(uint32_t));
    uint32_t *freel = (uint32_t *)calloc((size_t)max_stacks, sizeof(uint32_t));
    if (!live || !agg || !filter || !stacks || !index || !freel) {
        free(live);
        free(agg);
        free(filter);
        free(stacks);
        free(index);
        free(freel);
        return PyErr_NoMemory();
    }
    g_live = live;
    g_live_mask = live_cap - 1;
    g_live_shift = 0;
    {
        int bits = 0;
        while (((size_t)1 << bits) < live_cap) bits++;
        g_live_shift = 64 - bits;
    }
    g_live_max = (size_t)max_tracked;
    g_live_count = 0;
    g_live_bytes = 0.0;
    g_filter = filter;
    g_agg = agg;
    g_agg_mask = agg_cap - 1;
    g_agg_max = (size_t)max_tracked;
    g_agg_count = 0;
    g_agg_over_objects = g_agg_over_bytes = 0.0;
    g_agg_overflowed = 0;
    g_stacks = stacks;
    g_stack_max = (uint32_t)max_stacks;
    g_stack_index = index;
    g_stack_index_mask = idx_cap - 1;
    g_stack_free = freel;
    g_stack_free_n = 0;
    g_stack_hwm = 1; /* id 0 = overflow stack, never interned */
    g_stack_used = 0;
    g_stacks_overflowed = 0;
    g_stack_epoch++;
    g_dropped = g_sampled = g_unattributed = 0;
    g_interval = (double)sample_bytes;
    g_max_frames = max_frames;
    Py_XINCREF(ctxvar == Py_None ? NULL : ctxvar);
    g_ctxvar = ctxvar == Py_None ? NULL : ctxvar;
    Py_INCREF(span_key);
    g_span_key = span_key;
    g_rng ^= (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&g_rng ^ (uint64_t)clock();
    if (g_rng == 0) g_rng = 0x9E3779B97F4A7C15ULL;
    g_countdown = lt_draw();
    g_generation++;
    if (!g_installed) {
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_obj.orig);
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &g_mem.orig);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &lt_hook_obj);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &lt_hook_mem);
        g_installed = 1;
    }
    g_enabled = 1;
    Py_RETURN_NONE;
}

static PyObject *hs_stop(PyObject *self, PyObject *unused) {
    int was = g_enabled;
    if (g_enabled || g_live != NULL) lt_disable();
    return PyBool_FromLong(was);
}

/* Called in a forked child: only the forking thread survives, and it held the GIL across fork,
 * so the tables are consistent; we unhook and free them so the child starts unprofiled. */
static PyObject *hs_after_fork_child(PyObject *self, PyObject *unused) { return hs_stop(self, unused); }

static PyObject *hs_running(PyObject *self, PyObject *unused) { return PyBool_FromLong(g_enabled); }

static PyObject *hs_stats(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{s:O,s:O,s:n,s:n,s:d,s:K,s:K,s:K,s:n,s:K,s:K,s:K,s:d,s:K,s:K}", "running",
                         g_enabled ? Py_True : Py_False, "installed", g_installed ? Py_True : Py_False,
                         "live_count", (Py_ssize_t)g_live_count, "max_tracked", (Py_ssize_t)g_live_max,
                         "live_bytes", g_live_bytes, "dropped", (unsigned long long)g_dropped, "sampled",
                         (unsigned long long)g_sampled, "unattributed", (unsigned long long)g_unattributed,
                         "stacks", (Py_ssize_t)g_stack_used, "stacks_overflowed",
                         (unsigned long long)g_stacks_overflowed, "alloc_overflowed",
                         (unsigned long long)g_agg_overflowed, "stack_epoch",
                         (unsigned long long)g_stack_epoch, "sample_bytes", g_interval, "generation",
                         (unsigned long long)g_generation, "free_slots", (unsigned long long)g_stack_free_n);
}

/* Drop stacks that no live block and no alloc aggregate references. Ids of survivors stay
 * stable; freed ids are reused, so the Python side must resolve the ids it holds before calling
 * this and clear its id -> frames cache when stack_epoch changes. */
static void lt_compact_stacks(void) {
    if (g_stacks == NULL) return;
    for (uint32_t i = 1; i < g_stack_hwm; i++) g_stacks[i].in_use = 0;
    for (size_t i = 0; i <= g_live_mask && g_live_count; i++)
        if (g_live[i].ptr != 0) g_stacks[g_live[i].stack_id].in_use = 1;
    for (size_t i = 0; i <= g_agg_mask && g_agg_count; i++)
        if (g_agg[i].used) g_stacks[g_agg[i].stack_id].in_use = 1;
    memset(g_stack_index, 0, sizeof(uint32_t) * (g_stack_index_mask + 1));
    g_stack_free_n = 0;
    g_stack_used = 0;
    PyObject **dead = NULL;
    size_t ndead = 0, cap = 0;
    for (uint32_t i = g_stack_hwm; i-- > 1;) {
        lt_stack *s = &g_stacks[i];
        if (s->frames != NULL && s->in_use) {
            lt_index_put(i);
            g_stack_used++;
            continue;
        }
        if (s->frames != NULL) {
            /* collect references; release them after the tables are consistent again */
            if (ndead + s->nframes > cap) {
                size_t ncap = (cap + s->nframes) * 2;
                PyObject **nd = (PyObject **)realloc(dead, ncap * sizeof(PyObject *));
                if (nd == NULL) { /* keep it rather than leak: mark used */
                    lt_index_put(i);
                    g_stack_used++;
                    continue;
                }
                dead = nd;
                cap = ncap;
            }
            for (uint32_t k = 0; k < s->nframes; k++) dead[ndead++] = s->frames[k].code;
            free(s->frames);
            s->frames = NULL;
            s->nframes = 0;
        }
        g_stack_free[g_stack_free_n++] = i;
    }
    g_stack_epoch++;
    for (size_t k = 0; k < ndead; k++) Py_DECREF(dead[k]);
    free(dead);
}

/* snapshot(reset_alloc, include_alloc=True) -> (live, alloc, (overflow_objects, overflow_bytes), stack_epoch)
 * include_alloc=False (the hunter's tick) leaves the alloc aggregates alone and returns none of
 * them: they hold one entry per sampled (stack, trace, span) since the last export, thousands
 * of tuples a tick that a live-heap reader would build and throw away.
 * live: [(stack_id, trace_hi, trace_lo, span, size, weight)], alloc: [(stack_id, trace_hi,
 * trace_lo, span, objects, bytes)]. Tables are copied with libc memory first: building Python
 * objects allocates and frees, and frees may reshuffle the live table under our feet. */
static PyObject *hs_snapshot(PyObject *self, PyObject *args) {
    int reset_alloc = 0, include_alloc = 1;
    if (!PyArg_ParseTuple(args, "|pp", &reset_alloc, &include_alloc)) return NULL;
    if (!include_alloc) reset_alloc = 0;
    if (g_live == NULL) return Py_BuildValue("([],[],(dd),K)", 0.0, 0.0, (unsigned long long)g_stack_epoch);
    int saved_guard = t_guard;
    t_guard = 1;
    size_t nl = g_live_count, na = include_alloc ? g_agg_count : 0;
    lt_live *lc = (lt_live *)malloc(sizeof(lt_live) * (nl ? nl : 1));
    lt_agg *ac = (lt_agg *)malloc(sizeof(lt_agg) * (na ? na : 1));
    if (lc == NULL || ac == NULL) {
        free(lc);
        free(ac);
        t_guard = saved_guard;
        return PyErr_NoMemory();
    }
    size_t k = 0;
    for (size_t i = 0; i <= g_live_mask && k < nl; i++)
        if (g_live[i].ptr != 0) lc[k++] = g_live[i];
    nl = k;
    k = 0;
    for (size_t i = 0; i <= g_agg_mask && k < na; i++)
        if (g_agg[i].used) ac[k++] = g_agg[i];
    na = k;
    double over_o = include_alloc ? g_agg_over_objects : 0.0, over_b = include_alloc ? g_agg_over_bytes : 0.0;
    if (reset_alloc) {
        memset(g_agg, 0, sizeof(lt_agg) * (g_agg_mask + 1));
        g_agg_count = 0;
        g_agg_over_objects = g_agg_over_bytes = 0.0;
    }
    uint64_t epoch = g_stack_epoch;
    PyObject *live = PyList_New((Py_ssize_t)nl), *alloc = PyList_New((Py_ssize_t)na), *res = NULL;
    if (live == NULL || alloc == NULL) goto done;
    for (size_t i = 0; i < nl; i++) {
        PyObject *t = Py_BuildValue("(IKKKnd)", lc[i].stack_id, (unsigned long long)lc[i].trace_hi,
                                    (unsigned long long)lc[i].trace_lo, (unsigned long long)lc[i].span,
                                    (Py_ssize_t)lc[i].size, lc[i].weight);
        if (t == NULL) goto done;
        PyList_SET_ITEM(live, (Py_ssize_t)i, t);
    }
    for (size_t i = 0; i < na; i++) {
        PyObject *t = Py_BuildValue("(IKKKdd)", ac[i].stack_id, (unsigned long long)ac[i].trace_hi,
                                    (unsigned long long)ac[i].trace_lo, (unsigned long long)ac[i].span,
                                    ac[i].objects, ac[i].bytes);
        if (t == NULL) goto done;
        PyList_SET_ITEM(alloc, (Py_ssize_t)i, t);
    }
    res = Py_BuildValue("(OO(dd)K)", live, alloc, over_o, over_b, (unsigned long long)epoch);
done:
    Py_XDECREF(live);
    Py_XDECREF(alloc);
    free(lc);
    free(ac);
    t_guard = saved_guard;
    return res;
}

/* stack(id) -> (((code, line), ...), truncated) or None for the overflow id / a free slot. */
static PyObject *hs_stack(PyObject *self, PyObject *arg) {
    unsigned long id = PyLong_AsUnsignedLong(arg);
    if (id == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (g_stacks == NULL || id == 0 || id >= g_stack_hwm || g_stacks[id].frames == NULL) Py_RETURN_NONE;
    lt_stack *s = &g_stacks[id];
    uint32_t n = s->nframes;
    int truncated = (int)s->truncated;
    /* copy refs first: building tuples can run frees but never changes stack slots */
    PyObject *frames = PyTuple_New((Py_ssize_t)n);
    if (frames == NULL) return NULL;
    for (uint32_t k = 0; k < n; k++) {
        PyObject *t = Py_BuildValue("(Oi)", s->frames[k].code, s->frames[k].line);
        if (t == NULL) {
            Py_DECREF(frames);
            return NULL;
        }
        PyTuple_SET_ITEM(frames, (Py_ssize_t)k, t);
    }
    PyObject *res = Py_BuildValue("(NO)", frames, truncated ? Py_True : Py_False);
    return res;
}

static PyObject *hs_compact_stacks(PyObject *self, PyObject *unused) {
    uint64_t before = g_stack_used;
    lt_compact_stacks();
    return PyLong_FromUnsignedLongLong((unsigned long long)(before - g_stack_used));
}

static PyMethodDef hs_methods[] = {
    {"compact_stacks", hs_compact_stacks, METH_NOARGS,
     "compact_stacks() -> int: free stacks nothing references; bumps stack_epoch."},
    {"start", (PyCFunction)(void (*)(void))hs_start, METH_VARARGS | METH_KEYWORDS,
     "start(sample_bytes, max_frames, max_tracked, max_stacks, context_var, span_key): hook the allocator."},
    {"stop", hs_stop, METH_NOARGS, "stop() -> bool: unhook (or go pass-through) and free the tables."},
    {"after_fork_child", hs_after_fork_child, METH_NOARGS, "Disable sampling in a forked child."},
    {"running", hs_running, METH_NOARGS, "running() -> bool"},
    {"stats", hs_stats, METH_NOARGS, "stats() -> dict of counters"},
    {"snapshot", hs_snapshot, METH_VARARGS, "snapshot(reset_alloc=False, include_alloc=True) -> (live, alloc, overflow, epoch)"},
    {"stack", hs_stack, METH_O, "stack(id) -> (((code, line), ...), truncated) or None"},
    {NULL, NULL, 0, NULL},
};

static int hs_exec(PyObject *m) {
    if (PyModule_AddIntConstant(m, "SUPPORTED", LT_SUPPORTED) < 0) return -1;
    if (PyModule_AddIntConstant(m, "MAX_FRAMES_CAP", LT_MAX_FRAMES_CAP) < 0) return -1;
    return 0;
}

static PyModuleDef_Slot hs_slots[] = {
    {Py_mod_exec, (void *)hs_exec},
#ifdef Py_GIL_DISABLED
    /* Nothing here runs on a free-threaded build (start() refuses), so importing must not
     * re-enable the GIL for the whole process. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef hs_module = {
    PyModuleDef_HEAD_INIT, "_heapsampler", "Span-linked Poisson sampling heap profiler (native part).", 0,
    hs_methods, hs_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__heapsampler(void) { return PyModuleDef_Init(&hs_module); }
