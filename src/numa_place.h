/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_NUMA_PLACE_H
#define ZDEV_NUMA_PLACE_H

#include <stddef.h>
#include <sys/types.h>

#define ZDEV_NODE_LOCAL (-1)

/* The number of NUMA nodes memory can be placed on (1 without NUMA support). */
int numa_place_nodes(void);

/*
 * Maps ZDEV_NODE_LOCAL to the node of the calling CPU and checks that any
 * other node exists. Returns the node, or -EINVAL for a node that is not there.
 */
int numa_place_resolve(int node);

/* Binds [addr, addr+len) to node: pages faulted in later come from it. 0 or
 * -errno (0 without NUMA support: there is one node). */
int numa_place_bind(void *addr, size_t len, int node);

/* Moves the n present pages at addrs of process pid (0: this one) to node
 * (ZDEV_NODE_LOCAL: the caller's), as move_pages(2) does; pages that cannot
 * move stay. 0 or -errno (0 at once with one node). */
int numa_place_move(pid_t pid, void *const *addrs, size_t n, int node);

/* The node the page at addr sits on (it must be present), or -errno. */
int numa_place_node_of(const void *addr);

#endif
