#ifndef SCALABLE_SHOP_CMONGOC_SHIM_H
#define SCALABLE_SHOP_CMONGOC_SHIM_H
#include <mongoc/mongoc.h>
#endif
