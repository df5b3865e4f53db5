/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/uio.h>

#include "page.h"
#include "uffd_compat.h"
#include "zdevd/proof.h"

uint64_t proof_pick_addr(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint64_t)(uintptr_t)&r * 0x9e3779b97f4a7c15ull;
	/* [0x7e8000000000, 0x7f0000000000): 8 TiB below where mmap usually
	 * places things, and inside the application ranges of both ASan and
	 * TSan, so sanitized clients can map it too. */
	return (0x7e8000000000ull + r % (0x800000000000ull - 0x7e8000000000ull) / 16) & ~4095ull;
}

int proof_check(int uffd, pid_t pid, uint64_t addr)
{
	static _Thread_local uint8_t token[PG_SIZE] __attribute__((aligned(PG_SIZE)));
	uint8_t seen[sizeof(token)];
	struct uffdio_register reg = {
		.range = { .start = addr, .len = sizeof(token) },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_copy copy = { .dst = addr, .src = (uint64_t)(uintptr_t)token,
				    .len = sizeof(token) };
	struct iovec local = { seen, sizeof(seen) }, remote = { (void *)(uintptr_t)addr, sizeof(seen) };
	int ret = 0;

	if (getrandom(token, sizeof(token), 0) != sizeof(token))
		return -EIO;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return errno == EINVAL || errno == ENOMEM ? -EPERM : -errno;
	if (ioctl(uffd, UFFDIO_COPY, &copy)) {
		ret = -EPERM;
		goto out_unregister;
	}
	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof(seen) ||
	    memcmp(seen, token, sizeof(seen)))
		ret = -EPERM;
out_unregister:
	ioctl(uffd, UFFDIO_UNREGISTER, &reg.range);
	return ret;
}

bool proof_mm_gone(int uffd)
{
	struct uffdio_zeropage zero = { .range = { .start = proof_pick_addr(), .len = PG_SIZE } };

	return ioctl(uffd, UFFDIO_ZEROPAGE, &zero) && errno == ESRCH;
}
