/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_H
#define ZDEV_H

/*
 * libzdev: the client library of zdev, a user-space emulator of the Linux
 * kernel's HMM / ZONE_DEVICE device memory, served by the zdevd daemon.
 *
 * Conventions: functions return 0 (or a count) on success and a negative errno
 * on failure; none prints or exits. Every function is thread-safe.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZDEV_VERSION_MAJOR 0
#define ZDEV_VERSION_MINOR 3

/* True when the headers a program was built with are at least major.minor. */
#define ZDEV_CHECK_VERSION(major, minor) \
	(ZDEV_VERSION_MAJOR > (major) || \
	 (ZDEV_VERSION_MAJOR == (major) && ZDEV_VERSION_MINOR >= (minor)))

/* The version of the library the program runs with. */
int zdev_version_major(void);
int zdev_version_minor(void);

/* True when the library the program runs with is at least major.minor. */
bool zdev_check_version(int major, int minor);

struct zdev;			/* one device, opened by this process */

struct zdev_result {
	uint64_t cpages;	/* pages the device copied, moved or saw */
	uint64_t faults;	/* fault rounds the access needed */
};

/* Snapshot bytes, one per page; a type or a level is OR-ed with READ or WRITE. */
#define ZDEV_PROT_ERROR			0xFF
#define ZDEV_PROT_NONE			0x00
#define ZDEV_PROT_READ			0x01
#define ZDEV_PROT_WRITE			0x02
#define ZDEV_PROT_PMD			0x04
#define ZDEV_PROT_PUD			0x08
#define ZDEV_PROT_ZERO			0x10
#define ZDEV_PROT_DEV_PRIVATE_LOCAL	0x20
#define ZDEV_PROT_DEV_PRIVATE_REMOTE	0x30
#define ZDEV_PROT_DEV_COHERENT_LOCAL	0x40
#define ZDEV_PROT_DEV_COHERENT_REMOTE	0x50

/* zdev_set_flags(): the next large device allocation fails (once). */
#define ZDEV_FLAG_FAIL_ALLOC	(1ull << 0)

#define ZDEV_STATS_VERSION	2
struct zdev_stats {		/* fields are only ever added at the end */
	uint32_t version;	/* ZDEV_STATS_VERSION of the library that filled it */
	uint32_t size;		/* bytes filled */
	/* this process on this device */
	uint64_t cpu_faults;	/* CPU touches of device pages served (migrate_to_ram) */
	uint64_t device_faults;	/* fault rounds taken by device accesses */
	uint64_t pages_to_device;
	uint64_t pages_to_system; /* by migration, CPU fault, release, eviction */
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint64_t device_pages;	/* pages of this process now in this device's memory */
	/* the whole device, all clients */
	uint64_t pool_pages_total; /* pages in the chunks the device has now */
	uint64_t pool_pages_used;  /* pages with a non-zero refcount */
	uint64_t pool_limit_pages; /* the device's memory limit */
	/* version 2 */
	uint64_t peak_device_pages; /* the most device_pages ever was */
	/* this process's CPU faults on device pages over every device, not this
	 * one alone: how long their service took */
	uint64_t fault_p50_ns;
	uint64_t fault_p99_ns;
	uint64_t fault_max_ns;
};

int zdev_open(const char *socket_path, unsigned int device, struct zdev **out);
int zdev_close(struct zdev *dev);
int zdev_alloc(struct zdev *dev, size_t len, void **addr);
int zdev_free(struct zdev *dev, void *addr, size_t len);

int zdev_read(struct zdev *dev, const void *addr, size_t npages, void *out,
	      struct zdev_result *res);
int zdev_write(struct zdev *dev, void *addr, size_t npages, const void *in,
	       struct zdev_result *res);
int zdev_migrate_to_device(struct zdev *dev, void *addr, size_t npages, struct zdev_result *res);
int zdev_migrate_to_system(struct zdev *dev, void *addr, size_t npages, struct zdev_result *res);
int zdev_snapshot(struct zdev *dev, const void *addr, size_t npages, uint8_t *prot,
		  struct zdev_result *res);
/*
 * Device-exclusive access (the kernel's make_device_exclusive): the device
 * may do atomics on the pages; any CPU access, from any thread, revokes it
 * and goes on. res->cpages: pages exclusive from addr on, also on failure.
 */
int zdev_make_exclusive(struct zdev *dev, void *addr, size_t npages, struct zdev_result *res);
/* -EPERM while the device still holds a page of the range exclusively, else 0. */
int zdev_check_exclusive(struct zdev *dev, const void *addr, size_t npages);
/* A device atomic add on the aligned 64-bit *addr (made exclusive first if it
 * is not); *old (may be NULL) gets the value before. Atomic with respect to
 * the CPU's __atomic operations on the same counter. */
int zdev_atomic_add(struct zdev *dev, uint64_t *addr, uint64_t delta, uint64_t *old);
int zdev_release(struct zdev *dev);
int zdev_set_flags(struct zdev *dev, uint64_t flags);
int zdev_get_stats(struct zdev *dev, struct zdev_stats *st);

/* What the running kernel and zdevd give this process (zdev_get_features(3)):
 * without privilege, neither. Since 0.2. */
#define ZDEV_FEATURE_KERNEL_FAULTS (1ull << 0) /* system calls reach device pages */
#define ZDEV_FEATURE_FORK_SHARED   (1ull << 1) /* a fork child shares device pages */
int zdev_get_features(struct zdev *dev, uint64_t *features);

/* A device's memory type (zdev_get_memory_type(3)), the values of the
 * kernel test driver's HMM_DMIRROR_MEMORY_DEVICE_*. Since 0.3. */
#define ZDEV_MEMORY_DEVICE_PRIVATE	1 /* the CPU cannot touch it: it faults pages back */
#define ZDEV_MEMORY_DEVICE_COHERENT	2 /* the CPU reads and writes it in place */
int zdev_get_memory_type(struct zdev *dev, unsigned int *type);

#ifdef __cplusplus
}
#endif

#endif
