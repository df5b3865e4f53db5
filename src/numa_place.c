/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "numa_place.h"

/*
 * libnuma reports errors through these weak hooks and, by default, prints them
 * or exits. Route them into our log and keep failures as return values.
 */
void numa_error(char *where)
{
	log_dbg("libnuma: %s: %m", where);
}

void numa_warn(int num, char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_dbg("libnuma warning %d: %s", num, msg);
}

static int numa_usable(void)
{
	/* relaxed: every thread computes the same answer; racing first calls
	 * only repeat the probe. */
	static _Atomic int usable = -2;
	int v = atomic_load_explicit(&usable, memory_order_relaxed);

	if (v == -2) {
		numa_exit_on_error = 0;
		v = numa_available() >= 0;
		atomic_store_explicit(&usable, v, memory_order_relaxed);
	}
	return v;
}

int numa_place_nodes(void)
{
	return numa_usable() ? numa_max_node() + 1 : 1;
}

int numa_place_resolve(int node)
{
	int cpu;

	if (node == ZDEV_NODE_LOCAL) {
		if (!numa_usable())
			return 0;
		cpu = sched_getcpu();
		node = cpu < 0 ? 0 : numa_node_of_cpu(cpu);
		return node < 0 ? 0 : node;
	}
	if (node < 0 || node >= numa_place_nodes())
		return -EINVAL;
	return node;
}

int numa_place_bind(void *addr, size_t len, int node)
{
	unsigned long mask[4] = { 0 };
	const unsigned long bits = 8 * sizeof(mask[0]);

	if (!numa_usable())
		return 0;
	if (node < 0 || (unsigned long)node >= bits * 4)
		return -EINVAL;
	mask[node / bits] = 1ul << (node % bits);
	/* maxnode counts bits and the kernel reads one less than it is given. */
	if (mbind(addr, len, MPOL_BIND, mask, bits * 4 + 1, 0))
		return -errno;
	return 0;
}

int numa_place_node_of(const void *addr)
{
	int node = -1;

	if (!numa_usable())
		return 0;
	if (get_mempolicy(&node, NULL, 0, (void *)addr, MPOL_F_NODE | MPOL_F_ADDR))
		return -errno;
	return node;
}

int numa_place_move(pid_t pid, void *const *addrs, size_t n, int node)
{
	int *nodes, *status, ret = 0;

	if (numa_place_nodes() == 1 || !n)
		return 0;
	node = numa_place_resolve(node);
	if (node < 0)
		return node;
	nodes = malloc(n * sizeof(*nodes));
	status = malloc(n * sizeof(*status));
	if (!nodes || !status) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++)
		nodes[i] = node;
	/* Per-page failures land in status: those pages stay where they are. */
	if (numa_move_pages(pid, n, (void **)addrs, nodes, status, MPOL_MF_MOVE))
		ret = -errno;
out_free:
	free(nodes);
	free(status);
	return ret;
}
