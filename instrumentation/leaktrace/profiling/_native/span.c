/* Which span is current: leaktrace's span variable looked up in the context's HAMT (hook path). */
#include <string.h>

#include "lt_context.h"

#if LT_SUPPORTED
typedef enum { LT_NODE_OTHER, LT_NODE_BITMAP, LT_NODE_ARRAY, LT_NODE_COLLISION } lt_node_kind;

/* The node types are not exported by libpython, so they are recognised by their tp_name the
 * first time and by address after that. */
static lt_node_kind lt_node_kind_of(lt_state *st, PyTypeObject *t) {
    if (t == st->hamt_bitmap) return LT_NODE_BITMAP;
    if (t == st->hamt_array) return LT_NODE_ARRAY;
    if (t == st->hamt_collision) return LT_NODE_COLLISION;
    const char *name = t->tp_name;
    if (name == NULL) return LT_NODE_OTHER;
    if (st->hamt_bitmap == NULL && strcmp(name, "hamt_bitmap_node") == 0) {
        st->hamt_bitmap = t;
        return LT_NODE_BITMAP;
    }
    if (st->hamt_array == NULL && strcmp(name, "hamt_array_node") == 0) {
        st->hamt_array = t;
        return LT_NODE_ARRAY;
    }
    if (st->hamt_collision == NULL && strcmp(name, "hamt_collision_node") == 0) {
        st->hamt_collision = t;
        return LT_NODE_COLLISION;
    }
    return LT_NODE_OTHER;
}

/* Borrowed value of key in the HAMT under node, or NULL. Mirrors hamt_node_find without its
 * rich comparison: see lt_context.h for why identity is equality here. */
static PyObject *lt_hamt_find(lt_state *st, PyObject *node, int32_t hash, PyObject *key) {
    uint32_t shift = 0;
    for (int depth = 0; node != NULL && depth < LT_HAMT_MAX_DEPTH; depth++) {
        switch (lt_node_kind_of(st, Py_TYPE(node))) {
        case LT_NODE_BITMAP: {
            lt_hamt_bitmap *b = (lt_hamt_bitmap *)node;
            uint32_t bit = 1u << (((uint32_t)hash >> shift) & 0x1f);
            if ((b->b_bitmap & bit) == 0) return NULL;
            Py_ssize_t idx = (Py_ssize_t)__builtin_popcount(b->b_bitmap & (bit - 1));
            if (2 * idx + 1 >= Py_SIZE(b)) return NULL;
            PyObject *k = b->b_array[2 * idx], *v = b->b_array[2 * idx + 1];
            if (k != NULL) return k == key ? v : NULL;
            node = v; /* several keys share this hash prefix: one level down */
            break;
        }
        case LT_NODE_ARRAY:
            node = ((lt_hamt_array *)node)->a_array[((uint32_t)hash >> shift) & 0x1f];
            break;
        case LT_NODE_COLLISION: {
            lt_hamt_collision *c = (lt_hamt_collision *)node;
            for (Py_ssize_t i = 0; i + 1 < Py_SIZE(c); i += 2)
                if (c->c_array[i] == key) return c->c_array[i + 1];
            return NULL;
        }
        default:
            return NULL;
        }
        shift += 5;
    }
    return NULL;
}

void lt_current_span(lt_state *st, PyThreadState *ts, uint64_t *thi, uint64_t *tlo, uint64_t *span) {
    *thi = *tlo = *span = 0;
    if (st->span_var == NULL) return;
    PyObject *root = lt_context_root(ts);
    if (root == NULL) return;
    PyObject *v = lt_hamt_find(st, root, st->span_var_hash, st->span_var);
    if (v == NULL || !Py_IS_TYPE(v, &lt_SpanRef_Type)) return;
    lt_spanref *r = (lt_spanref *)v;
    *thi = r->trace_hi;
    *tlo = r->trace_lo;
    *span = r->span;
}
#else
void lt_current_span(lt_state *st, PyThreadState *ts, uint64_t *thi, uint64_t *tlo, uint64_t *span) {
    *thi = *tlo = *span = 0;
}
#endif
