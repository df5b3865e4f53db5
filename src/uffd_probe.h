/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_UFFD_PROBE_H
#define ZDEV_UFFD_PROBE_H

#include <stdbool.h>
#include <stdint.h>

/* How this process can create a userfaultfd, and what the kernel offers. */
struct uffd_caps {
	bool syscall_user;	/* userfaultfd(UFFD_USER_MODE_ONLY) works */
	bool syscall_kernel;	/* userfaultfd() without it works: kernel-mode faults too */
	bool devnode;		/* /dev/userfaultfd opens and hands out uffds */
	bool event_fork;	/* UFFD_FEATURE_EVENT_FORK is granted to us
				 * (the kernel asks for CAP_SYS_PTRACE) */
	uint64_t api;		/* UFFD_API the kernel answered with */
	uint64_t features;	/* UFFD_FEATURE_* a handshake of ours gets: what
				 * the kernel supports, but EVENT_FORK only if
				 * granted */
	uint64_t ioctls;	/* 1 << _UFFDIO_* available on a uffd */
};

/* 0 with caps filled, or -errno (-EPERM/-ENOSYS: no userfaultfd for us). */
int uffd_probe(struct uffd_caps *caps);

/*
 * A new userfaultfd (O_CLOEXEC | O_NONBLOCK and flags), from the system call
 * or, failing that, from /dev/userfaultfd. Its API handshake is not done yet.
 * The fd, or -errno (-EPERM: neither is allowed to this process).
 */
int uffd_create(int flags);

/* Runs the UFFDIO_API handshake asking for features; fills what was granted
 * (either pointer may be NULL). 0 or -errno. */
int uffd_handshake(int fd, uint64_t features, uint64_t *got_features, uint64_t *ioctls);

/* The name of one UFFD_FEATURE_* bit, or NULL. */
const char *uffd_feature_name(uint64_t bit);

#endif
