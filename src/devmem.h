/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_DEVMEM_H
#define ZDEV_DEVMEM_H

#include <stddef.h>

/*
 * Device memory of one chunk: a memfd of len bytes mapped shared at addr (a
 * part of a reservation), its pages placed on node as they are faulted in.
 * The memfd is what a client may later hold to survive the daemon.
 * Returns the memfd or -errno.
 */
int devmem_map(void *addr, size_t len, int node, const char *name);

/* Gives the chunk's memory back: the hole stays reserved, the memfd is closed. */
void devmem_unmap(void *addr, size_t len, int memfd);

#endif
