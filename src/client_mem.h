/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_CLIENT_MEM_H
#define ZDEV_CLIENT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zmm;

/*
 * zdevd's reads and writes of a client's memory: len bytes between local
 * and remote in mm's process, through process_vm_readv/writev, or through
 * mem_fd (the process's /proc/PID/mem, which reaches PROT_NONE pages) when
 * it is not negative. Missing pages of registered memory are resolved as
 * the client's CPU fault would resolve them, also where its uffd serves
 * user-mode faults only (uffd_dev_resolve_for_access). 0, -EFAULT for
 * memory the process cannot give (a hole, a protection), or another -errno
 * (-ESRCH: the process is gone). Never with mm->lock held.
 */
int client_mem_access(struct zmm *mm, int mem_fd, bool write, void *local, uint64_t remote,
		      size_t len);

static inline int client_mem_read(struct zmm *mm, void *local, uint64_t remote, size_t len)
{
	return client_mem_access(mm, -1, false, local, remote, len);
}

static inline int client_mem_write(struct zmm *mm, const void *local, uint64_t remote, size_t len)
{
	return client_mem_access(mm, -1, true, (void *)local, remote, len);
}

#endif
