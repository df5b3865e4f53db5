/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdevd/probe.h"

void probe_uffd(struct zdevd *d)
{
	const uint64_t wanted = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
				UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
				UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
				UFFD_FEATURE_THREAD_ID;
	struct uffd_caps caps;
	int fd;

	if (uffd_probe(&caps)) {
		log_warn("userfaultfd is not available to zdevd: clients cannot be served");
		return;
	}
	d->devs.uffd_features = caps.features & wanted;
	if (!caps.event_fork) {
		d->devs.uffd_features &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
		log_info("no fork events (they need CAP_SYS_PTRACE): clients bring their device pages home before they fork");
	}
	fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	d->devnode_ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	else
		log_info("no /dev/userfaultfd: clients without CAP_SYS_PTRACE get user-mode-only "
			 "uffds, and system calls on their device pages fail with EFAULT");
}
