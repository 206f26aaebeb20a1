/*
 * The one state struct of the native heap sampler, and the declarations every file shares.
 *
 * The sampler's files split by concern (dd-trace-py's memalloc does the same): hooks.c (the
 * allocator hooks and the sampling slow path), live.c, agg.c and stacks.c (the bounded tables the
 * hooks write), span.c (which span is current, read from the context's HAMT), tables.c (table
 * lifetime and compaction, never called from a hook) and module.c (the Python module). The
 * per-CPython-version reads are in lt_frames.h and lt_context.h, nowhere else.
 *
 * Everything called from an allocator hook runs inside CPython's allocation, between two steps
 * of whatever CPython was doing. It may therefore call nothing that reads or writes interpreter
 * state with invariants of its own (docs/heap-profiler.md lists the few CPython functions it
 * calls, and tests/unit/test_heap_hook_symbols.py keeps that list true).
 */
#ifndef LT_STATE_H
#define LT_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define LT_SUPPORTED 1
#else
#define LT_SUPPORTED 0
#endif

#define LT_MAX_FRAMES_CAP 512
#define LT_FILTER_BITS 16
#define LT_FILTER_SIZE (1u << LT_FILTER_BITS)

#define LT_LIKELY(x) __builtin_expect(!!(x), 1)
#define LT_UNLIKELY(x) __builtin_expect(!!(x), 0)

struct lt_state;

typedef struct {
    PyMemAllocatorEx orig;
    struct lt_state *st;
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
    PyObject *code; /* strong reference once interned */
    int line;
} lt_frame;

typedef struct {
    uint64_t hash;
    lt_frame *frames; /* NULL for a free slot (after compaction) or the overflow stack 0 */
    uint32_t nframes;
    uint32_t truncated;
    uint32_t in_use;
} lt_stack;

/* The span current when a block was allocated, as leaktrace recorded it (span.c). */
typedef struct {
    PyObject_HEAD
    uint64_t trace_hi, trace_lo, span;
} lt_spanref;

typedef struct lt_state {
    /* hooks: process-level, since the allocator is */
    lt_hook_ctx obj, mem;
    int installed; /* our allocators are in the chain */
    int enabled;   /* sampling is on */
    uint64_t generation;

    /* the interpreter whose allocations are sampled: the main one. Since 3.12 an interpreter with
     * its own GIL calls the (process-wide) hooks concurrently; those calls only pass through. */
    PyInterpreterState *interp;

    /* sampling */
    int64_t countdown;
    double interval;
    uint64_t rng;
    int max_frames;

    /* live table */
    lt_live *live;
    size_t live_mask, live_count, live_max;
    int live_shift;
    uint8_t *filter;
    double live_bytes; /* running sum of size * weight */
    uint64_t dropped, sampled, unattributed;

    /* alloc aggregation */
    lt_agg *agg;
    size_t agg_mask, agg_count, agg_max;
    double agg_over_objects, agg_over_bytes;
    uint64_t agg_overflowed;

    /* stacks */
    lt_stack *stacks;
    uint32_t stack_max, stack_used, stack_hwm; /* hwm: slots ever handed out */
    uint32_t *stack_index; /* open addressing of stack id + 1; 0 = empty */
    size_t stack_index_mask;
    uint64_t stacks_overflowed, stack_epoch;
    uint32_t *stack_free; /* free list of stack ids after compaction */
    uint32_t stack_free_n;

    /* a stop() while other interpreters run leaves the arrays their frees may still be reading
     * here, to be freed by a later stop() or start() in a process with one interpreter */
    lt_live *retired_live;
    uint8_t *retired_filter;

    /* span attribution: leaktrace's own context variable, read from the HAMT by identity */
    PyObject *span_var;
    int32_t span_var_hash; /* the HAMT's 32-bit fold of hash(span_var) */
    PyTypeObject *hamt_bitmap, *hamt_array, *hamt_collision; /* learnt by name on first sight */
} lt_state;

extern lt_state lt_g;
extern PyTypeObject lt_SpanRef_Type;

/* hooks.c */
extern PyMemAllocatorEx lt_hook_obj, lt_hook_mem;
void *lt_malloc(void *ctx, size_t n);
int lt_guard_enter(void);
void lt_guard_exit(int saved);
int64_t lt_draw(lt_state *st);

/* live.c */
void lt_live_insert(lt_state *st, uintptr_t p, size_t size, double weight, uint32_t stack_id,
                    uint64_t thi, uint64_t tlo, uint64_t span);
void lt_untrack_slow(lt_state *st, uintptr_t p, uint64_t h, uint8_t *c);
void lt_untrack_checked(lt_state *st, uintptr_t p, uint64_t h, uint8_t *c); /* hooks.c */
static inline uint64_t lt_mix(uintptr_t p) { return (uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ULL; }
static inline size_t lt_filter_idx(uint64_t h) { return (size_t)(h >> (64 - LT_FILTER_BITS)); }
static inline void lt_untrack(lt_state *st, void *ptr) {
    /* Read the filter once, and check it: a thread of an interpreter with its own GIL (3.12+)
     * runs beside a stop() in the main one, which detaches the filter (keeping the memory, see
     * lt_free_tables) between this thread's live_count check and this read. */
    uint8_t *filter = __atomic_load_n(&st->filter, __ATOMIC_RELAXED);
    if (LT_UNLIKELY(filter == NULL)) return;
    uintptr_t p = (uintptr_t)ptr;
    uint64_t h = lt_mix(p);
    uint8_t *c = &filter[lt_filter_idx(h)];
    if (LT_UNLIKELY(*c != 0)) lt_untrack_checked(st, p, h, c);
}

/* agg.c */
void lt_agg_add(lt_state *st, uint32_t stack_id, uint64_t thi, uint64_t tlo, uint64_t span,
                double objects, double bytes);

/* stacks.c */
uint32_t lt_intern_stack(lt_state *st, const lt_frame *f, int n, int truncated);
void lt_index_put(lt_state *st, uint32_t id);

/* span.c */
void lt_current_span(lt_state *st, PyThreadState *ts, uint64_t *thi, uint64_t *tlo, uint64_t *span);

/* tables.c (never from a hook) */
int lt_alloc_tables(lt_state *st, size_t max_tracked, size_t max_stacks);
void lt_free_tables(lt_state *st, int others_running);
void lt_compact_stacks(lt_state *st);

#endif
