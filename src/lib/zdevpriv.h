/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_ZDEVPRIV_H
#define ZDEV_LIB_ZDEVPRIV_H

/*
 * What libzdev exports for its preload shim alone (the ZDEV_INTERNAL node of
 * libzdev.sym): not in zdev.h, no stability promised.
 */

#include <signal.h>
#include <stdint.h>

#include "lathist.h"

struct zdev;
struct zdev_result;

/*
 * zdevpriv_sigaction is sigaction(2) with -errno returns; for SIGSEGV, once
 * libzdev's handler is in, it reads and sets the handler libzdev chains to
 * instead of displacing libzdev's. zdevpriv_segv_chain delivers a SIGSEGV to
 * that handler as the kernel would have (SA_SIGINFO, SA_RESETHAND, the
 * handler's mask, SIG_DFL killing, SIG_IGN).
 */
int zdevpriv_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
void zdevpriv_segv_chain(int sig, siginfo_t *si, void *uc);

/*
 * The histogram of the calling process's CPU faults on device pages, over
 * every device (dev is any of its handles): the first n of its
 * LATHIST_BUCKETS buckets into buckets, bucket i counting the faults served
 * in [2^i, 2^(i+1)) ns (the last one also those above), and the longest in
 * *max_ns (may be NULL). The buckets filled, or -errno: -EINVAL for no dev or
 * no buckets to fill n of, else those of zdev_get_stats().
 */
int zdevpriv_fault_hist(struct zdev *dev, uint64_t *buckets, unsigned int n, uint64_t *max_ns);

/*
 * Device-exclusive access for the shim's stress policy, held with the pages
 * unmapped: zdevd keeps their data while the device holds them, and any CPU
 * access brings a page back and revokes the hold, the kernel's own access
 * (a read(2) into the page) as well, where zdev_make_exclusive's PROT_NONE
 * hold would fail such a call with EFAULT. Results and errors are those of
 * zdev_migrate_to_device (res->cpages: the pages held).
 */
int zdevpriv_make_exclusive_held(struct zdev *dev, void *addr, size_t npages,
				 struct zdev_result *res);

#endif
