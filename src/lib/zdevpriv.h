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

#endif
