/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_SEGV_H
#define ZDEV_LIB_SEGV_H

#include <signal.h>

/* Installs libzdev's SIGSEGV handler once, chaining to the one before it. */
int segv_install(void);

/*
 * For the preload shim only (exported, not in zdev.h):
 * zdevpriv_sigaction is sigaction(2) with -errno returns; for SIGSEGV, once
 * libzdev's handler is in, it reads and sets the handler libzdev chains to
 * instead of displacing libzdev's. zdevpriv_segv_chain delivers a SIGSEGV to
 * that handler as the kernel would have (SA_SIGINFO, SA_RESETHAND, the
 * handler's mask, SIG_DFL killing, SIG_IGN).
 */
int zdevpriv_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
void zdevpriv_segv_chain(int sig, siginfo_t *si, void *uc);

#endif
