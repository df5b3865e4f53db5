/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uffd_compat.h"
#include "uffd_probe.h"

static int uffd_syscall(int flags)
{
	long fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK | flags);

	return fd < 0 ? -errno : (int)fd;
}

static int uffd_devnode(int flags)
{
	int dev, fd, ret;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	/* The node ignores UFFD_USER_MODE_ONLY: its uffds always take
	 * kernel-mode faults, which is why it is worth opening. */
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK | flags);
	ret = fd < 0 ? -errno : fd;
	close(dev);
	return ret;
}

int uffd_create(int flags)
{
	int fd = uffd_syscall(flags);

	if (fd != -EPERM)
		return fd;
	fd = uffd_devnode(flags);
	/* A node we may not open (EACCES) or that is not there: neither way
	 * is allowed to us. */
	return fd == -EACCES || fd == -ENOENT ? -EPERM : fd;
}

int uffd_handshake(int fd, uint64_t features, uint64_t *got_features, uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got_features)
		*got_features = api.features;
	if (ioctls)
		*ioctls = api.ioctls;
	return 0;
}

static bool uffd_works(int fd)
{
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* The kernel lists EVENT_FORK among its features to everyone but refuses the
 * handshake asking for it with EPERM to a caller without CAP_SYS_PTRACE: only
 * asking tells. A uffd takes one handshake, so this one is a fresh uffd. */
static bool event_fork_granted(const struct uffd_caps *caps)
{
	int fd = uffd_syscall(caps->syscall_kernel ? 0 : UFFD_USER_MODE_ONLY);
	bool granted;

	if (fd < 0)
		return false;
	granted = !uffd_handshake(fd, UFFD_FEATURE_EVENT_FORK, NULL, NULL);
	close(fd);
	return granted;
}

int uffd_probe(struct uffd_caps *caps)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd, ret;

	*caps = (struct uffd_caps){ 0 };
	caps->syscall_kernel = uffd_works(uffd_syscall(0));
	caps->syscall_user = uffd_works(uffd_syscall(UFFD_USER_MODE_ONLY));
	fd = uffd_devnode(0);
	caps->devnode = fd >= 0;
	if (fd < 0)
		fd = uffd_syscall(caps->syscall_kernel ? 0 : UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return fd;

	/* With features 0 the kernel answers with every feature it has. */
	ret = ioctl(fd, UFFDIO_API, &api) ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	caps->api = api.api;
	caps->features = api.features;
	caps->ioctls = api.ioctls;
	caps->event_fork = (api.features & UFFD_FEATURE_EVENT_FORK) && event_fork_granted(caps);
	/* Only what a handshake of ours can get. */
	if (!caps->event_fork)
		caps->features &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
	return 0;
}

static const char *const feature_names[] = {
	"pagefault_flag_wp", "event_fork", "event_remap", "event_remove",
	"missing_hugetlbfs", "missing_shmem", "event_unmap", "sigbus",
	"thread_id", "minor_hugetlbfs", "minor_shmem", "exact_address",
	"wp_hugetlbfs_shmem", "wp_unpopulated", "poison", "wp_async", "move",
};

const char *uffd_feature_name(uint64_t bit)
{
	for (unsigned int i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++)
		if (bit == 1ull << i)
			return feature_names[i];
	return NULL;
}
