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

/// Storage for a reply that libmongoc initialises itself (bson_init marks it static, so
/// bson_destroy frees its data but never the struct): initialised empty here, so destroying it
/// is safe even if libmongoc never touched it, and freed by shop_bson_reply_free.
static inline bson_t *shop_bson_reply_new(void) {
    void *memory = NULL;
    if (posix_memalign(&memory, 128, sizeof(bson_t)) != 0) {
        return NULL;
    }
    bson_init((bson_t *)memory);
    return (bson_t *)memory;
}

static inline void shop_bson_reply_free(bson_t *reply) {
    bson_destroy(reply);
    free(reply);
}

#endif
