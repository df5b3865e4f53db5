/* SPDX-License-Identifier: MIT */
/*
 * Crash survival, the client's side (rescue.h): what zdevd hands over is kept
 * here, and the agent thread that waits for zdevd to die puts the pages only
 * the device held back in place.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/own.h"
#include "lib/rescue.h"
#include "page.h"
#include "proto.h"
#include "rescue_layout.h"
#include "uffd_compat.h"
#include "uffd_probe.h"

struct held_store {
	uint64_t id;
	int fd;
	const uint8_t *map;	/* the rescue only */
};

/* A page only the device holds, as the rescue sees it. */
struct lost_page {
	uint64_t vaddr;
	const uint8_t *src;
	bool done;
};

static pthread_mutex_t rescue_lock = PTHREAD_MUTEX_INITIALIZER;
static int own_uffd = -1;
static int table_fd = -1;
static int daemon_pidfd = -1;
static uint64_t dev_pages;
static unsigned int ndevices;
static pid_t agent_for;			/* the process whose agent runs */
/* The agent's rescue has ended (under rescue_lock), which rescue_done tells
 * those waiting to start a new session. */
static bool rescued;
static pthread_cond_t rescue_done = PTHREAD_COND_INITIALIZER;
/* Agents that have ended: what they did comes before whoever reads it. */
static atomic_uint agents_ended;
/* Ours and, in a fork child, the parent's (our shared pages live there). */
static struct held_store *stores;
static size_t nstores, stores_cap;
static atomic_bool lost;
/*
 * The range of a migration to the device in flight, from its request to its
 * reply: the REMOVE events of its zaps are zdevd's, not the program's, and
 * must not make the rescue drop pages. The kernel lets the madvise go on as
 * soon as the event is read, before the agent has looked at it, so only the
 * reply ends this. A page in it comes back once no zap runs (zap_running),
 * or the zap would empty it again.
 */
static _Atomic uint64_t migrating_start, migrating_end;
static atomic_bool zap_running;
/* Forks under way in this process (let_go_of_uffd), counted under
 * rescue_lock. */
static atomic_uint forks_running;

bool rescue_daemon_lost(void)
{
	/* acquire: pairs with the agent's release once the rescue is done. */
	return atomic_load_explicit(&lost, memory_order_acquire);
}

bool rescue_keep_uffd(int uffd)
{
	bool kept = false;

	pthread_mutex_lock(&rescue_lock);
	if (own_uffd < 0) {
		own_uffd = uffd;
		kept = true;
	}
	pthread_mutex_unlock(&rescue_lock);
	return kept;
}

/*
 * One RESCUE exchange on sock, which the caller has to itself for it: the fd
 * the reply carried (*dev_pages from the reply), or -errno.
 */
static int ask_rescue(int sock, uint64_t seq, enum zrescue_what what, unsigned int dev,
		      uint64_t *info)
{
	union zmsg req, rep;
	int fd = -1, type;

	zmsg_init(&req, ZMSG_RESCUE, seq);
	req.req.device = dev;
	req.req.arg = what;
	type = zmsg_send(sock, &req, -1);
	if (!type)
		type = zmsg_recv(sock, &rep, &fd);
	if (type < 0)
		return type;
	type = type != ZMSG_REPLY || rep.hdr.seq != seq ? -EPROTO
	       : rep.reply.status				? rep.reply.status
	       : fd < 0					? -EBADF
								: 0;
	if (type) {
		if (fd >= 0)
			close(fd);
		return type;
	}
	if (info)
		*info = rep.reply.dev_pages;
	return fd;
}

static int add_held_store(uint64_t id, int fd)
{
	if (nstores == stores_cap) {
		size_t cap = stores_cap ? 2 * stores_cap : 8;
		struct held_store *s = own_realloc(stores, stores_cap * sizeof(*s), cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		stores = s;
		stores_cap = cap;
	}
	stores[nstores++] = (struct held_store){ .id = id, .fd = fd };
	return 0;
}

/* ---- the rescue ---- */

static void drop_range(struct lost_page *pages, size_t n, size_t *left, uint64_t start,
		       uint64_t end)
{
	for (size_t i = 0; i < n; i++) {
		if (pages[i].done || pages[i].vaddr < start || pages[i].vaddr >= end)
			continue;
		pages[i].done = true;
		(*left)--;
	}
}

static void move_range(struct lost_page *pages, size_t n, uint64_t from, uint64_t to,
		       uint64_t len)
{
	for (size_t i = 0; i < n; i++)
		if (!pages[i].done && pages[i].vaddr >= from && pages[i].vaddr < from + len)
			pages[i].vaddr = pages[i].vaddr - from + to;
}

/* UFFDIO_COPY of one page, retried while the address space is changing
 * (for a fork child just made, whose events nobody else reads). */
static int copy_page(int uffd, const struct lost_page *p, int tries)
{
	struct uffdio_copy copy = { .dst = p->vaddr, .src = (uintptr_t)p->src, .len = PG_SIZE };

	for (;;) {
		if (!ioctl(uffd, UFFDIO_COPY, &copy))
			return 0;
		if (errno != EAGAIN || --tries <= 0)
			return -errno;
		sched_yield();
	}
}

/*
 * A fork while zdevd is gone: the child's uffd came to us. The child is a
 * copy of us as we are now, without the pages only the device holds: it gets
 * them too, and then its uffd goes, as ours will.
 */
static void fill_fork_child(int child_uffd, const struct lost_page *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!pages[i].done)
			copy_page(child_uffd, &pages[i], 1000);
	close(child_uffd);
}

static bool in_migration(uint64_t addr)
{
	uint64_t end = atomic_load_explicit(&migrating_end, memory_order_acquire);

	return end && addr >= atomic_load_explicit(&migrating_start, memory_order_relaxed) &&
	       addr < end;
}

/* Handles what the kernel told the uffd: true if anything was read. The
 * process's threads wait in munmap, mremap, madvise or fork until we do. */
static bool read_events(struct lost_page *pages, size_t n, size_t *left)
{
	struct uffd_msg msg[16];
	bool any = false;
	ssize_t got;

	while ((got = read(own_uffd, msg, sizeof(msg))) > 0) {
		any = true;
		for (size_t i = 0; i < (size_t)got / sizeof(msg[0]); i++) {
			const struct uffd_msg *m = &msg[i];

			switch (m->event) {
			case UFFD_EVENT_FORK:
				fill_fork_child((int)m->arg.fork.ufd, pages, n);
				break;
			case UFFD_EVENT_REMAP:
				move_range(pages, n, m->arg.remap.from, m->arg.remap.to,
					   m->arg.remap.len);
				break;
			case UFFD_EVENT_REMOVE:
				if (in_migration(m->arg.remove.start))
					break;
				/* fall through */
			case UFFD_EVENT_UNMAP:
				drop_range(pages, n, left, m->arg.remove.start, m->arg.remove.end);
				break;
			default:
				/* A fault: the copy of its page, or the close,
				 * lets it go on. */
				break;
			}
		}
	}
	return any;
}

/* Copies every page back: the count copied. */
static size_t put_pages_back(struct lost_page *pages, size_t n)
{
	size_t left = n, copied = 0;

	while (left) {
		bool blocked = false;

		for (size_t i = 0; i < n; i++) {
			int ret;

			if (pages[i].done)
				continue;
			/* seq_cst: see rescue_zap_begin(). */
			if (atomic_load_explicit(&zap_running, memory_order_seq_cst) &&
			    in_migration(pages[i].vaddr)) {
				/* Copied now, the page would be zapped after:
				 * it waits for the madvise to return. */
				blocked = true;
				continue;
			}
			ret = copy_page(own_uffd, &pages[i], 1);
			if (ret == -EAGAIN) {
				/* Events wait to be read first. */
				blocked = true;
				break;
			}
			/* EEXIST: the process has the page already (zdevd
			 * died between its copy and its bookkeeping); ENOENT:
			 * the mapping is gone. */
			copied += !ret;
			pages[i].done = true;
			left--;
		}
		if (!read_events(pages, n, &left) && blocked)
			poll(&(struct pollfd){ .fd = own_uffd, .events = POLLIN }, 1, 10);
	}
	return copied;
}

/*
 * The rescue is over: own_uffd goes. Not while a thread of ours is in fork:
 * the child being made holds a copy of every fd (the fd table is copied
 * before the address space), so the uffd would outlive our close, and the
 * fork would wait for someone to read its fork event, which then nobody
 * does; so would every later munmap of a registered range, the agent's own
 * included. A fork that passed its prepare handler before the rescue took
 * rescue_lock is waited for, reading the events (its fork event fills the
 * child too); a later one waits in its prepare handler until the uffd is
 * closed. Closing the last reference makes the kernel unregister every
 * range, drop the write protection zdevd may have left, and wake every
 * fault, which the plain page tables now serve.
 */
static void let_go_of_uffd(struct lost_page *pages, size_t n)
{
	size_t left = n;

	while (read_events(pages, n, &left) || atomic_load(&forks_running))
		poll(&(struct pollfd){ .fd = own_uffd, .events = POLLIN }, 1, 10);
	close(own_uffd);
	own_uffd = -1;
}

static int map_stores(void)
{
	for (size_t i = 0; i < nstores; i++) {
		void *p;

		if (stores[i].map)
			continue;	/* mapped for a fork (rescue_fork_begin) */
		p = mmap(NULL, dev_pages * PG_SIZE, PROT_READ, MAP_SHARED, stores[i].fd, 0);

		if (p == MAP_FAILED)
			return -errno;
		stores[i].map = p;
	}
	return 0;
}

static void unmap_stores(void)
{
	for (size_t i = 0; i < nstores; i++) {
		if (stores[i].map)
			munmap((void *)stores[i].map, dev_pages * PG_SIZE);
		stores[i].map = NULL;
	}
}

static const uint8_t *store_page(uint64_t id, uint64_t pfn)
{
	for (size_t i = 0; i < nstores; i++)
		if (stores[i].id == id && stores[i].map)
			return stores[i].map + pfn * PG_SIZE;
	return NULL;
}

/* A walk over the entries that name a page, skipping the table's holes (it
 * is sparse, and its extents are found with lseek on table_fd). */
struct table_walk {
	const struct rescue_entry *table;
	size_t n, i, extent_end;
};

static struct table_walk table_walk(const struct rescue_entry *table, size_t len)
{
	return (struct table_walk){ .table = table, .n = len / sizeof(*table) };
}

/* The next entry's index and page address; false after the last. */
static bool table_next(struct table_walk *w, size_t *index, uint64_t *va)
{
	const size_t len = w->n * sizeof(*w->table);

	for (;;) {
		off_t off, end;

		while (w->i < w->extent_end) {
			uint64_t v = atomic_load_explicit(&w->table[w->i].vaddr,
							  memory_order_acquire);

			if (v & RESCUE_VALID) {
				*index = w->i++;
				*va = v & ~(PG_SIZE - 1);
				return true;
			}
			w->i++;
		}
		off = lseek(table_fd, (off_t)(w->i * sizeof(*w->table)), SEEK_DATA);
		if (off < 0 || (size_t)off >= len)
			return false;
		end = lseek(table_fd, off, SEEK_HOLE);
		if (end < 0 || (size_t)end > len)
			end = (off_t)len;
		w->i = (size_t)off / sizeof(*w->table);
		w->extent_end = (size_t)end / sizeof(*w->table);
	}
}

/*
 * The pages the table names, in *out of room for *ncap (own_free's to
 * free). Not from malloc: a thread of the program may be forking, with
 * malloc's locks held, and its fork waits for us to read the fork event.
 */
static int gather_pages(const struct rescue_entry *table, size_t len, struct lost_page **out,
			size_t *nout, size_t *ncap, size_t *unknown)
{
	struct table_walk w = table_walk(table, len);
	struct lost_page *pages = NULL;
	size_t n = 0, cap = 0, i;
	uint64_t va;

	while (table_next(&w, &i, &va)) {
		const uint8_t *src = store_page(table[i].store, i % dev_pages);

		if (!src) {
			(*unknown)++;
			continue;
		}
		if (n == cap) {
			size_t more = cap ? 2 * cap : 1024;
			struct lost_page *p = own_realloc(pages, cap * sizeof(*p), more * sizeof(*p));

			if (!p) {
				own_free(pages, cap * sizeof(*p));
				return -ENOMEM;
			}
			pages = p;
			cap = more;
		}
		pages[n++] = (struct lost_page){ .vaddr = va, .src = src };
	}
	*out = pages;
	*nout = n;
	*ncap = cap;
	return 0;
}

static void rescue_run(void)
{
	const size_t len = (size_t)ndevices * dev_pages * sizeof(struct rescue_entry);
	struct lost_page *pages = NULL;
	size_t n = 0, cap = 0, copied = 0, unknown = 0;
	void *table;
	int ret;

	pthread_mutex_lock(&rescue_lock);
	table = mmap(NULL, len, PROT_READ, MAP_SHARED, table_fd, 0);
	ret = table == MAP_FAILED ? -errno : map_stores();
	if (!ret)
		ret = gather_pages(table, len, &pages, &n, &cap, &unknown);
	if (!ret)
		copied = put_pages_back(pages, n);
	let_go_of_uffd(pages, n);
	own_free(pages, cap * sizeof(*pages));
	if (table != MAP_FAILED)
		munmap(table, len);
	unmap_stores();
	for (size_t i = 0; i < nstores; i++)
		close(stores[i].fd);
	nstores = 0;
	close(table_fd);
	table_fd = -1;
	rescued = true;
	pthread_cond_broadcast(&rescue_done);
	pthread_mutex_unlock(&rescue_lock);
	if (ret)
		fprintf(stderr, "libzdev: zdevd is gone and device pages could not be read back: %s\n",
			strerror(-ret));
	else
		fprintf(stderr, "libzdev: zdevd is gone; %zu device pages copied back%s, going on "
				"without a device until a zdevd listens again\n",
			copied, unknown ? " (some in no store held here)" : "");
}

/* The stack the rescue may use, touched at the agent's start. */
#define AGENT_STACK_TOUCHED (64 * 1024)

struct agent_start {
	int pidfd;
	sem_t started;
};

/* Out of line, so that its frame is below agent_main's. */
static __attribute__((noinline)) void touch_stack(void)
{
	volatile char frame[AGENT_STACK_TOUCHED];

	for (size_t i = 0; i < sizeof(frame); i += PG_SIZE)
		frame[i] = 0;
}

static void agent_run(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	/* The pidfd turns readable when zdevd has exited, however it died. */
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	/* seq_cst: see rescue_zap_begin(). */
	atomic_store_explicit(&lost, true, memory_order_seq_cst);
	rescue_run();
	/* release: its last touches of the rescue's state. */
	atomic_fetch_add_explicit(&agents_ended, 1, memory_order_release);
}

/*
 * The agent runs when zdevd is dead, and a page of the process touched for
 * the first time in a range zdevd registered waits for zdevd: the agent
 * would wait for itself. zdevd registers whole mappings, and a mapping
 * libzdev or a sanitizer made for this thread may have merged with one of
 * the program's. So the agent touches its memory at once, and its creator
 * waits until it has, while zdevd serves (start_agent()).
 */
static void *agent_main_told(void *arg)
{
	struct agent_start *start = arg;
	const int pidfd = start->pidfd;

	touch_stack();
	sem_post(&start->started);	/* start is the creator's again */
	agent_run(pidfd);
	return NULL;
}

static void *agent_main(void *arg)
{
	touch_stack();
	agent_run((int)(intptr_t)arg);
	return NULL;
}

/*
 * The agent, its creator waiting until it has started if wait. Not in a fork
 * child's atfork handler: a lock another thread of the parent held at the
 * fork (a sanitizer's allocator's, which the new thread takes as it starts)
 * is never let go in the child, and the agent may never start.
 */
static int start_agent(int pidfd, bool wait)
{
	struct agent_start start = { .pidfd = pidfd };
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	if (wait && sem_init(&start.started, 0, 0))
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The program's signals are not for the agent. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&t, &attr, wait ? agent_main_told : agent_main,
			      wait ? (void *)&start : (void *)(intptr_t)pidfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!wait)
		return ret;
	/* Signals blocked no more: the wait may be interrupted. */
	while (!ret && sem_wait(&start.started) && errno == EINTR)
		;
	sem_destroy(&start.started);
	return ret;
}

static void give_up_locked(void)
{
	/* Without an agent a kept uffd would leave faults waiting for good if
	 * zdevd died: zdevd's must be the only one. */
	if (own_uffd >= 0)
		close(own_uffd);
	own_uffd = -1;
	if (table_fd >= 0)
		close(table_fd);
	table_fd = -1;
	if (daemon_pidfd >= 0)
		close(daemon_pidfd);
	daemon_pidfd = -1;
}

/*
 * The table (and, for a fork child, its uffd) over sock, which the caller
 * has to itself, then the agent. daemon_pid is zdevd's own word: the
 * socket's peer credentials name whoever called listen(), which a zdevd
 * that turned into a daemon afterwards is not.
 */
static void attach(int sock, uint64_t seq, pid_t daemon_pid, unsigned int nd, bool in_fork_child)
{
	int pidfd, uffd, table;
	uint64_t pages = 0;

	pthread_mutex_lock(&rescue_lock);
	uffd = own_uffd;
	own_uffd = -1;
	pthread_mutex_unlock(&rescue_lock);

	pidfd = daemon_pid > 0 ? (int)syscall(SYS_pidfd_open, daemon_pid, 0) : -1;
	/* A fork child's uffd came to zdevd with the fork event. */
	if (pidfd >= 0 && uffd < 0)
		uffd = ask_rescue(sock, seq++, RESCUE_UFFD, 0, NULL);
	table = pidfd >= 0 && uffd >= 0 ? ask_rescue(sock, seq++, RESCUE_TABLE, 0, &pages) : -1;

	pthread_mutex_lock(&rescue_lock);
	own_uffd = uffd;
	table_fd = table;
	daemon_pidfd = pidfd;
	dev_pages = pages;
	ndevices = nd;
	if (table < 0 || !pages || start_agent(pidfd, !in_fork_child))
		give_up_locked();
	else
		agent_for = getpid();
	pthread_mutex_unlock(&rescue_lock);
}

void rescue_attach(int sock, uint64_t seq, pid_t daemon_pid, unsigned int nd)
{
	attach(sock, seq, daemon_pid, nd, false);
}

/* After a rescue: nothing of the session it ended is left but the agent's
 * pidfd; the next session starts from scratch. */
static void forget_rescued_locked(void)
{
	if (daemon_pidfd >= 0)
		close(daemon_pidfd);
	daemon_pidfd = -1;
	agent_for = 0;
	rescued = false;
	/* A migration whose reply never came left its range behind. */
	atomic_store_explicit(&migrating_end, 0, memory_order_relaxed);
	atomic_store_explicit(&zap_running, false, memory_order_relaxed);
	atomic_store_explicit(&lost, false, memory_order_release);
}

int rescue_settle(int wait_ms)
{
	struct timespec until;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&rescue_lock);
	if (agent_for != getpid()) {
		/* No agent here: a fork child's lost flag is its parent's. */
		atomic_store_explicit(&lost, false, memory_order_release);
		goto out_unlock;
	}
	/* The agent holds rescue_lock for the whole rescue: once it has
	 * begun, the wait ends only when the rescue has, deadline or not. */
	while (!rescued && ret != ETIMEDOUT)
		ret = pthread_cond_clockwait(&rescue_done, &rescue_lock, CLOCK_MONOTONIC, &until);
	if (!rescued) {
		ret = -EBUSY;
		goto out_unlock;
	}
	ret = 0;
	forget_rescued_locked();
out_unlock:
	pthread_mutex_unlock(&rescue_lock);
	return ret;
}

bool rescue_attached(void)
{
	bool yes;

	pthread_mutex_lock(&rescue_lock);
	yes = agent_for == getpid();
	pthread_mutex_unlock(&rescue_lock);
	return yes;
}

void rescue_attach_forked(int sock, pid_t daemon_pid, unsigned int nd)
{
	attach(sock, 100, daemon_pid, nd, true);
}

bool rescue_take_store(unsigned int dev, uint64_t id, int fd)
{
	bool kept = false;

	pthread_mutex_lock(&rescue_lock);
	/* Without an agent nobody would ever read it. */
	if (agent_for == getpid() && dev < ZDEV_MAX_DEVICES && !add_held_store(id, fd))
		kept = true;
	pthread_mutex_unlock(&rescue_lock);
	return kept;
}

void rescue_migration_begin(uint64_t addr, uint64_t len)
{
	atomic_store_explicit(&migrating_start, addr, memory_order_relaxed);
	/* release: the agent that sees the end sees the start. */
	atomic_store_explicit(&migrating_end, addr + len, memory_order_release);
}

void rescue_migration_end(void)
{
	atomic_store_explicit(&migrating_end, 0, memory_order_release);
}

bool rescue_zap_begin(void)
{
	/*
	 * seq_cst, as the agent's store of lost and its loads of zap_running:
	 * either the agent sees this zap running and copies the pages back
	 * only once it is done, or this sees zdevd lost and does not zap. A
	 * zap that began after the agent had looked would empty pages the
	 * agent had found present and left alone (a zdevd killed between
	 * asking for the zap and our madvise).
	 */
	atomic_store_explicit(&zap_running, true, memory_order_seq_cst);
	if (atomic_load_explicit(&lost, memory_order_seq_cst)) {
		atomic_store_explicit(&zap_running, false, memory_order_release);
		return false;
	}
	return true;
}

void rescue_zap_end(void)
{
	/* release: the agent that sees it done copies into emptied pages. */
	atomic_store_explicit(&zap_running, false, memory_order_release);
}

void rescue_atfork_child(void)
{
	/* Another thread of the parent may have held them. */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;

	/* acquire: an agent of the parent that has ended touches the state no
	 * more, and ThreadSanitizer learns so (no join says it: agents are
	 * detached). */
	atomic_load_explicit(&agents_ended, memory_order_acquire);
	memcpy(&rescue_lock, &fresh, sizeof(fresh));
	memcpy(&rescue_done, &fresh_cond, sizeof(fresh_cond));
	give_up_locked();
	agent_for = 0;
	rescued = false;
	atomic_store_explicit(&migrating_end, 0, memory_order_relaxed);
	atomic_store_explicit(&zap_running, false, memory_order_relaxed);
	atomic_store(&forks_running, 0);
}

/* ---- a fork child's own rescue ---- */

/*
 * Until a fork child has claimed its uffd (client_atfork_child), zdevd holds
 * the only reference to it: if zdevd dies first, the kernel unregisters the
 * child's ranges with it, and the pages only the device held would read as
 * zeros there. So the forking thread lists the pages on a device before the
 * fork, with the stores they are in mapped, and the child, which inherits
 * both, puts them back itself when it finds zdevd gone before its claim has
 * given it an agent.
 */
struct fork_pages {
	struct lost_page *pages;
	size_t n, cap;
	bool stores_mapped;
};

/* The forking thread's; in the child, its only thread's. */
static __thread struct fork_pages forking;

void rescue_fork_prepare(void)
{
	pthread_mutex_lock(&rescue_lock);
	atomic_fetch_add(&forks_running, 1);
	pthread_mutex_unlock(&rescue_lock);
}

void rescue_fork_returned(void)
{
	atomic_fetch_sub(&forks_running, 1);
}

void rescue_fork_begin(void)
{
	size_t len, unknown = 0;
	void *table;

	/* A rescue that has begun waits for this fork to return: the list
	 * would be of pages it is putting back anyway. */
	while (pthread_mutex_trylock(&rescue_lock)) {
		if (atomic_load_explicit(&lost, memory_order_acquire))
			return;
		sched_yield();
	}
	if (agent_for != getpid() || table_fd < 0 || !nstores ||
	    atomic_load_explicit(&lost, memory_order_acquire))
		goto out_unlock;
	len = (size_t)ndevices * dev_pages * sizeof(struct rescue_entry);
	table = mmap(NULL, len, PROT_READ, MAP_SHARED, table_fd, 0);
	if (table == MAP_FAILED)
		goto out_unlock;
	forking.stores_mapped = true;
	if (map_stores() ||
	    gather_pages(table, len, &forking.pages, &forking.n, &forking.cap, &unknown)) {
		unmap_stores();
		forking = (struct fork_pages){ 0 };
	}
	munmap(table, len);
out_unlock:
	pthread_mutex_unlock(&rescue_lock);
}

#define FORK_WAIT_STEP_MS 2

static bool table_names_pages(void)
{
	const size_t len = (size_t)ndevices * dev_pages * sizeof(struct rescue_entry);
	struct table_walk w;
	void *table;
	uint64_t va;
	size_t i;
	bool some;

	table = mmap(NULL, len, PROT_READ, MAP_SHARED, table_fd, 0);
	if (table == MAP_FAILED)
		return true;
	w = table_walk(table, len);
	some = table_next(&w, &i, &va);
	munmap(table, len);
	return some;
}

int rescue_fork_wait_home(int wait_ms)
{
	/* rescue_lock is the rescue's for all its run: a rescue under way
	 * is waited for here; one yet to begin is looked for again. */
	for (int waited = 0;; waited += FORK_WAIT_STEP_MS) {
		bool home;

		pthread_mutex_lock(&rescue_lock);
		home = agent_for != getpid() || rescued || table_fd < 0 || !table_names_pages();
		pthread_mutex_unlock(&rescue_lock);
		if (home)
			return 0;
		if (waited >= wait_ms)
			return -ETIMEDOUT;
		poll(NULL, 0, FORK_WAIT_STEP_MS);
	}
}

static void forget_fork_pages(void)
{
	pthread_mutex_lock(&rescue_lock);
	if (forking.stores_mapped)
		unmap_stores();
	own_free(forking.pages, forking.cap * sizeof(*forking.pages));
	forking = (struct fork_pages){ 0 };
	pthread_mutex_unlock(&rescue_lock);
}

void rescue_fork_parent(void)
{
	forget_fork_pages();
}

static int by_vaddr(const void *a, const void *b)
{
	const struct lost_page *x = a, *y = b;

	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/*
 * Registers [start, end) with uffd. The range may still be registered with
 * the uffd zdevd had for us, until the kernel has finished releasing it (zdevd
 * exiting) or our parent's agent, which may have read our fork event, has
 * filled us and closed it: EBUSY is waited out, for a while.
 */
static int register_missing(int uffd, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	for (int tries = 0; tries < 2000; tries++) {
		if (!ioctl(uffd, UFFDIO_REGISTER, &reg))
			return 0;
		if (errno != EBUSY)
			return -errno;
		usleep(1000);
	}
	return -EBUSY;
}

/* Copies each listed page that is missing here back from its store; a page
 * that is here (EEXIST) is left as it is. The count put back. */
static size_t fill_missing(struct lost_page *pages, size_t n)
{
	size_t copied = 0;
	int uffd;

	uffd = uffd_create(0);
	if (uffd < 0)
		uffd = uffd_create(UFFD_USER_MODE_ONLY);
	if (uffd < 0 || uffd_handshake(uffd, 0, NULL, NULL)) {
		if (uffd >= 0)
			close(uffd);
		return 0;
	}
	qsort(pages, n, sizeof(*pages), by_vaddr);
	for (size_t i = 0, j; i < n; i = j) {
		/* One registration a run of neighbouring pages. */
		for (j = i + 1; j < n && pages[j].vaddr == pages[j - 1].vaddr + PG_SIZE; j++)
			;
		if (register_missing(uffd, pages[i].vaddr, pages[j - 1].vaddr + PG_SIZE))
			continue;
		for (size_t k = i; k < j; k++)
			copied += !copy_page(uffd, &pages[k], 1000);
		ioctl(uffd, UFFDIO_UNREGISTER,
		      &(struct uffdio_range){ .start = pages[i].vaddr,
					      .len = pages[j - 1].vaddr + PG_SIZE - pages[i].vaddr });
	}
	close(uffd);
	return copied;
}

bool rescue_fork_has_pages(void)
{
	return forking.n > 0;
}

void rescue_fork_child(bool daemon_gone)
{
	size_t copied;

	/* With an agent of our own, our uffd is safe from zdevd's death. */
	if (daemon_gone && forking.n && !rescue_attached()) {
		copied = fill_missing(forking.pages, forking.n);
		if (copied)
			fprintf(stderr, "libzdev: zdevd is gone before this fork child could "
					"claim its memory; %zu device pages copied back\n", copied);
	}
	forget_fork_pages();
}
