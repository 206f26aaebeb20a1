/* The stack table: interned (code object, line) sequences (hook path). A new stack takes a
 * strong reference to each code object, so nothing is copied or resolved on the hot path; a
 * known stack takes none. Full -> stack id 0, reported as a synthetic frame and counted. */
#include <stdlib.h>
#include <string.h>

#include "lt_state.h"

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

void lt_index_put(lt_state *st, uint32_t id) {
    size_t i = (size_t)st->stacks[id].hash & st->stack_index_mask;
    while (st->stack_index[i] != 0) i = (i + 1) & st->stack_index_mask;
    st->stack_index[i] = id + 1;
}

/* f holds borrowed references (the frames being walked own their code objects). */
uint32_t lt_intern_stack(lt_state *st, const lt_frame *f, int n, int truncated) {
    uint64_t h = lt_stack_hash(f, n, truncated);
    size_t i = (size_t)h & st->stack_index_mask;
    uint32_t slot;
    while ((slot = st->stack_index[i]) != 0) {
        lt_stack *s = &st->stacks[slot - 1];
        if (s->hash == h && s->nframes == (uint32_t)n && s->truncated == (uint32_t)truncated &&
            lt_frames_equal(s->frames, f, n))
            return slot - 1;
        i = (i + 1) & st->stack_index_mask;
    }
    uint32_t id;
    if (st->stack_free_n > 0) {
        id = st->stack_free[--st->stack_free_n];
    } else if (st->stack_hwm < st->stack_max) {
        id = st->stack_hwm++;
    } else {
        st->stacks_overflowed++;
        return 0;
    }
    lt_frame *copy = (lt_frame *)malloc(sizeof(lt_frame) * (size_t)(n > 0 ? n : 1));
    if (copy == NULL) {
        st->stack_free[st->stack_free_n++] = id;
        st->stacks_overflowed++;
        return 0;
    }
    for (int k = 0; k < n; k++) {
        copy[k] = f[k];
        Py_INCREF(copy[k].code);
    }
    lt_stack *s = &st->stacks[id];
    s->hash = h;
    s->frames = copy;
    s->nframes = (uint32_t)n;
    s->truncated = (uint32_t)truncated;
    s->in_use = 1;
    st->stack_used++;
    lt_index_put(st, id);
    return id;
}
