/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_UFFD_DEV_H
#define ZDEV_UFFD_DEV_H

#include <stdbool.h>
#include <stdint.h>

struct vma_list;
struct zmm;

/* Registers the 2 MiB windows around [start, end) of the private anonymous
 * mappings in vmas (which must cover those windows) with mm's uffd. */
int uffd_dev_register(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end);

/* What a migration asks of the client, which only it can do: 0 once done,
 * or -errno. */
struct uffd_dev_client {
	/* MADV_DONTNEED of [addr, addr+len) */
	int (*zap)(void *ctx, uint64_t addr, uint64_t len);
	/* the private file mapping [addr, addr+len) made anonymous, with the
	 * same contents and protection prot */
	int (*anonymize)(void *ctx, uint64_t addr, uint64_t len, unsigned int prot);
	/* a new store of the client's on dev (rescue.c), before any page of
	 * the client goes there */
	int (*give_store)(void *ctx, unsigned int dev, int fd, uint64_t id);
};

/* Session side */
int uffd_dev_migrate_to_device(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			       const struct uffd_dev_client *client, void *ctx, uint64_t *cpages);
int uffd_dev_migrate_to_system(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			       uint64_t *cpages);
/* The same with mm->lock held and the entry looked up. */
int uffd_dev_bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t entry);
/* Maps the zero page where nothing is mapped in [addr, addr + npages pages)
 * of registered memory (device-private pages aside): the device's fault on
 * never-touched or zapped pages, done before zdevd itself reads or writes
 * them, which would otherwise wait on its own event loop (process_vm_*) or
 * fail (/proc/PID/mem cannot wait for a uffd). */
void uffd_dev_fill_holes(struct zmm *mm, uint64_t addr, uint64_t npages);

/* Every page of device dev (or of all devices, dev < 0) back to system memory. */
int uffd_dev_evict(struct zmm *mm, int dev, uint64_t *moved);
/* The process is gone: its device pages are freed without copying. */
void uffd_dev_forget_all(struct zmm *mm);

/* Event loop side */
int uffd_dev_fault(struct zmm *mm, uint64_t addr, uint64_t flags);
void uffd_dev_on_remove(struct zmm *mm, uint64_t start, uint64_t end, bool unmap);
void uffd_dev_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len);
int uffd_dev_on_fork(struct zmm *parent, struct zmm *child);

#endif
