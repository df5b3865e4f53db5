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
/* In a fork child, before anything else: no policy runs and the lock is
 * fresh; after libzdev's own handlers: the policy runs again. */
void policy_forget_in_child(void);
void policy_restart_in_child(void);

#endif
