/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_CLIENTS_H
#define ZDEV_ZDEVD_CLIENTS_H

/*
 * The client processes zdevd serves: its list of their mms, and the fork
 * children whose uffd a fork event brought before the child said who it is.
 * The list holds one reference on each mm.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "zdevd/zdevd.h"

struct zmm;

/* Adds a new client's mm to the list, which takes a reference of its own. */
void clients_add(struct zdevd *d, struct zmm *mm);
/* The process is gone: off the list and the loop, its device pages freed
 * (pools back at their baseline without waiting for the last reference).
 * Once per mm; later calls do nothing. */
void clients_exit(struct zdevd *d, struct zmm *mm);
/* The listed mm of pid, with a reference, or NULL. */
struct zmm *clients_find(struct zdevd *d, pid_t pid);
/* The same, if the mm still serves the process pid names now (a process
 * that closed every handle and opens one again keeps its one uffd); an mm
 * of an earlier process with that pid, or of its image before an exec, is
 * made to exit. */
struct zmm *clients_find_live(struct zdevd *d, pid_t pid);

/* A fork event brought child's uffd: it waits, unclaimed, until the child
 * says who it is (the list holds the first reference). It counts as a client
 * from now on. */
void clients_add_unclaimed(struct zdevd *d, struct zmm *parent, struct zmm *child);
/* Whether a fork child of parent_pid waits to be claimed; the loop is given
 * a moment to handle a fork event it has read. */
bool clients_fork_pending(struct zdevd *d, pid_t parent_pid);
/* The child pid, forked by parent_pid, mapped its proof page at proof_addr:
 * the unclaimed child whose uffd serves pid's memory (proof_check()), now
 * listed and watched as pid's, with a reference; NULL if none is. */
struct zmm *clients_claim_fork(struct zdevd *d, pid_t pid, pid_t parent_pid,
			       uint64_t proof_addr);

/* test_hmm's RELEASE, which is device-wide: every client's pages of device
 * dev back to system memory. 0, -ENOMEM, or the first client's -errno (the
 * others are still tried). */
int clients_release_device(struct zdevd *d, unsigned int dev);
/* Up to max listed processes whose pid is above after, the smallest pids
 * first, each with a reference: how many went into out. *more: whether
 * others above after were left out. */
unsigned int clients_list_after(struct zdevd *d, pid_t after, struct zmm **out,
				unsigned int max, bool *more);
/* Every listed process (and, if unclaimed, every fork child not claimed
 * yet), each with a reference: *n of them in a new array, or NULL when out
 * of memory. */
struct zmm **clients_every(struct zdevd *d, bool unclaimed, size_t *n);
/* Shutdown, once the loop has stopped: every listed process's pending uffd
 * events and faults handled on the calling thread. */
void clients_serve_events(struct zdevd *d);
/* Shutdown: every listed process's pages back to it, then off the list. */
void clients_evict_all(struct zdevd *d);
/* The children that ended unclaimed (killed before their first call into
 * libzdev, or forked by a raw system call and gone) let go of the device
 * pages they shared: how many children are left unclaimed. */
unsigned int clients_reap_unclaimed(struct zdevd *d);
/* Shutdown: the children never claimed get their device pages home, as
 * every listed process did, and are freed. */
void clients_drop_unclaimed(struct zdevd *d);

#endif
