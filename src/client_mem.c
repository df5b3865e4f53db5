/* SPDX-License-Identifier: MIT */
/*
 * zdevd's own reads and writes of a client's memory. They are kernel-mode
 * accesses to the client: on a missing page of registered memory, a uffd
 * that serves kernel-mode faults makes the access wait for the event loop,
 * while one made with UFFD_USER_MODE_ONLY (an unprivileged client's, with
 * vm.unprivileged_userfaultfd=0) fails it with EFAULT. Then the page where
 * the access stopped is resolved here as the fault would have been, and the
 * access goes on from there.
 */
#include "config.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client_mem.h"
#include "uffd_dev.h"
#include "zmm.h"

/* A migration owns a page only for the copy of its range: wait that long. */
#define BUSY_WAIT_US 50
#define BUSY_WAITS 200000
/* A page resolved that fails again is not one of those we resolve. */
#define SAME_PAGE_TRIES 3

static ssize_t transfer(struct zmm *mm, int mem_fd, bool write, void *local, uint64_t remote,
			size_t len)
{
	struct iovec l = { local, len }, r = { (void *)(uintptr_t)remote, len };

	if (mem_fd >= 0)
		return write ? pwrite(mem_fd, local, len, (off_t)remote)
			     : pread(mem_fd, local, len, (off_t)remote);
	return write ? process_vm_writev(mm->pid, &l, 1, &r, 1, 0)
		     : process_vm_readv(mm->pid, &l, 1, &r, 1, 0);
}

int client_mem_access(struct zmm *mm, int mem_fd, bool write, void *local, uint64_t remote,
		      size_t len)
{
	uint64_t last_page = UINT64_MAX;
	unsigned int tries = 0, waits = 0;
	size_t done = 0;

	while (done < len) {
		/* Both copy up to the first page they cannot reach and say
		 * how much: the next call starts at that page. */
		ssize_t n = transfer(mm, mem_fd, write, (char *)local + done, remote + done, len - done);
		uint64_t page;
		int ret;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* /proc/PID/mem says EIO when it could copy nothing. */
		if (n < 0 && errno != EFAULT && !(mem_fd >= 0 && errno == EIO))
			return -errno;
		page = (remote + done) & ~(uint64_t)(PG_SIZE - 1);
		ret = uffd_dev_resolve_for_access(mm, page, write);
		if (ret == -EAGAIN) {
			if (++waits > BUSY_WAITS)
				return -EFAULT;
			usleep(BUSY_WAIT_US);
			continue;
		}
		if (ret < 0)
			return -EFAULT;
		tries = page == last_page ? tries + 1 : 1;
		last_page = page;
		if (tries > SAME_PAGE_TRIES)
			return -EFAULT;
	}
	return 0;
}
