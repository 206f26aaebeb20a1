/*
 * leaktrace.profiling._heapsampler: the Python module around the native heap sampler.
 * Nothing here runs inside an allocator hook; see hooks.c for what does.
 *
 * The one static object is lt_g, the sampler's state: the allocator hook is process-wide, so
 * is the fact that it is installed, and the hooks reach the state through their ctx pointer.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lt_context.h"
#include "lt_frames.h"

lt_state lt_g = {
    .obj = {.st = &lt_g},
    .mem = {.st = &lt_g},
    .countdown = INT64_MAX,
    .interval = 512.0 * 1024.0,
    .rng = 0x9E3779B97F4A7C15ULL,
    .max_frames = 64,
};

/* --- SpanRef: the record of a span that the hook reads ----------------------------------- */
static int lt_long_to_u128(PyObject *v, uint64_t *hi, uint64_t *lo) {
    unsigned char buf[16];
    if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "trace_id must be an int");
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t r = PyLong_AsNativeBytes(v, buf, 16,
                                        Py_ASNATIVEBYTES_LITTLE_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (r < 0) return -1;
    if (r > 16) {
        PyErr_SetString(PyExc_OverflowError, "trace_id does not fit in 128 bits");
        return -1;
    }
#else
    if (_PyLong_AsByteArray((PyLongObject *)v, buf, 16, 1, 0) < 0) return -1;
#endif
    memcpy(lo, buf, 8);
    memcpy(hi, buf + 8, 8);
    return 0;
}

static PyObject *lt_spanref_make(PyTypeObject *type, uint64_t thi, uint64_t tlo, uint64_t span) {
    lt_spanref *r = (lt_spanref *)type->tp_alloc(type, 0);
    if (r == NULL) return NULL;
    r->trace_hi = thi;
    r->trace_lo = tlo;
    r->span = span;
    return (PyObject *)r;
}

static PyObject *spanref_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"trace_id", "span_id", NULL};
    PyObject *tid;
    unsigned long long sid;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OK", kwlist, &tid, &sid)) return NULL;
    uint64_t hi, lo;
    if (lt_long_to_u128(tid, &hi, &lo) < 0) return NULL;
    return lt_spanref_make(type, hi, lo, (uint64_t)sid);
}

static PyObject *spanref_trace_id(PyObject *self, void *unused) {
    lt_spanref *r = (lt_spanref *)self;
    PyObject *hi = PyLong_FromUnsignedLongLong(r->trace_hi), *sh = PyLong_FromLong(64);
    PyObject *lo = PyLong_FromUnsignedLongLong(r->trace_lo), *res = NULL;
    if (hi && sh && lo) {
        PyObject *top = PyNumber_Lshift(hi, sh);
        if (top) res = PyNumber_Or(top, lo);
        Py_XDECREF(top);
    }
    Py_XDECREF(hi);
    Py_XDECREF(sh);
    Py_XDECREF(lo);
    return res;
}

static PyObject *spanref_span_id(PyObject *self, void *unused) {
    return PyLong_FromUnsignedLongLong(((lt_spanref *)self)->span);
}

static PyObject *spanref_repr(PyObject *self) {
    lt_spanref *r = (lt_spanref *)self;
    return PyUnicode_FromFormat("SpanRef(trace=%016llx%016llx, span=%016llx)", (unsigned long long)r->trace_hi,
                                (unsigned long long)r->trace_lo, (unsigned long long)r->span);
}

static PyGetSetDef spanref_getset[] = {
    {"trace_id", spanref_trace_id, NULL, "128-bit trace id (0 = none)", NULL},
    {"span_id", spanref_span_id, NULL, "64-bit span id (0 = none)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* Final (no subtype can add a __del__ or a dict) and immutable, so the hook's exact type check
 * and plain field reads are all it needs. */
PyTypeObject lt_SpanRef_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "leaktrace.profiling._heapsampler.SpanRef",
    .tp_basicsize = sizeof(lt_spanref),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SpanRef(trace_id, span_id): a span as the allocator hook reads it.",
    .tp_new = spanref_new,
    .tp_repr = spanref_repr,
    .tp_getset = spanref_getset,
};

/* --- start-time check of the HAMT reader ---------------------------------------------------- */
/* Reads through the hook's own reader, in a fresh context with a growing number of other
 * variables (bitmap roots, nested bitmaps, array nodes), and compares with what was set. A
 * layout this build does not expect fails here, before any hook relies on it. */
static int lt_check_reader(lt_state *st) {
#if LT_SUPPORTED
    PyThreadState *ts = PyThreadState_Get();
    PyObject *ctx = PyContext_New(), *expect = NULL, *decoys = PyList_New(0);
    int ok = 0, entered = 0;
    if (ctx == NULL || decoys == NULL) goto done;
    if (PyContext_Enter(ctx) < 0) goto done;
    entered = 1;
    uint64_t thi, tlo, span;
    lt_current_span(st, ts, &thi, &tlo, &span);
    if (thi || tlo || span) goto mismatch;
    expect = lt_spanref_make(&lt_SpanRef_Type, 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x1122334455667788ULL);
    if (expect == NULL) goto done;
    PyObject *tok = PyContextVar_Set(st->span_var, expect);
    if (tok == NULL) goto done;
    Py_DECREF(tok);
    for (int i = 0; i <= 64; i++) {
        if (i == 0 || i == 1 || i == 15 || i == 17 || i == 40 || i == 64) {
            lt_current_span(st, ts, &thi, &tlo, &span);
            if (thi != 0x0123456789abcdefULL || tlo != 0xfedcba9876543210ULL || span != 0x1122334455667788ULL)
                goto mismatch;
        }
        PyObject *d = PyContextVar_New("leaktrace_reader_check", NULL);
        if (d == NULL) goto done;
        int rc = PyList_Append(decoys, d);
        PyObject *t = rc < 0 ? NULL : PyContextVar_Set(d, Py_None);
        Py_DECREF(d);
        if (t == NULL) goto done;
        Py_DECREF(t);
    }
    ok = 1;
    goto done;
mismatch:
    PyErr_SetString(PyExc_RuntimeError,
                    "the heap sampler cannot read this interpreter's contexts (unexpected HAMT layout)");
done:
    if (entered && PyContext_Exit(ctx) < 0) ok = 0;
    Py_XDECREF(expect);
    Py_XDECREF(decoys);
    Py_XDECREF(ctx);
    return ok ? 0 : -1;
#else
    return 0;
#endif
}

/* --- lifecycle ----------------------------------------------------------------------------- */
static int lt_hooks_are_ours(void) {
    PyMemAllocatorEx cur_obj, cur_mem;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cur_obj);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &cur_mem);
    return cur_obj.malloc == lt_malloc && cur_obj.ctx == &lt_g.obj && cur_mem.malloc == lt_malloc &&
           cur_mem.ctx == &lt_g.mem;
}

static int lt_other_interpreters(void) {
    return PyInterpreterState_Next(PyInterpreterState_Head()) != NULL;
}

static void lt_disable(lt_state *st) {
    st->enabled = 0;
    st->generation++;
    /* Unhook only if nobody chained on top of us (tracemalloc, another profiler); otherwise stay
     * in the chain as a pass-through, which is always safe, and reuse the hooks on next start. */
    if (st->installed && lt_hooks_are_ours()) {
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &st->obj.orig);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &st->mem.orig);
        st->installed = 0;
    }
    lt_free_tables(st, lt_other_interpreters());
    st->countdown = INT64_MAX;
}

static PyObject *hs_start(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sample_bytes", "max_frames", "max_tracked", "max_stacks", "context_var", NULL};
    lt_state *st = &lt_g;
    long long sample_bytes;
    int max_frames;
    Py_ssize_t max_tracked, max_stacks;
    PyObject *var;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LinnO", kwlist, &sample_bytes, &max_frames, &max_tracked,
                                     &max_stacks, &var))
        return NULL;
#if !LT_SUPPORTED
    PyErr_Format(PyExc_RuntimeError,
                 "the heap sampler supports CPython 3.11 to 3.13 with the GIL; this is %s", Py_GetVersion());
    return NULL;
#endif
    if (st->enabled) {
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
    if (var != Py_None && !PyContextVar_CheckExact(var)) {
        PyErr_SetString(PyExc_TypeError, "context_var must be a contextvars.ContextVar or None");
        return NULL;
    }
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        /* the hook is process-wide and its state is one per process */
        PyErr_SetString(PyExc_RuntimeError, "the heap sampler can only start in the main interpreter");
        return NULL;
    }
    if (st->live != NULL) lt_free_tables(st, lt_other_interpreters()); /* left over from a stop() */
    if (var != Py_None) {
        Py_hash_t h = PyObject_Hash(var);
        if (h == -1) return NULL;
        st->span_var_hash = lt_hamt_hash(h);
        Py_INCREF(var);
        st->span_var = var;
        if (lt_check_reader(st) < 0) {
            Py_CLEAR(st->span_var);
            return NULL;
        }
    }
    if (lt_alloc_tables(st, (size_t)max_tracked, (size_t)max_stacks) < 0) {
        Py_CLEAR(st->span_var);
        return PyErr_NoMemory();
    }
    st->interp = PyInterpreterState_Main();
    st->interval = (double)sample_bytes;
    st->max_frames = max_frames;
    st->rng ^= (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&st->rng ^ (uint64_t)clock();
    if (st->rng == 0) st->rng = 0x9E3779B97F4A7C15ULL;
    st->countdown = lt_draw(st);
    st->generation++;
    if (!st->installed) {
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &st->obj.orig);
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &st->mem.orig);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &lt_hook_obj);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &lt_hook_mem);
        st->installed = 1;
    }
    st->enabled = 1;
    Py_RETURN_NONE;
}

static PyObject *hs_stop(PyObject *self, PyObject *unused) {
    int was = lt_g.enabled;
    if (lt_g.enabled || lt_g.live != NULL) lt_disable(&lt_g);
    return PyBool_FromLong(was);
}

/* In a forked child only the forking thread survives, and it held the GIL across fork, so the
 * tables are consistent. Their samples are the parent's memory as seen by the parent (the child
 * shares those pages copy-on-write and did not allocate them), so the child drops them and samples
 * its own allocations from empty tables of the same size, with the hook left in place: a worker's
 * leak is the one that matters in a prefork server (ddtrace's memalloc does the same). The child
 * draws from its own random stream, or every worker would sample the same points. If the tables
 * cannot be made again, the child stops sampling. Returns whether it samples. */
static PyObject *hs_after_fork_child(PyObject *self, PyObject *unused) {
    lt_state *st = &lt_g;
    if (!st->enabled) return hs_stop(self, unused);
    size_t max_tracked = st->live_max;
    size_t max_stacks = st->stack_max;
    PyObject *var = st->span_var; /* the span record stays; lt_free_tables releases one reference */
    Py_XINCREF(var);
    st->enabled = 0; /* hooks pass through while the tables are swapped */
    st->generation++;
    lt_free_tables(st, 0); /* fork keeps only the main interpreter */
    if (lt_alloc_tables(st, max_tracked, max_stacks) < 0) {
        Py_XDECREF(var);
        lt_disable(st);
        Py_RETURN_FALSE;
    }
    st->span_var = var;
    st->rng ^= (uint64_t)getpid() * 0xD1B54A32D192ED03ULL ^ (uint64_t)clock();
    if (st->rng == 0) st->rng = 0x9E3779B97F4A7C15ULL;
    st->countdown = lt_draw(st);
    st->interp = PyInterpreterState_Main();
    st->enabled = 1;
    Py_RETURN_TRUE;
}

static PyObject *hs_running(PyObject *self, PyObject *unused) { return PyBool_FromLong(lt_g.enabled); }

static PyObject *hs_stats(PyObject *self, PyObject *unused) {
    lt_state *st = &lt_g;
    return Py_BuildValue("{s:O,s:O,s:n,s:n,s:d,s:K,s:K,s:K,s:n,s:K,s:K,s:K,s:d,s:K,s:K}", "running",
                         st->enabled ? Py_True : Py_False, "installed", st->installed ? Py_True : Py_False,
                         "live_count", (Py_ssize_t)st->live_count, "max_tracked", (Py_ssize_t)st->live_max,
                         "live_bytes", st->live_bytes, "dropped", (unsigned long long)st->dropped, "sampled",
                         (unsigned long long)st->sampled, "unattributed", (unsigned long long)st->unattributed,
                         "stacks", (Py_ssize_t)st->stack_used, "stacks_overflowed",
                         (unsigned long long)st->stacks_overflowed, "alloc_overflowed",
                         (unsigned long long)st->agg_overflowed, "stack_epoch",
                         (unsigned long long)st->stack_epoch, "sample_bytes", st->interval, "generation",
                         (unsigned long long)st->generation, "free_slots", (unsigned long long)st->stack_free_n);
}

/* current_span() -> (trace_id, span_id) as the hook would read it now, or None. */
static PyObject *hs_current_span(PyObject *self, PyObject *unused) {
#if LT_SUPPORTED
    uint64_t thi, tlo, span;
    lt_current_span(&lt_g, PyThreadState_Get(), &thi, &tlo, &span);
    if (!thi && !tlo && !span) Py_RETURN_NONE;
    PyObject *r = lt_spanref_make(&lt_SpanRef_Type, thi, tlo, span), *res = NULL;
    if (r == NULL) return NULL;
    PyObject *tid = spanref_trace_id(r, NULL);
    if (tid != NULL) res = Py_BuildValue("(NK)", tid, (unsigned long long)span);
    Py_DECREF(r);
    return res;
#else
    Py_RETURN_NONE;
#endif
}

/* snapshot(reset_alloc, include_alloc=True) -> (live, alloc, (overflow_objects, overflow_bytes), stack_epoch)
 * include_alloc=False (the hunter's tick) leaves the alloc aggregates alone and returns none of
 * them. live: [(stack_id, trace_hi, trace_lo, span, size, weight)], alloc: [(stack_id, trace_hi,
 * trace_lo, span, objects, bytes)]. Tables are copied with libc memory first: building Python
 * objects allocates and frees, and frees reshuffle the live table under our feet. */
static PyObject *hs_snapshot(PyObject *self, PyObject *args) {
    lt_state *st = &lt_g;
    int reset_alloc = 0, include_alloc = 1;
    if (!PyArg_ParseTuple(args, "|pp", &reset_alloc, &include_alloc)) return NULL;
    if (!include_alloc) reset_alloc = 0;
    if (st->live == NULL) return Py_BuildValue("([],[],(dd),K)", 0.0, 0.0, (unsigned long long)st->stack_epoch);
    int saved_guard = lt_guard_enter();
    size_t nl = st->live_count, na = include_alloc ? st->agg_count : 0;
    lt_live *lc = (lt_live *)malloc(sizeof(lt_live) * (nl ? nl : 1));
    lt_agg *ac = (lt_agg *)malloc(sizeof(lt_agg) * (na ? na : 1));
    if (lc == NULL || ac == NULL) {
        free(lc);
        free(ac);
        lt_guard_exit(saved_guard);
        return PyErr_NoMemory();
    }
    size_t k = 0;
    for (size_t i = 0; i <= st->live_mask && k < nl; i++)
        if (st->live[i].ptr != 0) lc[k++] = st->live[i];
    nl = k;
    k = 0;
    for (size_t i = 0; i <= st->agg_mask && k < na; i++)
        if (st->agg[i].used) ac[k++] = st->agg[i];
    na = k;
    double over_o = include_alloc ? st->agg_over_objects : 0.0, over_b = include_alloc ? st->agg_over_bytes : 0.0;
    if (reset_alloc) {
        memset(st->agg, 0, sizeof(lt_agg) * (st->agg_mask + 1));
        st->agg_count = 0;
        st->agg_over_objects = st->agg_over_bytes = 0.0;
    }
    uint64_t epoch = st->stack_epoch;
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
    lt_guard_exit(saved_guard);
    return res;
}

/* stack(id) -> (((code, line), ...), truncated) or None for the overflow id / a free slot. */
static PyObject *hs_stack(PyObject *self, PyObject *arg) {
    lt_state *st = &lt_g;
    unsigned long id = PyLong_AsUnsignedLong(arg);
    if (id == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    if (st->stacks == NULL || id == 0 || id >= st->stack_hwm || st->stacks[id].frames == NULL) Py_RETURN_NONE;
    lt_stack *s = &st->stacks[id];
    uint32_t n = s->nframes;
    int truncated = (int)s->truncated;
    /* building tuples can run frees but never changes stack slots */
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
    return Py_BuildValue("(NO)", frames, truncated ? Py_True : Py_False);
}

static PyObject *hs_compact_stacks(PyObject *self, PyObject *unused) {
    uint64_t before = lt_g.stack_used;
    lt_compact_stacks(&lt_g);
    return PyLong_FromUnsignedLongLong((unsigned long long)(before - lt_g.stack_used));
}

static PyMethodDef hs_methods[] = {
    {"compact_stacks", hs_compact_stacks, METH_NOARGS,
     "compact_stacks() -> int: free stacks nothing references; bumps stack_epoch."},
    {"start", (PyCFunction)(void (*)(void))hs_start, METH_VARARGS | METH_KEYWORDS,
     "start(sample_bytes, max_frames, max_tracked, max_stacks, context_var): hook the allocator. context_var "
     "is the ContextVar whose SpanRef value names the current span (or None)."},
    {"stop", hs_stop, METH_NOARGS, "stop() -> bool: unhook (or go pass-through) and free the tables."},
    {"after_fork_child", hs_after_fork_child, METH_NOARGS,
     "after_fork_child() -> bool: in a forked child, drop the parent's samples and keep sampling."},
    {"running", hs_running, METH_NOARGS, "running() -> bool"},
    {"stats", hs_stats, METH_NOARGS, "stats() -> dict of counters"},
    {"current_span", hs_current_span, METH_NOARGS,
     "current_span() -> (trace_id, span_id) as the allocator hook reads it now, or None"},
    {"snapshot", hs_snapshot, METH_VARARGS,
     "snapshot(reset_alloc=False, include_alloc=True) -> (live, alloc, overflow, epoch)"},
    {"stack", hs_stack, METH_O, "stack(id) -> (((code, line), ...), truncated) or None"},
    {NULL, NULL, 0, NULL},
};

static int hs_exec(PyObject *m) {
    if (PyModule_AddIntConstant(m, "SUPPORTED", LT_SUPPORTED) < 0) return -1;
    if (PyModule_AddIntConstant(m, "MAX_FRAMES_CAP", LT_MAX_FRAMES_CAP) < 0) return -1;
    if (PyType_Ready(&lt_SpanRef_Type) < 0) return -1;
    Py_INCREF(&lt_SpanRef_Type);
    if (PyModule_AddObject(m, "SpanRef", (PyObject *)&lt_SpanRef_Type) < 0) {
        Py_DECREF(&lt_SpanRef_Type);
        return -1;
    }
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
