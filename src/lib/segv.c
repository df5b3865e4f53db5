/* SPDX-License-Identifier: MIT */
/*
 * libzdev's SIGSEGV handler. A fault the kernel reports is offered to the
 * claimers the modules above registered, in the order they came; one that
 * claims it has dealt with it and the access goes on. Every other SIGSEGV
 * goes to the handler that was there before ours (the program's, a
 * sanitizer's) or, if there was none, kills the process as it would have
 * without zdev. This file knows nothing of what its claimers do.
 *
 * Ours is installed on first need (exclusive access, a mapping made
 * anonymous), after whatever the program or a sanitizer installed at
 * start-up. A program that installs its own later displaces ours; the
 * preload shim prevents that by routing
 * sigaction(SIGSEGV) through zdevpriv_sigaction(), which keeps the program's
 * handler as the one we chain to. zdevpriv_* are for the shim, not programs.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "lib/export.h"
#include "lib/segv.h"
#include "lib/zdevpriv.h"

#define MAX_CLAIMERS 4

/* Written under claim_lock before nclaimers publishes them; the handler reads
 * them without a lock, which it could not take. Never removed. */
static segv_claimer claimers[MAX_CLAIMERS];
static _Atomic unsigned int nclaimers;
static pthread_mutex_t claim_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The handler to chain to, double-buffered so that the signal handler reads
 * a whole one without a lock: a writer (under prev_lock) fills the copy not
 * in use and then publishes its index. A handler that is still copying the
 * old one when a second change comes could see a mix; sigaction(SIGSEGV) is
 * rare enough, and made by the program's start-up code, for that to be
 * acceptable.
 */
static struct sigaction prev[2];
static _Atomic int prev_cur;
static pthread_mutex_t prev_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool installed;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_err;

/* SA_RESETHAND fired: the handler to chain to is SIG_DFL until the next
 * zdevpriv_sigaction (a flag, since a signal handler cannot take prev_lock). */
static atomic_bool prev_reset;

static void load_prev(struct sigaction *out)
{
	*out = prev[atomic_load_explicit(&prev_cur, memory_order_acquire)];
	if (atomic_load_explicit(&prev_reset, memory_order_acquire)) {
		memset(out, 0, sizeof(*out));
		out->sa_handler = SIG_DFL;
	}
}

static void set_prev_locked(const struct sigaction *act)
{
	int next = !atomic_load_explicit(&prev_cur, memory_order_relaxed);

	prev[next] = *act;
	atomic_store_explicit(&prev_cur, next, memory_order_release);
	atomic_store_explicit(&prev_reset, false, memory_order_release);
}

ZDEV_EXPORT void zdevpriv_segv_chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction p;
	sigset_t mask;

	load_prev(&p);
	if (!(p.sa_flags & SA_SIGINFO) && (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN)) {
		struct sigaction dfl;

		/* A fault's SIGSEGV cannot be ignored: the kernel kills as
		 * SIG_DFL would. Sent ones obey SIG_IGN. */
		if (p.sa_handler == SIG_IGN && si && si->si_code <= 0)
			return;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(sig, &dfl, NULL);
		/* A fault repeats when we return and now kills; a sent
		 * signal is sent again, pending until we return. */
		if (!si || si->si_code <= 0)
			raise(sig);
		return;
	}
	/* One shot, as the kernel does it: the next SIGSEGV meets SIG_DFL
	 * (ours stays, for exclusive pages). */
	if (p.sa_flags & SA_RESETHAND)
		atomic_store_explicit(&prev_reset, true, memory_order_release);
	/* The handler runs with the mask the kernel would have given it: the
	 * interrupted one plus its sa_mask (ours blocks everything). SIGSEGV
	 * itself stays open even without SA_NODEFER, so that the handler can
	 * touch exclusive pages; a real fault inside it then recurses instead
	 * of killing at once. The kernel restores the interrupted mask when we
	 * return. */
	if (uc)
		mask = ((ucontext_t *)uc)->uc_sigmask;
	else
		pthread_sigmask(SIG_SETMASK, NULL, &mask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&p.sa_mask, s) == 1)
			sigaddset(&mask, s);
	sigdelset(&mask, sig);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	if (p.sa_flags & SA_SIGINFO)
		p.sa_sigaction(sig, si, uc);
	else
		p.sa_handler(sig);
}

int segv_add_claimer(segv_claimer fn)
{
	unsigned int n;
	int ret = 0;

	pthread_mutex_lock(&claim_lock);
	n = atomic_load_explicit(&nclaimers, memory_order_relaxed);
	for (unsigned int i = 0; i < n; i++)
		if (claimers[i] == fn)
			goto out_unlock;
	if (n == MAX_CLAIMERS) {
		ret = -ENOSPC;
		goto out_unlock;
	}
	claimers[n] = fn;
	/* release: a handler that counts the slot finds it filled. */
	atomic_store_explicit(&nclaimers, n + 1, memory_order_release);
out_unlock:
	pthread_mutex_unlock(&claim_lock);
	return ret;
}

static bool claimed(uintptr_t addr)
{
	unsigned int n = atomic_load_explicit(&nclaimers, memory_order_acquire);

	for (unsigned int i = 0; i < n; i++)
		if (claimers[i](addr))
			return true;
	return false;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	/* si_code > 0: the kernel's, from a fault at si_addr. */
	if (si && si->si_code > 0 && claimed((uintptr_t)si->si_addr)) {
		errno = saved;
		return;
	}
	errno = saved;
	zdevpriv_segv_chain(sig, si, uc);
}

static void install(void)
{
	struct sigaction act, old;

	memset(&act, 0, sizeof(act));
	act.sa_sigaction = on_segv;
	/* Every signal blocked while we run: a handler of another signal
	 * that touched the page we are revoking would wait for us forever.
	 * ONSTACK: a thread with an alternate stack (a stack overflow
	 * handler) keeps it. */
	act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&act.sa_mask);
	pthread_mutex_lock(&prev_lock);
	if (sigaction(SIGSEGV, &act, &old)) {
		install_err = -errno;
	} else {
		set_prev_locked(&old);
		atomic_store(&installed, true);
	}
	pthread_mutex_unlock(&prev_lock);
}

int segv_install(void)
{
	pthread_once(&install_once, install);
	return install_err;
}

ZDEV_EXPORT int zdevpriv_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (sig != SIGSEGV || !atomic_load(&installed))
		return sigaction(sig, act, old) ? -errno : 0;
	pthread_mutex_lock(&prev_lock);
	if (old)
		load_prev(old);
	if (act)
		set_prev_locked(act);
	pthread_mutex_unlock(&prev_lock);
	return 0;
}
