/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_MIGRATE_H
#define ZDEV_MIGRATE_H

/*
 * Migration between system memory and a device (migrate.c to the device,
 * migrate_back.c back), with the results of the kernel's test driver: see
 * docs/errors.md.
 */

#include <stdint.h>

struct zmm;

/* What a migration asks of the client, which only it can do: 0 once done,
 * or -errno. */
struct migrate_client {
	/* MADV_DONTNEED of [addr, addr+len) */
	int (*zap)(void *ctx, uint64_t addr, uint64_t len);
	/* the private file mapping [addr, addr+len) made anonymous, with the
	 * same contents and protection prot */
	int (*anonymize)(void *ctx, uint64_t addr, uint64_t len, unsigned int prot);
	/* a new store of the client's on dev (store.c), before any page of
	 * the client goes there */
	int (*give_store)(void *ctx, unsigned int dev, int fd, uint64_t id);
};

/*
 * Moves [addr, addr + npages pages) to device dev (the range is checked by
 * the caller: aligned, npages > 0). *cpages: the pages of the range that are
 * device-private on dev when it returns. Returns 0 when that is every page;
 * -EINVAL if a page is unmapped or its mapping is not readable (nothing
 * moved); -ENOENT when some page could not end on dev (shared or file
 * memory, another device's page, a page a concurrent migration owns, the
 * pool or the client's limit ran out after some moved); -ENOMEM when the
 * pool had room for none of them; -EDQUOT past the client's limit on
 * registered memory; another -errno when the client or the kernel failed
 * us (nothing moved then).
 */
int migrate_to_device(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		      const struct migrate_client *client, void *ctx, uint64_t *cpages);

/*
 * Device-exclusive access held unmapped (EXCLUSIVE_HELD): the pages move as
 * migrate_to_device moves them and end as E_HELD_EXCL, counted as exclusive
 * grants; a CPU access brings a page back as it does a device-private one,
 * and counts as a revocation. Unlike the client's PROT_NONE hold, the
 * kernel's own accesses to the page (a read(2) into it) revoke it too, as
 * they do in the kernel. Returns as migrate_to_device.
 */
int migrate_to_device_held_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr,
				     uint64_t npages, const struct migrate_client *client,
				     void *ctx, uint64_t *cpages);

/*
 * migrate_to_device for a coherent device (migrate_coherent.c): the pages
 * stay in the process, owned by the device. Returns as migrate_to_device.
 */
int migrate_to_coherent(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			const struct migrate_client *client, void *ctx, uint64_t *cpages);

/*
 * The private file mappings of the range that hold copy-on-write pages
 * become anonymous through client->anonymize, as for any migration; *leave
 * (npages bytes, to free; NULL when the range has no private file mapping)
 * marks the file's own pages, which the kernel leaves in system memory.
 * 0 or -errno.
 */
int migrate_leave_file_pages(struct zmm *mm, uint64_t addr, uint64_t npages,
			     const struct migrate_client *client, void *ctx, uint8_t **leave);

/*
 * Before a fork that zdevd gets the event of: every coherent page of the
 * process is write-protected, as the kernel's fork write-protects the
 * parent's pages, so that each process's first write after the fork (the
 * kernel's copy-on-write) reaches zdevd. *npages: how many. 0 or -errno.
 */
int migrate_coherent_prepare_fork(struct zmm *mm, uint64_t *npages);

/* Brings dev's pages of [addr, addr + npages pages) back to system memory:
 * *cpages = the pages brought back. 0, -ENOMEM, or the -errno of a copy that
 * failed (the pages it did not reach stay on the device). */
int migrate_to_system(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		      uint64_t *cpages);
/* Every page of device dev (of all devices, dev < 0) back to system memory,
 * as migrate_to_system; *moved (if not NULL): how many. */
int migrate_evict(struct zmm *mm, int dev, uint64_t *moved);

#endif
