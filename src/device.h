/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_DEVICE_H
#define ZDEV_DEVICE_H

/*
 * The emulated devices, and what their operations share across clients:
 * each device's pool and node, the limits every client has on each device,
 * the uffd features every client uffd was made with, and each device's
 * totals over all clients. zdevd fills it at start (devset.h) and every client's zmm
 * points at it.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devmodel.h"
#include "proto.h"
#include "refpool.h"
#include "zdev.h"

/* The wire and the API carry the pool's memory type ids as they are. */
_Static_assert(REFPOOL_MEMTYPE_PRIVATE == ZDEV_MEMORY_DEVICE_PRIVATE &&
		       REFPOOL_MEMTYPE_COHERENT == ZDEV_MEMORY_DEVICE_COHERENT,
	       "memory type ids");

struct store;
struct devset;

/* Over every client since the start. */
struct device_totals {
	_Atomic uint64_t cpu_faults;
	_Atomic uint64_t device_faults;
	_Atomic uint64_t pages_to_device;
	_Atomic uint64_t pages_to_system;
	_Atomic uint64_t exclusive_grants;
	_Atomic uint64_t exclusive_revokes;
};

struct device {
	struct devset *ds;
	unsigned int index;
	int node;
	/* PRIVATE: its pages hold the data, the client's are empty; COHERENT:
	 * the client's own page holds the data and the pool page stands for
	 * the device memory it occupies (migrate_coherent.c). */
	enum refpool_memtype_id memtype;
	struct refpool *pool;
	struct device_totals totals;
	/* store.c: the pfns the device's memory has, and the id of the store
	 * last mapped under each block (0: none), and whether some page of
	 * the block may have no memory yet since then */
	uint64_t dev_pages;
	uint64_t nblocks;
	_Atomic uint64_t *block_store;
	_Atomic bool *block_unfilled;
	/* stores of the device whose pool owner lives: an unplug waits for
	 * none to be left, the last one's process may not be listed yet */
	_Atomic unsigned int live_stores;
	/* warm.c: the store made ahead for the next new process, the blocks
	 * its memory is mapped and populated under. warm_lock guards them,
	 * and orders the mapping of a block against its adoption (store.c). */
	pthread_mutex_t warm_lock;
	struct store *warm_store;
	_Atomic uint64_t warm_blocks;
	/* migrations on the device now, and when one last ended or a block
	 * was last adopted (CLOCK_MONOTONIC): warming waits for quiet */
	_Atomic unsigned int migrating;
	_Atomic uint64_t last_busy_ns;
	/* devset.c: every use of the pool outside a page the caller holds
	 * (a request on the device, warming, status) holds plug_lock for
	 * reading, and an unplug or a plug for writing, so no one holds the
	 * pool's pointer when it goes. unplugged: no pool until a plug. */
	pthread_rwlock_t plug_lock;
	bool unplugged;
	/* what its link and its faults cost (devmodel.h); its cfg is set
	 * once at start */
	struct devmodel model;
};

struct devset_config {
	unsigned int ndevices;		/* 1 to ZDEV_MAX_DEVICES */
	size_t memory;			/* each device's limit, a multiple of 2 MiB */
	size_t chunk;			/* the pool's chunk size, a multiple of 2 MiB */
	bool pool_debug;		/* REFPOOL_DEBUG on every pool */
	/* each private device's memory kept mapped and populated for the
	 * next new process (warm.c), at most its memory */
	size_t warm;
	/* each device's memory type (0: PRIVATE) */
	enum refpool_memtype_id memtype[ZDEV_MAX_DEVICES];
	/* per client process: device memory on each device, and bytes
	 * registered with its uffd (0: no limit of its own) */
	size_t client_memory;
	size_t client_registered;
	/* each device's cost model (--link, --fault-latency; 0: none) */
	struct devmodel_config model[ZDEV_MAX_DEVICES];
};

struct devset {
	unsigned int ndevices;
	struct devset_config cfg;	/* what a plug makes a device from */
	struct device dev[ZDEV_MAX_DEVICES];
	size_t client_memory;
	size_t client_registered;
	uint64_t uffd_features;		/* every client uffd has these */
	_Atomic uint64_t next_store_id;	/* store.c */
	/* Called when what can be warmed on a device changed (a store went,
	 * the warm store was taken); set while warm.c's thread runs. */
	void (*_Atomic store_changed)(struct device *dev);
	uint64_t started_ns;		/* CLOCK_MONOTONIC when the devices were made */
	/* No thread reads the clients' uffd events any more (zdevd is
	 * shutting down): an ioctl the kernel refuses while events are
	 * pending fails at once, for its caller to read them itself. */
	atomic_bool events_unread;
};

#endif
