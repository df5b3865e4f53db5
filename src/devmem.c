/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devmem.h"
#include "log.h"
#include "numa_place.h"
#include "vmres.h"

int devmem_map(void *addr, size_t len, int node, const char *name)
{
	void *p;
	int fd, ret;

	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len)) {
		ret = -errno;
		goto err_close_memfd;
	}
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		goto err_close_memfd;
	}
	/* shmem keeps a shared policy per file range, so the binding holds for
	 * every later mapping of this memfd, in zdevd or in a client. */
	ret = numa_place_bind(addr, len, node);
	if (ret) {
		log_err("cannot place %s on node %d: %s", name, node, strerror(-ret));
		goto err_give_back;
	}
	return fd;

err_give_back:
	vmres_give_back(addr, len);
err_close_memfd:
	close(fd);
	return ret;
}

void devmem_unmap(void *addr, size_t len, int memfd)
{
	vmres_give_back(addr, len);
	close(memfd);
}
