/* SPDX-License-Identifier: MIT */
/*
 * The calls the shim interposes. Memory calls go to the kernel as raw system
 * calls (no symbol to look up, no allocation), then update the managed
 * ranges; free and realloc go to the next definition. While a policy moves
 * pages, every call that can take memory away or move it holds the shim's
 * address-space lock shared (shim.h). Calls from libzdev and the shim
 * themselves are passed through: their memory is never the program's.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/zdevpriv.h"
#include "preload/fdtab.h"
#include "preload/next.h"
#include "preload/ranges.h"
#include "preload/shim.h"
#include "preload/state.h"

#define EXPORT __attribute__((visibility("default")))

static bool is_private_anon(int flags, int fd)
{
	return (flags & (MAP_PRIVATE | MAP_SHARED)) == MAP_PRIVATE && ((flags & MAP_ANONYMOUS) || fd < 0);
}

/* Whether the shim tracks a call made from ra: set up, and the program's. */
static bool tracked(const void *ra)
{
	return shim.ready && !state_is_ours(ra);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	const void *ra = __builtin_return_address(0);
	const bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	const bool track = tracked(ra);
	/* MAP_FIXED replaces what was there: a change like munmap. */
	const bool locked = track && fixed && state_as_begin();
	void *emulated;
	long p;

	/* The device files the shim emulates map as their driver says. */
	if (fd >= 0 && !(flags & MAP_ANONYMOUS) && fdtab_has(fd) &&
	    fdtab_mmap(fd, addr, len, prot, flags, off, &emulated))
		p = emulated == MAP_FAILED ? -1 : (long)emulated;
	else
		p = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	state_as_end(locked);
	if (p == -1)
		return MAP_FAILED;
	/* Ours from the first call on: libzdev maps its memory while it sets
	 * up, before the shim is ready, and on kernels without anonymous VMA
	 * names nothing else tells that memory from the program's. */
	if (state_is_ours(ra) && is_private_anon(flags, fd))
		ranges_exclude((uint64_t)p, (uint64_t)p + len);
	else if (track && fixed)
		ranges_remove((uint64_t)p, (uint64_t)p + len);
	if (track && is_private_anon(flags, fd) && (prot & PROT_WRITE))
		ranges_add((uint64_t)p, (uint64_t)p + len, shim.env.min_bytes);
	return (void *)p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
	const bool locked = tracked(__builtin_return_address(0)) && state_as_begin();
	long ret;

	ret = syscall(SYS_munmap, addr, len);
	if (!ret && shim.ready)
		ranges_remove((uint64_t)(uintptr_t)addr, (uint64_t)(uintptr_t)addr + len);
	state_as_end(locked);
	return (int)ret;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	const bool track = tracked(__builtin_return_address(0));
	void *new_addr = NULL;
	bool locked;
	long p;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	locked = track && state_as_begin();
	p = syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
	if (p != -1 && shim.ready)
		ranges_move((uint64_t)(uintptr_t)old, old_len, (uint64_t)p, new_len,
			    shim.env.min_bytes);
	state_as_end(locked);
	return p == -1 ? MAP_FAILED : (void *)p;
}

EXPORT int madvise(void *addr, size_t len, int advice)
{
	/* DONTNEED, FREE, REMOVE empty pages the policy may be moving. */
	const bool locked = tracked(__builtin_return_address(0)) &&
			    (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE) &&
			    state_as_begin();
	long ret;

	ret = syscall(SYS_madvise, addr, len, advice);
	state_as_end(locked);
	return (int)ret;
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
	/* A migration reads and write-protects the pages it moves: their
	 * protection must not change under it. */
	const bool track = tracked(__builtin_return_address(0));
	const bool locked = track && state_as_begin();
	long ret;

	ret = syscall(SYS_mprotect, addr, len, prot);
	/* The shim manages writable memory only: read-only pages leave the
	 * policy's choice now rather than at the next scan of the maps.
	 * Pages made writable again wait for that scan, which knows whether
	 * the mapping is anonymous. */
	if (!ret && track && !(prot & PROT_WRITE))
		ranges_remove((uint64_t)(uintptr_t)addr, (uint64_t)(uintptr_t)addr + len);
	state_as_end(locked);
	return (int)ret;
}

/* ---- malloc's own unmapping ---- */

static void (*next_free)(void *);
static void *(*next_realloc)(void *, size_t);

/* glibc's own, before dlsym can answer (dlsym itself frees). */
extern void __libc_free(void *);
extern void *__libc_realloc(void *, size_t);

EXPORT void free(void *p)
{
	void (*f)(void *) = next_free ? next_free : __libc_free;
	bool locked;

	/* free may unmap a chunk or trim a heap: a change like munmap. While
	 * nothing moves, nothing more than the call itself. */
	if (!p || !atomic_load_explicit(&shim.moving, memory_order_relaxed) ||
	    state_is_ours(__builtin_return_address(0))) {
		f(p);
		return;
	}
	locked = state_as_begin();
	f(p);
	state_as_end(locked);
}

EXPORT void *realloc(void *p, size_t len)
{
	void *(*f)(void *, size_t) = next_realloc ? next_realloc : __libc_realloc;
	bool locked;
	void *q;

	/* realloc may move a mapped chunk with mremap, which no interposed
	 * call sees. */
	if (!atomic_load_explicit(&shim.moving, memory_order_relaxed) ||
	    state_is_ours(__builtin_return_address(0)))
		return f(p, len);
	locked = state_as_begin();
	q = f(p, len);
	state_as_end(locked);
	return q;
}

/* ---- signals ---- */

static int (*next_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*next_sigaltstack)(const stack_t *, stack_t *);
static int (*next_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

/* The program's SIGSEGV handler is the one libzdev's chains to, never a
 * replacement for it: exclusive pages revoke through libzdev's. */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int ret;

	if (sig != SIGSEGV || !shim.ready || state_is_ours(__builtin_return_address(0)))
		return NEXT(sigaction)(sig, act, old);
	ret = zdevpriv_sigaction(sig, act, old);
	if (ret) {
		errno = -ret;
		return -1;
	}
	return 0;
}

EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act = { .sa_handler = handler, .sa_flags = SA_RESTART }, old;

	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old))
		return SIG_ERR;
	return old.sa_handler;
}

/*
 * A thread must never block SIGSEGV: an exclusive page revokes through it,
 * and a fault whose SIGSEGV is blocked kills the process (liblzma's worker
 * threads, for one, start with every signal blocked). Blocking it has no
 * meaning for a fault anyway; only a SIGSEGV sent with kill() is let in.
 */
static const sigset_t *without_segv(int how, const sigset_t *set, sigset_t *copy)
{
	if (!set || how == SIG_UNBLOCK || !sigismember(set, SIGSEGV) || !shim.ready)
		return set;
	*copy = *set;
	sigdelset(copy, SIGSEGV);
	return copy;
}

static int (*next_pthread_sigmask)(int, const sigset_t *, sigset_t *);
static int (*next_sigprocmask)(int, const sigset_t *, sigset_t *);

EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;

	return NEXT(pthread_sigmask)(how, without_segv(how, set, &copy), old);
}

EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;

	return NEXT(sigprocmask)(how, without_segv(how, set, &copy), old);
}

/* A signal stack must never be exclusive: the kernel could not push a
 * signal frame there. */
EXPORT int sigaltstack(const stack_t *ss, stack_t *old)
{
	int ret = NEXT(sigaltstack)(ss, old);

	if (!ret && ss && !(ss->ss_flags & SS_DISABLE))
		ranges_exclude((uint64_t)(uintptr_t)ss->ss_sp,
			       (uint64_t)(uintptr_t)ss->ss_sp + ss->ss_size);
	return ret;
}

/* Nor may a thread's stack be: glibc maps it with calls we do not see. */
EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	int ret = NEXT(pthread_create)(t, attr, fn, arg);
	pthread_attr_t a;
	size_t size;
	void *stack;

	/* Before the shim is ready too: libzdev starts its agent then. */
	if (ret || pthread_getattr_np(*t, &a))
		return ret;
	if (!pthread_attr_getstack(&a, &stack, &size))
		ranges_exclude((uint64_t)(uintptr_t)stack, (uint64_t)(uintptr_t)stack + size);
	pthread_attr_destroy(&a);
	return ret;
}

/* ---- exec: the image that ends says what happened first ---- */

static int (*next_execve)(const char *, char *const[], char *const[]);
static int (*next_execv)(const char *, char *const[]);
static int (*next_execvp)(const char *, char *const[]);
static int (*next_execvpe)(const char *, char *const[], char *const[]);
static int (*next_fexecve)(int, char *const[], char *const[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	shim_flush_stats();
	return NEXT(execve)(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
	shim_flush_stats();
	return NEXT(execv)(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	shim_flush_stats();
	return NEXT(execvp)(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	shim_flush_stats();
	return NEXT(execvpe)(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	shim_flush_stats();
	return NEXT(fexecve)(fd, argv, envp);
}

#define EXECL_MAX 4096

/* The arguments of an execl-style call, up to its NULL, into argv: the
 * environment after it for execle. false when there are too many. */
static bool collect_args(const char *arg, va_list ap, char **argv, char ***envp)
{
	unsigned int n = 0;

	for (argv[n] = (char *)arg; argv[n]; argv[n] = va_arg(ap, char *))
		if (++n == EXECL_MAX)
			return false;
	if (envp)
		*envp = va_arg(ap, char **);
	return true;
}

enum exec_kind { EXEC_PATH, EXEC_SEARCH, EXEC_ENV };

/* execl, execlp and execle: their arguments into an argv, then the v form. */
static int exec_list(enum exec_kind kind, const char *path, const char *arg, va_list ap)
{
	char *argv[EXECL_MAX], **envp = NULL;

	if (!collect_args(arg, ap, argv, kind == EXEC_ENV ? &envp : NULL)) {
		errno = E2BIG;
		return -1;
	}
	if (kind == EXEC_SEARCH)
		return execvp(path, argv);
	return kind == EXEC_ENV ? execve(path, argv, envp) : execv(path, argv);
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	ret = exec_list(EXEC_PATH, path, arg, ap);
	va_end(ap);
	return ret;
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	ret = exec_list(EXEC_SEARCH, file, arg, ap);
	va_end(ap);
	return ret;
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	int ret;

	va_start(ap, arg);
	ret = exec_list(EXEC_ENV, path, arg, ap);
	va_end(ap);
	return ret;
}

__attribute__((constructor(101))) static void interpose_init(void)
{
	/* dlsym frees through free() itself: __libc_free serves until then. */
	next_realloc = dlsym(RTLD_NEXT, "realloc");
	next_free = dlsym(RTLD_NEXT, "free");
}
