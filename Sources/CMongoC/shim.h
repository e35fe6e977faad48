#ifndef SCALABLE_SHOP_CMONGOC_SHIM_H
#define SCALABLE_SHOP_CMONGOC_SHIM_H

#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>

/// bson_iter_t is declared 128-byte aligned, so Swift imports it as an opaque type and cannot
/// size it; these allocate and free one at that alignment.
static inline bson_iter_t *shop_bson_iter_new(void) {
    void *memory = NULL;
    if (posix_memalign(&memory, 128, sizeof(bson_iter_t)) != 0) {
        return NULL;
    }
    memset(memory, 0, sizeof(bson_iter_t));
    return (bson_iter_t *)memory;
}

static inline void shop_bson_iter_free(bson_iter_t *iterator) { free(iterator); }

#endif
