/* The live table: sampled block address -> what it was allocated under (hook path).
 * Open addressing with linear probing and backward-shift deletion (no tombstones); a 64 Ki
 * counting filter over address hashes lets free() of an untracked block, nearly all of them,
 * cost one byte read. Full -> counted in `dropped`, never silently lost. */
#include "lt_state.h"

void lt_live_insert(lt_state *st, uintptr_t p, size_t size, double weight, uint32_t stack_id,
                    uint64_t thi, uint64_t tlo, uint64_t span) {
    uint64_t h = lt_mix(p);
    size_t i = (size_t)(h >> st->live_shift) & st->live_mask;
    lt_live *t = st->live;
    while (t[i].ptr != 0) {
        if (t[i].ptr == p) { /* a stale entry for a reused address: replace it */
            st->live_bytes -= (double)t[i].size * t[i].weight;
            break;
        }
        i = (i + 1) & st->live_mask;
    }
    if (t[i].ptr == 0) {
        if (st->live_count >= st->live_max) {
            st->dropped++;
            return;
        }
        st->live_count++;
        uint8_t *c = &st->filter[lt_filter_idx(h)];
        if (*c != 255) (*c)++;
    }
    t[i].ptr = p;
    t[i].size = size;
    t[i].weight = weight;
    t[i].stack_id = stack_id;
    t[i].trace_hi = thi;
    t[i].trace_lo = tlo;
    t[i].span = span;
    st->live_bytes += (double)size * weight;
}

/* Kept out of line so the free hook stays a few instructions with no frame. */
__attribute__((noinline)) void lt_untrack_slow(lt_state *st, uintptr_t p, uint64_t h, uint8_t *c) {
    lt_live *t = st->live;
    size_t i = (size_t)(h >> st->live_shift) & st->live_mask;
    while (t[i].ptr != p) {
        if (t[i].ptr == 0) return;
        i = (i + 1) & st->live_mask;
    }
    st->live_bytes -= (double)t[i].size * t[i].weight;
    st->live_count--;
    if (st->live_count == 0) st->live_bytes = 0.0; /* no float drift once empty */
    if (*c != 255) (*c)--; /* 255 is sticky: it may under-count, never yield a false "absent" */
    size_t j = i;
    for (;;) {
        j = (j + 1) & st->live_mask;
        if (t[j].ptr == 0) break;
        size_t home = (size_t)(lt_mix(t[j].ptr) >> st->live_shift) & st->live_mask;
        /* move j into the hole i if its home is not cyclically within (i, j] */
        int in_range = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            t[i] = t[j];
            i = j;
        }
    }
    t[i].ptr = 0;
}
