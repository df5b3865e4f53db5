/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZMM_H
#define ZDEV_ZMM_H

/*
 * One client process (its mm): the uffd zdevd serves it through, and one page
 * table that holds, per virtual page, both the CPU side (is the page
 * device-private, on which device, which device page) and every device's
 * mirror entry for it (the dmirror xarray of test_hmm, one bit pair a device).
 * Like the kernel's mirror, an entry holds no reference of its own; the
 * device-private part holds the process's reference on the device page.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "device.h"
#include "lathist.h"
#include "page.h"
#include "ptable.h"
#include "store.h"
#include "zdevd_limits.h"

/* Entry layout */
#define E_PFN_MASK	0x7fffffffull	/* a pool numbers at most 2^31 pages (ZDEVD_MEMORY_MAX) */
/*
 * The page is on a coherent device (device e_dev, pool page e_pfn): the data
 * stays in the client's own page, which the device owns; the pool page holds
 * the process's reference and stands for the device memory it occupies (see
 * migrate_coherent.c). Never with E_DEVPRIV. The bit is the pfn field's top
 * one, which no pool page number reaches.
 */
#define E_COHERENT	(1ull << 31)
#define E_DEV_SHIFT	32
#define E_DEV_MASK	(0xfull << E_DEV_SHIFT)
#define E_DEVPRIV	(1ull << 36)	/* data only in device memory */
#define E_BUSY		(1ull << 37)	/* a migration owns the page right now */
/* One page of a device THP: every page of its aligned 2 MiB window is
 * device-private on the same device, in one pool block, in order. The mm
 * holds a reference on each page; the block goes back to the pool whole
 * when the window does, and a partial unmap or move splits it (the bit is
 * cleared on the whole window). */
#define E_HUGE		(1ull << 38)
#define E_MIRROR(dev)	(1ull << (40 + (dev)))	/* device `dev` maps it */
#define E_MIRROR_W(dev)	(1ull << (48 + (dev)))	/* ... writable */
#define E_MIRROR_ALL	(0xffffull << 40)
/* (Bit 38 is kept for E_HUGE.) Device `dev` holds an atomic (device-exclusive) mapping:
 * the client's CPU access is revoked, see exclusive_map.c. */
#define E_ATOMIC(dev)	(1ull << (56 + (dev)))
#define E_ATOMIC_ALL	(0xffull << 56)
/* The page was exclusive, and so PROT_NONE in the client, when mremap moved
 * it: the client's map does not know it at its new address. The pfn bits
 * hold the protection to give back (see exclusive_map.c). */
#define E_EXCL		(1ull << 39)
/* E_EXCL on a device-private page means something else: device-exclusive
 * access held with the page unmapped, its data in device memory until a CPU
 * access (the kernel's own, a read(2) into it, too) revokes it. */
#define E_HELD_EXCL	(E_DEVPRIV | E_EXCL)

/* Every device has its place in an entry. */
_Static_assert((uint64_t)(ZDEV_MAX_DEVICES - 1) << E_DEV_SHIFT <= E_DEV_MASK,
	       "the entry's device field holds every device index");
_Static_assert(ZDEVD_MEMORY_MAX / PG_SIZE - 1 <= E_PFN_MASK,
	       "the entry's pfn field holds every page of the largest device, E_COHERENT aside");
_Static_assert(ZDEV_MAX_DEVICES <= 8, "an entry has a mirror, writable and atomic bit per device");

static inline unsigned int e_dev(uint64_t e)
{
	return (unsigned int)((e & E_DEV_MASK) >> E_DEV_SHIFT);
}

static inline uint32_t e_pfn(uint64_t e)
{
	return (uint32_t)(e & E_PFN_MASK);
}

static inline uint64_t e_devpriv(unsigned int dev, uint32_t pfn)
{
	return E_DEVPRIV | ((uint64_t)dev << E_DEV_SHIFT) | pfn;
}

static inline uint64_t e_coherent(unsigned int dev, uint32_t pfn)
{
	return E_COHERENT | ((uint64_t)dev << E_DEV_SHIFT) | pfn;
}

/* The entry holds a page of a device, of either type. */
#define E_ON_DEVICE	(E_DEVPRIV | E_COHERENT)

struct zmm_counters {
	_Atomic uint64_t cpu_faults;
	_Atomic uint64_t device_faults;
	_Atomic uint64_t pages_to_device;
	_Atomic uint64_t pages_to_system;
	_Atomic uint64_t device_pages;
	_Atomic uint64_t peak_device_pages;	/* the most device_pages ever was */
	_Atomic uint64_t exclusive_grants;
	_Atomic uint64_t exclusive_revokes;
};

struct zmm {
	struct devset *ds;
	struct zmm *next;		/* zdevd's list (src/zdevd/clients.c) */
	_Atomic int refs;
	pid_t pid;
	uint64_t start_time;		/* the process's, to tell it from a later one with its pid */
	uid_t uid;
	int uffd;
	int pidfd;
	int pagemap_fd;
	atomic_bool dead;		/* the process is gone or its uffd failed */
	void *uffd_watch;		/* zdevd's event loop only: the watch polling uffd */
	void *pidfd_watch;		/* and the one polling pidfd */
	atomic_bool registered;		/* some memory is registered with the uffd */
	/*
	 * Set by the loop before it reads the uffd, cleared once what it read
	 * is handled. The kernel lets a client go on from munmap, madvise or
	 * mremap as soon as the event is read, not handled; a request the
	 * client sends after that waits for this to clear, so it never sees
	 * the address space as it was before its own call.
	 */
	atomic_bool reading_events;

	pthread_mutex_t lock;		/* pt, flags, handles */
	struct ptable pt;
	uint64_t open_devices;		/* bitmask: handles[dev] > 0 */
	unsigned int handles[ZDEV_MAX_DEVICES];	/* device handles open */
	/* Bytes registered with the uffd, an upper bound: registering a range
	 * again counts it again, and munmap is not subtracted. Recounted from
	 * the kernel's view when it would pass the limit. Session only. */
	uint64_t registered_bytes;
	uint64_t flags[ZDEV_MAX_DEVICES];
	struct zmm_counters cnt[ZDEV_MAX_DEVICES];
	/* The service time of its CPU faults on device pages, every device's
	 * (their cpu_faults), timed as the daemon's histogram times them. */
	struct lathist fault_lat;
	/* exclusive_map.c: where the client keeps its exclusive-page map (0:
	 * never said), and /proc/PID/mem for device atomics; under lock */
	uint64_t xmap_dir;
	int mem_fd;

	struct stores stores;		/* store.c: under lock */

	/* a fork child whose pid is not known yet: zdevd's unclaimed list */
	pid_t parent_pid;
	struct zmm *next_unclaimed;	/* under mms_lock */
};

/* A new mm for pid (0: not known yet, a fork child) with its (already
 * proven) uffd, holding one reference: 0, or -errno (pagemap or the rescue
 * table could not be had). */
int zmm_create(struct devset *ds, pid_t pid, uid_t uid, int uffd, struct zmm **out);
void zmm_get(struct zmm *mm);
/* The last reference gives back every device page and closes the uffd. */
void zmm_put(struct zmm *mm);
/* A fork child's pid is known now: 0, or -errno when its pagemap cannot be
 * opened (the process is gone). */
int zmm_set_pid(struct zmm *mm, pid_t pid);
/* Whether mm->pid names a later process now than the one mm serves. */
bool zmm_pid_reused(struct zmm *mm);
/* Waits until the loop has handled every uffd event it has read for mm. */
void zmm_wait_events(struct zmm *mm);

/* zmm_pages.c: the device pages the table holds. Every vpn is a page number,
 * every range [first, end) of them; _locked: the caller holds mm->lock. */

/* n more pages of mm's are in device dev's memory: device_pages, and its
 * peak (no lock needed). */
void zmm_add_device_pages(struct zmm *mm, unsigned int dev, uint64_t n);
/* The device page entry e holds. */
struct refpool_page *zmm_entry_page(struct zmm *mm, uint64_t e);
/* Whether a fork shares the device page of entry e (private or coherent):
 * its count is above the one reference each process holds. */
bool zmm_entry_shared(struct zmm *mm, uint64_t e);
/* The device THP of window w is no longer one: its pages stay where they
 * are, each on its own, and the pool's block splits as they are put alone. */
void zmm_split_window_locked(struct zmm *mm, uint64_t w);
/* A change to [first, end) that cuts through a device THP splits it, as the
 * kernel splits a PMD it unmaps or moves in part. */
void zmm_split_edges_locked(struct zmm *mm, uint64_t first, uint64_t end);
/* Whether window w holds one intact device THP; *first: its first entry. */
bool zmm_thp_intact_locked(struct zmm *mm, uint64_t w, uint64_t *first);
/* n device-private pages from vpn, whose first entry is e, are back in system
 * memory: their entries and rescue-table entries go, and the pages go back
 * to the pool (a whole device THP as one block), counted as pages_to_system. */
void zmm_forget_run_locked(struct zmm *mm, uint64_t vpn, uint64_t n, uint64_t e);
/* The coherent page of entry e leaves its device (the data stays where it
 * is): the pool page goes back, device_pages drops, and, when to_system (a
 * migration back, a release), it counts as pages_to_system. The caller
 * erases or rewrites the entry. */
void zmm_uncharge_coherent_locked(struct zmm *mm, uint64_t e, bool to_system);
/* The process let go of [first, end): device pages there are freed, every
 * entry erased. Pages a migration owns (E_BUSY) stay, unless unmap. */
void zmm_drop_range(struct zmm *mm, uint64_t first, uint64_t end, bool unmap);
/* The same for the whole address space. */
void zmm_drop_all(struct zmm *mm);

#endif
