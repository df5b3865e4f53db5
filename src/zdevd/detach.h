/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_DETACH_H
#define ZDEV_ZDEVD_DETACH_H

/*
 * Running in the background. The process started from the shell forks
 * before zdevd sets anything up and waits: the child sets up, still writing
 * to the shell's standard error, and tells it once it serves. The waiting
 * process then exits 0, or, when the child exited first, with its status.
 * So every start-up error reaches the user, with a non-zero exit status.
 */

/* Forks; returns in the child only: 0, or -errno (nothing forked) with a
 * message. */
int detach_start(void);

/* In the child: leaves the terminal's session and the working directory,
 * for the root. 0, or -errno with a message. */
int detach_leave_session(void);

/* In the child, once it serves: standard input, output and error to
 * /dev/null, log messages to syslog, and the waiting process told it may
 * exit. 0, or -errno with a message on standard error. */
int detach_finish(void);

#endif
