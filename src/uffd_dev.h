/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_UFFD_DEV_H
#define ZDEV_UFFD_DEV_H

/*
 * Device-private pages on the userfaultfd side (uffd_dev.c): registration,
 * the CPU fault service and the uffd events, and the uffd primitives a
 * migration uses. Addresses are page-aligned; vpn are page numbers.
 */

#include <stdbool.h>
#include <stdint.h>

struct vma_list;
struct zmm;

/* A uffd ioctl on mm's uffd, tried again while the kernel refuses it with
 * EAGAIN for pending events: 0 or -errno. in_loop: the caller is the event
 * loop, which cannot wait for itself: -EAGAIN at once, and the fault is
 * retried once the events are read. */
int uffd_dev_ioctl(struct zmm *mm, unsigned long req, void *arg, bool in_loop);

/* Registers the 2 MiB windows around [start, end) of the private anonymous
 * mappings in vmas (which must cover those windows) with mm's uffd, for
 * missing and write-protect faults: 0, -EDQUOT past the client's limit on
 * registered bytes, or the -errno of the ioctl. */
int uffd_dev_register(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end);
/* Write protection on or off for [start, end): 0 or -errno. */
int uffd_dev_write_protect(struct zmm *mm, uint64_t start, uint64_t end, bool on);
/* The same for each run of pages of [addr, addr + npages pages) whose byte
 * in sel is set; a run that fails is left as it was. */
void uffd_dev_protect_runs(struct zmm *mm, uint64_t addr, uint64_t npages, const uint8_t *sel,
			   bool on);
/* Wakes every thread waiting on a fault in [start, end). */
void uffd_dev_wake(struct zmm *mm, uint64_t start, uint64_t end);
/* Whether the memory mm's uffd serves is gone: its process exited or
 * exec'd. For a process zdevd has no pid (so no pidfd) for. */
bool uffd_dev_mm_gone(const struct zmm *mm);

/*
 * The kernel's migrate_to_ram, with mm->lock held: copies the device-private
 * page of entry e at vpn back into the client and frees the device page; a
 * page of an intact device THP brings back its whole window. 0 once the
 * entry is gone (also when the mapping or process went away with the data:
 * -ENOENT/-ESRCH of the copy are taken as done), or the -errno of the copy
 * (-EAGAIN with in_loop: events pending), the entry left as it was.
 */
int uffd_dev_bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop);
/* The same, with the pages brought back in *pages (1, or a THP's window). */
int uffd_dev_bring_back_n_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop,
				 uint64_t *pages);
/* A zeroed page of its own (UFFDIO_COPY) for every page of [addr, addr +
 * npages pages) of registered memory that has none; a page present already
 * stays as it is. 0 (also when the mapping went away), or -errno. */
int uffd_dev_fill_zeros(struct zmm *mm, uint64_t addr, uint64_t npages);
/* Maps the zero page where nothing is mapped in [addr, addr + npages pages)
 * of registered memory (device-private pages aside): the device's fault on
 * never-touched or zapped pages, done before zdevd itself reads or writes
 * them, which would otherwise wait on its own event loop (process_vm_*) or
 * fail (/proc/PID/mem cannot wait for a uffd). Best effort. */
void uffd_dev_fill_holes(struct zmm *mm, uint64_t addr, uint64_t npages);

/*
 * zdevd's own access to the client's memory (process_vm_readv/writev,
 * /proc/PID/mem) failed at addr. A uffd made with UFFD_USER_MODE_ONLY fails
 * such kernel-mode accesses to a missing page with EFAULT instead of
 * raising a fault for zdevd, so this resolves what that fault would have: a
 * device-private page comes home (counted as the CPU fault it stands for),
 * never-touched pages get zeros, a stale write-protect marker goes. 1 when
 * the access may be tried again, -EAGAIN when a migration owns the page or
 * events are pending (try again shortly), -EFAULT when the page is not
 * merely missing (a hole, a protection, memory not registered).
 */
int uffd_dev_resolve_for_access(struct zmm *mm, uint64_t addr, bool write);

/* Event loop side. */
/* A CPU fault's page, back in the client, whose faulting threads are not
 * woken yet: its device has a cost model (devmodel.h), whose time the
 * caller lets pass before it wakes them (uffd_dev_wake). */
struct uffd_fault_held {
	unsigned int dev;
	uint64_t start, len;	/* len 0: none held, the threads are woken */
};
/* What a CPU fault brought back: from which device, how many pages (a
 * device THP's window comes whole), whether the page was held exclusive
 * (the fault revoked it, counted in exclusive_revokes, not cpu_faults), and
 * whether its threads still wait. */
struct uffd_fault_done {
	unsigned int dev;
	uint64_t pages;
	bool revoked;
	struct uffd_fault_held held;
};
/* A MISSING or WP fault at addr (flags: the uffd_msg's): 1 once a device page
 * came back for it (a CPU fault, counted in cpu_faults; *done says what),
 * 0 once resolved otherwise or left to a migration that will wake it,
 * -EAGAIN while events are pending (retry after reading them), or another
 * -errno. */
int uffd_dev_fault(struct zmm *mm, uint64_t addr, uint64_t flags, struct uffd_fault_done *done);
/* munmap (unmap) or MADV_DONTNEED/REMOVE of [start, end). */
void uffd_dev_on_remove(struct zmm *mm, uint64_t start, uint64_t end, bool unmap);
/* mremap of [from, from + len) to `to`: device pages move with the range. */
void uffd_dev_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len);
/* fork: the parent's device pages become shared with child. 0, or -ENOMEM
 * when some could not be (they stay the parent's alone). */
int uffd_dev_on_fork(struct zmm *parent, struct zmm *child);

#endif
