/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_OWN_H
#define ZDEV_LIB_OWN_H

/*
 * Memory libzdev keeps for itself: its handles, its connection, the stores
 * it holds. It is mapped apart from the program's heap and named
 * "zdev-lib" (where the kernel names anonymous memory), so that a policy
 * moving the program's memory (the preload shim's) never moves or revokes
 * what libzdev itself must touch while it serves that very migration.
 */

#include <stddef.h>

/* Zeroed memory of len bytes, or NULL. */
void *own_alloc(size_t len);
/* len: what own_alloc was asked for. */
void own_free(void *p, size_t len);
/* The same memory, len bytes of it, as new_len bytes (the rest zeroed), or
 * NULL with p untouched. */
void *own_realloc(void *p, size_t len, size_t new_len);

#endif
