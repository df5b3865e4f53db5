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

#include "page.h"
#include "zdevd.h"

/* Entry layout */
#define E_PFN_MASK	0xffffffffull
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

struct zmm_counters {
	_Atomic uint64_t cpu_faults;
	_Atomic uint64_t device_faults;
	_Atomic uint64_t pages_to_device;
	_Atomic uint64_t pages_to_system;
	_Atomic uint64_t device_pages;
	_Atomic uint64_t exclusive_grants;
	_Atomic uint64_t exclusive_revokes;
};

struct zmm {
	struct zdevd *d;
	struct zmm *next;		/* zdevd's list, under mms_lock */
	_Atomic int refs;
	pid_t pid;
	uint64_t start_time;		/* the process's, to tell it from a later one with its pid */
	uid_t uid;
	int uffd;
	int pidfd;
	int pagemap_fd;
	atomic_bool dead;		/* the process is gone or its uffd failed */
	void *uffd_watch;		/* event loop only: the watch polling uffd */
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
	/* exclusive_map.c: where the client keeps its exclusive-page map (0:
	 * never said), and /proc/PID/mem for device atomics; under lock */
	uint64_t xmap_dir;
	int mem_fd;

	/* rescue.c: the stores (under lock) and the rescue table */
	struct zstore *store[ZDEV_MAX_DEVICES];
	int rescue_fd;
	struct rescue_entry *rescue;
	size_t rescue_len;

	/* a fork child whose pid is not known yet: zdevd's unclaimed list */
	pid_t parent_pid;
	struct zmm *next_unclaimed;	/* under mms_lock */
};

/* A new mm for pid with its (already proven) uffd; one reference. */
int zmm_create(struct zdevd *d, pid_t pid, uid_t uid, int uffd, struct zmm **out);
void zmm_get(struct zmm *mm);
void zmm_put(struct zmm *mm);
/* Adds mm to zdevd's list; the list holds a reference. */
void zmm_publish(struct zmm *mm);
/* The process is gone: give back every device page, close its uffd. */
void zmm_exit(struct zmm *mm);
struct zmm *zmm_find(struct zdevd *d, pid_t pid);	/* with a reference */
/* The mm of the process pid is now, if zdevd serves it already (a process
 * that closed every handle and opens one again keeps its one uffd). */
struct zmm *zmm_find_live(struct zdevd *d, pid_t pid);

/* Adds the mm's uffd (and pidfd, once its pid is known) to the event loop. */
int zmm_watch(struct zmm *mm);

/* A fork event brought child's uffd; it waits on zdevd's unclaimed list
 * until the child says who it is (the list holds the first reference). */
void zmm_add_unclaimed(struct zmm *parent, struct zmm *child);
/* Whether a fork child of parent_pid waits to be claimed (the loop is given
 * a moment to handle the fork event). */
bool zmm_fork_pending(struct zdevd *d, pid_t parent_pid);
/* The child pid, forked by parent_pid, mapped its proof page at proof_addr:
 * the unclaimed child whose uffd serves pid's memory (proof_check()), now
 * pid's, with a reference; NULL if none is. */
struct zmm *zmm_claim_fork(struct zdevd *d, pid_t pid, pid_t parent_pid, uint64_t proof_addr);
/* Shutdown: frees the children never claimed. */
void zmm_drop_unclaimed(struct zdevd *d);

/* Waits until the loop has handled every uffd event it has read for mm. */
void zmm_wait_events(struct zmm *mm);

#endif
