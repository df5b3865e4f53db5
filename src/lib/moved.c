/* SPDX-License-Identifier: MIT */
/*
 * Exclusive pages that mremap moved: they are PROT_NONE at their new address,
 * where the client's map has no record of them, so the SIGSEGV handler cannot
 * tell them from the program's own inaccessible memory. zdevd saw the move
 * (the uffd REMAP event) and kept their protection; on a fault without a
 * record, the handler asks it over a second connection of its own.
 *
 * The question is asked from a signal handler, on any thread: the line is
 * taken with a spin flag, held with every signal blocked (the holder only
 * sends and receives, it never waits for another holder), and only socket
 * calls are made.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/moved.h"
#include "proto.h"

static _Atomic int line = -1;
static _Atomic pid_t line_pid;	/* the process that opened it */
static atomic_flag line_busy = ATOMIC_FLAG_INIT;

int moved_open(const char *path)
{
	union zmsg m;
	int fd, type, expected = -1;

	if (atomic_load(&line) >= 0 && atomic_load(&line_pid) == getpid())
		return 0;
	fd = zmsg_connect(path);
	if (fd < 0)
		return fd;
	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hello.version = ZDEV_PROTO_VERSION;
	m.hello.pid = getpid();
	m.hello.flags = ZHELLO_AUX;
	type = zmsg_send(fd, &m, -1) ?: zmsg_recv(fd, &m, NULL);
	if (type != ZMSG_HELLO_OK || m.hello_ok.status) {
		close(fd);
		return type < 0 ? type : (m.hello_ok.status ?: -EPROTO);
	}
	/* A fork child's stale line (another pid) is replaced. */
	expected = atomic_load(&line);
	if (expected >= 0 && atomic_load(&line_pid) != getpid()) {
		atomic_store(&line, -1);
		close(expected);
		expected = -1;
	}
	atomic_store(&line_pid, getpid());
	if (!atomic_compare_exchange_strong(&line, &expected, fd))
		close(fd);	/* another thread opened one first */
	return 0;
}

/* Takes the line with every signal blocked (see above). */
static void line_take(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
	while (atomic_flag_test_and_set_explicit(&line_busy, memory_order_acquire))
		sched_yield();
}

static void line_give(const sigset_t *old)
{
	atomic_flag_clear_explicit(&line_busy, memory_order_release);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

bool moved_close(void)
{
	sigset_t old;
	int fd;

	/* A fork child's line is its parent's, and a thread that did not come
	 * along may have held it: moved_open replaces it. */
	if (atomic_load(&line) < 0 || atomic_load(&line_pid) != getpid())
		return false;
	/* Not while a handler is asking on it: the fd could be reused. */
	line_take(&old);
	fd = atomic_exchange(&line, -1);
	line_give(&old);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool moved_query(uintptr_t page, unsigned int *prot)
{
	sigset_t old;
	union zmsg m;
	int fd, type = -ENOTCONN;

	/* A fork child's line would ask about its parent. */
	if (atomic_load(&line) < 0 || atomic_load(&line_pid) != getpid())
		return false;
	/* No signal while we hold the line: a handler of another signal that
	 * faulted here again would spin on the line it holds itself. */
	line_take(&old);
	fd = atomic_load(&line);	/* moved_close may have taken it */
	if (fd >= 0) {
		zmsg_init(&m, ZMSG_XMOVED, 1);
		m.req.addr = page;
		m.req.npages = 1;
		type = zmsg_send(fd, &m, -1) ?: zmsg_recv(fd, &m, NULL);
	}
	line_give(&old);
	if (type != ZMSG_REPLY || m.reply.status)
		return false;
	*prot = (unsigned int)m.reply.prot;
	return true;
}
