/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_ZDEVD_HARNESS_H
#define ZDEV_TEST_ZDEVD_HARNESS_H

#include <sys/types.h>

/*
 * A private zdevd for a test program: started on a temporary socket with the
 * given extra arguments (NULL-terminated, may be NULL), ready when this
 * returns; $ZDEV_SOCKET points at it, so zdev_open(NULL, ...) finds it.
 * Exits the program with 77 (skip, with the reason printed) when this machine
 * cannot run zdevd at all (no userfaultfd for us): a test program asks
 * zdevd_unavailable() first, to report its skip in TAP.
 */
struct zdevd_instance {
	pid_t pid;
	char socket_path[108];
	char dir[64];
};

void zdevd_start(struct zdevd_instance *z, const char *const *extra_args);
/* The same without CAP_SYS_PTRACE, so without fork events even as root: the
 * mode an ordinary user's zdevd runs in. */
void zdevd_start_without_ptrace(struct zdevd_instance *z, const char *const *extra_args);
/* The same without the pool's debug checks (on in tests): what benchmarks
 * measure is zdevd as it runs for its users. */
void zdevd_start_plain(struct zdevd_instance *z, const char *const *extra_args);
/* A new zdevd on the socket of z, whose last one has exited and been
 * reaped (zdevd_stop, or killed and waited for): what a restart of the
 * service does to its clients. */
void zdevd_restart(struct zdevd_instance *z, const char *const *extra_args);
/* Why this machine cannot run zdevd for us, or NULL if it can. */
const char *zdevd_unavailable(void);
/* SIGTERM and wait (SIGKILL after 30 s): returns zdevd's exit status, 0 when
 * it evicted everything cleanly, 128 + N if signal N ended it. */
int zdevd_stop(struct zdevd_instance *z);

/* zdevctl-style status of the running daemon, from a fresh connection. */
struct zdevd_pool_status {
	unsigned long long total, used, limit;
	unsigned long long peak;		/* the most pages used seen */
	unsigned long long warm;		/* ready for the next new process */
	unsigned int clients;
	unsigned long long clients_total;	/* client processes ever */
	int unplugged;				/* 1: the device is unplugged */
};
int zdevd_pool_status(struct zdevd_instance *z, unsigned int device, struct zdevd_pool_status *st);
/* zdevctl unplug / plug: zdevd's answer (0 or -errno, -EALREADY when the
 * device is so already), or the -errno of the exchange. *moved (unplug, may
 * be NULL): the pages that came home. */
int zdevd_unplug(struct zdevd_instance *z, unsigned int device, unsigned long long *moved);
int zdevd_plug(struct zdevd_instance *z, unsigned int device);
/* Waits up to timeout_ms for pages of device to be warm: the milliseconds
 * it took, or -ETIMEDOUT, or the -errno of the status. */
long zdevd_wait_warm(struct zdevd_instance *z, unsigned int device, unsigned long long pages,
		     long timeout_ms);

#endif
