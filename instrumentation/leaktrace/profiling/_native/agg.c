/* Alloc aggregation: (stack, trace, span) -> weighted objects/bytes since the last reset (hook
 * path). Full -> an overflow bucket, reported as its own synthetic frame. */
#include "lt_state.h"

void lt_agg_add(lt_state *st, uint32_t stack_id, uint64_t thi, uint64_t tlo, uint64_t span,
                double objects, double bytes) {
    uint64_t h = ((uint64_t)stack_id * 0x9E3779B97F4A7C15ULL) ^ (thi * 0xC2B2AE3D27D4EB4FULL) ^
                 (tlo * 0x165667B19E3779F9ULL) ^ (span * 0x27D4EB2F165667C5ULL);
    h ^= h >> 29;
    size_t i = (size_t)h & st->agg_mask;
    while (st->agg[i].used) {
        lt_agg *a = &st->agg[i];
        if (a->stack_id == stack_id && a->trace_hi == thi && a->trace_lo == tlo && a->span == span) {
            a->objects += objects;
            a->bytes += bytes;
            return;
        }
        i = (i + 1) & st->agg_mask;
    }
    if (st->agg_count >= st->agg_max) {
        st->agg_overflowed++;
        st->agg_over_objects += objects;
        st->agg_over_bytes += bytes;
        return;
    }
    lt_agg *a = &st->agg[i];
    a->used = 1;
    a->stack_id = stack_id;
    a->trace_hi = thi;
    a->trace_lo = tlo;
    a->span = span;
    a->objects = objects;
    a->bytes = bytes;
    st->agg_count++;
}
