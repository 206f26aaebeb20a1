/*
 * Frame access, per CPython version: the only place that knows the layout of the interpreter's
 * frame records. The stack is read from those records (as tracemalloc does), never through
 * PyThreadState_GetFrame/PyFrame_GetBack: they create frame objects, and the hook can run while
 * the top frame is being built or cleared, where a frame object made for it would dangle.
 * Reading the code object and the last instruction allocates nothing.
 *
 *   3.11, 3.12: tstate->cframe->current_frame; f_code; prev_instr (via _PyInterpreterFrame_LASTI)
 *   3.13:       tstate->current_frame; f_executable (a code object, or None for shim frames);
 *               instr_ptr (via _PyInterpreterFrame_LASTI)
 *   3.12+:      frames owned by the C stack (entry frames, shims) are the interpreter's, skipped.
 */
#ifndef LT_FRAMES_H
#define LT_FRAMES_H

#include "lt_state.h"

#if LT_SUPPORTED
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#define LT_UNDEF_BUILD_CORE 1
#endif
#include <internal/pycore_frame.h>
#ifdef LT_UNDEF_BUILD_CORE
#undef Py_BUILD_CORE
#undef LT_UNDEF_BUILD_CORE
#endif

typedef _PyInterpreterFrame lt_iframe;

static inline lt_iframe *lt_top_frame(PyThreadState *ts) {
#if PY_VERSION_HEX >= 0x030D0000
    return ts->current_frame;
#else
    return ts->cframe == NULL ? NULL : ts->cframe->current_frame;
#endif
}

/* The frame's code object, or NULL for a frame that is not (yet) a Python function's. */
static inline PyCodeObject *lt_frame_code(lt_iframe *f) {
#if PY_VERSION_HEX >= 0x030C0000
    if (f->owner == FRAME_OWNED_BY_CSTACK) return NULL;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *ex = f->f_executable;
    if (ex == NULL || !PyCode_Check(ex)) return NULL;
#endif
    if (_PyFrame_IsIncomplete(f)) return NULL;
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)f->f_executable;
#else
    return f->f_code;
#endif
}

static inline int lt_frame_line(lt_iframe *f, PyCodeObject *co) {
    return PyCode_Addr2Line(co, _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT));
}

#define LT_TSTATE_UNCHECKED() _lt_tstate_unchecked()
static inline PyThreadState *_lt_tstate_unchecked(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

static inline int lt_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}
#endif /* LT_SUPPORTED */

#endif
