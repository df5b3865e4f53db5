/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_POLICY_H
#define ZDEV_PRELOAD_POLICY_H

/*
 * The policy thread: what the device does with managed memory. It blocks
 * every signal but SIGSEGV, so the program's handlers never run on it, and
 * it holds the address-space lock exclusive around each migration.
 */

/* Starts the thread for shim.env's policy: 0 or -errno. */
int policy_start(void);
/* Stops it and waits for it (at exit). */
void policy_stop(void);
/* Around fork: no migration is in flight while the process is copied. */
void policy_pause(void);
void policy_resume(void);
/* In a fork child: the lock is fresh and the thread runs again. */
void policy_after_fork_child(void);

#endif
