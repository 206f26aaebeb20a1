/* Table lifetime and stack compaction. Called from module functions with the GIL held, never
 * from a hook, so dropping code-object references here is allowed. */
#include <stdlib.h>
#include <string.h>

#include "lt_state.h"

static size_t lt_pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int lt_alloc_tables(lt_state *st, size_t max_tracked, size_t max_stacks) {
    size_t live_cap = lt_pow2_at_least(max_tracked * 2);
    size_t agg_cap = lt_pow2_at_least(max_tracked * 2);
    size_t idx_cap = lt_pow2_at_least(max_stacks * 2);
    /* libc, not PyMem: the tables must never re-enter the hooks */
    lt_live *live = (lt_live *)calloc(live_cap, sizeof(lt_live));
    lt_agg *agg = (lt_agg *)calloc(agg_cap, sizeof(lt_agg));
    uint8_t *filter = (uint8_t *)calloc(LT_FILTER_SIZE, 1);
    lt_stack *stacks = (lt_stack *)calloc(max_stacks, sizeof(lt_stack));
    uint32_t *index = (uint32_t *)calloc(idx_cap, sizeof(uint32_t));
    uint32_t *freel = (uint32_t *)calloc(max_stacks, sizeof(uint32_t));
    if (!live || !agg || !filter || !stacks || !index || !freel) {
        free(live);
        free(agg);
        free(filter);
        free(stacks);
        free(index);
        free(freel);
        return -1;
    }
    int bits = 0;
    while (((size_t)1 << bits) < live_cap) bits++;
    st->live = live;
    st->live_mask = live_cap - 1;
    st->live_shift = 64 - bits;
    st->live_max = max_tracked;
    st->live_count = 0;
    st->live_bytes = 0.0;
    __atomic_store_n(&st->filter, filter, __ATOMIC_RELAXED); /* read without the GIL: lt_untrack */
    st->agg = agg;
    st->agg_mask = agg_cap - 1;
    st->agg_max = max_tracked;
    st->agg_count = 0;
    st->agg_over_objects = st->agg_over_bytes = 0.0;
    st->agg_overflowed = 0;
    st->stacks = stacks;
    st->stack_max = (uint32_t)max_stacks;
    st->stack_index = index;
    st->stack_index_mask = idx_cap - 1;
    st->stack_free = freel;
    st->stack_free_n = 0;
    st->stack_hwm = 1; /* id 0 = the overflow stack, never interned */
    st->stack_used = 0;
    st->stacks_overflowed = 0;
    st->stack_epoch++;
    st->dropped = st->sampled = st->unattributed = 0;
    return 0;
}

/* others_running: another interpreter exists, whose threads may be inside a free hook reading
 * the live table and filter right now (they pass through, but read first). */
void lt_free_tables(lt_state *st, int others_running) {
    /* Detach first so hooks still in the chain see an empty sampler. */
    lt_live *live = st->live;
    lt_agg *agg = st->agg;
    uint8_t *filter = st->filter;
    lt_stack *stacks = st->stacks;
    uint32_t *index = st->stack_index, *freel = st->stack_free;
    uint32_t hwm = st->stack_hwm;
    st->live_count = 0;
    st->live = NULL;
    st->agg = NULL;
    __atomic_store_n(&st->filter, (uint8_t *)NULL, __ATOMIC_RELAXED);
    st->stacks = NULL;
    st->stack_index = NULL;
    st->stack_free = NULL;
    st->agg_count = st->live_max = st->agg_max = 0;
    st->stack_used = st->stack_hwm = st->stack_max = st->stack_free_n = 0;
    st->live_bytes = 0.0;
    PyObject *var = st->span_var;
    st->span_var = NULL;
    if (others_running) {
        /* keep the newest pair; an older one has had a whole sampling run to drain */
        free(st->retired_live);
        free(st->retired_filter);
        st->retired_live = live;
        st->retired_filter = filter;
    } else {
        free(live);
        free(filter);
        free(st->retired_live);
        free(st->retired_filter);
        st->retired_live = NULL;
        st->retired_filter = NULL;
    }
    free(agg);
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
    Py_XDECREF(var);
}

/* Drop stacks that no live block and no alloc aggregate references. Ids of survivors stay
 * stable; freed ids are reused, so the Python side resolves the ids it holds before calling
 * this and clears its id -> frames cache when stack_epoch changes. */
void lt_compact_stacks(lt_state *st) {
    if (st->stacks == NULL) return;
    for (uint32_t i = 1; i < st->stack_hwm; i++) st->stacks[i].in_use = 0;
    for (size_t i = 0; i <= st->live_mask && st->live_count; i++)
        if (st->live[i].ptr != 0) st->stacks[st->live[i].stack_id].in_use = 1;
    for (size_t i = 0; i <= st->agg_mask && st->agg_count; i++)
        if (st->agg[i].used) st->stacks[st->agg[i].stack_id].in_use = 1;
    memset(st->stack_index, 0, sizeof(uint32_t) * (st->stack_index_mask + 1));
    st->stack_free_n = 0;
    st->stack_used = 0;
    PyObject **dead = NULL;
    size_t ndead = 0, cap = 0;
    for (uint32_t i = st->stack_hwm; i-- > 1;) {
        lt_stack *s = &st->stacks[i];
        if (s->frames != NULL && s->in_use) {
            lt_index_put(st, i);
            st->stack_used++;
            continue;
        }
        if (s->frames != NULL) {
            /* collect references; release them once the tables are consistent again */
            if (ndead + s->nframes > cap) {
                size_t ncap = (cap + s->nframes) * 2;
                PyObject **nd = (PyObject **)realloc(dead, ncap * sizeof(PyObject *));
                if (nd == NULL) { /* keep it rather than leak: mark used */
                    lt_index_put(st, i);
                    st->stack_used++;
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
        st->stack_free[st->stack_free_n++] = i;
    }
    st->stack_epoch++;
    for (size_t k = 0; k < ndead; k++) Py_DECREF(dead[k]);
    free(dead);
}
