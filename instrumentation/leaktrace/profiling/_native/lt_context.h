/*
 * The current context's variables, per CPython version, read without calling CPython.
 *
 * PyContextVar_Get is not safe inside an allocation: it fills the variable's cache, and
 * contextvar_set/contextvar_del allocate between building the new HAMT and dropping the old
 * value. A lookup made there caches a value that is freed right after (the crash behind
 * issue 20). So the hook reads tstate->context -> ctx_vars -> the HAMT itself, as a HAMT
 * lookup would, comparing keys by identity: keys are ContextVar objects, whose equality is
 * identity (the type has no __eq__ and cannot be subclassed). HAMTs are immutable once
 * published, and a context swaps its HAMT pointer before it drops the old one, so whatever
 * tstate->context reaches is whole.
 *
 * The node layouts are private to Objects/hamt.c. They are the same in 3.11, 3.12 and 3.13
 * (bitmap: var-sized head, u32 bitmap, key/value pairs; array: 32 children and a count;
 * collision: var-sized head, i32 hash, key/value pairs), and module.c checks this reader
 * against ContextVar.get() at start() before any hook uses it.
 */
#ifndef LT_CONTEXT_H
#define LT_CONTEXT_H

#include "lt_state.h"

#if LT_SUPPORTED
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#define LT_UNDEF_BUILD_CORE2 1
#endif
#include <internal/pycore_context.h>
#ifdef LT_UNDEF_BUILD_CORE2
#undef Py_BUILD_CORE
#undef LT_UNDEF_BUILD_CORE2
#endif

#define LT_HAMT_MAX_DEPTH 8 /* 32 hash bits in 5-bit steps, then a collision node */

typedef struct {
    PyObject_VAR_HEAD
    uint32_t b_bitmap;
    PyObject *b_array[1];
} lt_hamt_bitmap;

typedef struct {
    PyObject_HEAD
    PyObject *a_array[32];
    Py_ssize_t a_count;
} lt_hamt_array;

typedef struct {
    PyObject_VAR_HEAD
    int32_t c_hash;
    PyObject *c_array[1];
} lt_hamt_collision;

/* The HAMT's own fold of a 64-bit hash to 32 bits (Objects/hamt.c, hamt_hash). */
static inline int32_t lt_hamt_hash(Py_hash_t hash) {
    int32_t x = (int32_t)(hash & 0xffffffffl) ^ (int32_t)(hash >> 32);
    return x == -1 ? -2 : x;
}

/* The HAMT root of the thread's current context, or NULL. */
static inline PyObject *lt_context_root(PyThreadState *ts) {
    PyObject *ctx = ts->context;
    if (ctx == NULL || !Py_IS_TYPE(ctx, &PyContext_Type)) return NULL;
    PyHamtObject *vars = ((PyContext *)ctx)->ctx_vars;
    return vars == NULL ? NULL : (PyObject *)vars->h_root;
}
#endif /* LT_SUPPORTED */

#endif
