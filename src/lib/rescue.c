/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"
#include "rescue.h"
#include "rescue_layout.h"
#include "uffd_compat.h"

#define PAGE 4096ul

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
static uint64_t own_store[ZDEV_MAX_DEVICES];
/* Ours and, in a fork child, the parent's (our shared pages live there). */
static struct held_store *stores;
static size_t nstores, stores_cap;
static atomic_bool lost;

bool zrescue_daemon_lost(void)
{
	/* acquire: pairs with the agent's release once the rescue is done. */
	return atomic_load_explicit(&lost, memory_order_acquire);
}

bool zrescue_keep_uffd(int uffd)
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

/* One RESCUE exchange: the fd the reply carried (info from cpages), or -errno. */
static int ask_rescue(struct zclient *c, enum zrescue_what what, unsigned int dev, uint64_t *info)
{
	union zmsg req, rep;
	int fd = -1, ret;

	zmsg_init(&req, ZMSG_RESCUE, 0);
	req.req.device = dev;
	req.req.arg = what;
	pthread_mutex_lock(&c->lock);
	ret = zclient_call_fd(c, &req, &rep, -1, &fd);
	pthread_mutex_unlock(&c->lock);
	if (ret >= 0)
		ret = ret != ZMSG_REPLY ? -EPROTO : rep.reply.status ? rep.reply.status
						 : fd < 0 ? -EBADF : 0;
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	if (info)
		*info = rep.reply.cpages;
	return fd;
}

static int add_held_store(uint64_t id, int fd)
{
	if (nstores == stores_cap) {
		size_t cap = stores_cap ? 2 * stores_cap : 8;
		struct held_store *s = realloc(stores, cap * sizeof(*s));

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
	struct uffdio_copy copy = { .dst = p->vaddr, .src = (uintptr_t)p->src, .len = PAGE };

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
static void rescue_fork_child(int child_uffd, const struct lost_page *pages, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!pages[i].done)
			copy_page(child_uffd, &pages[i], 1000);
	close(child_uffd);
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
				rescue_fork_child((int)m->arg.fork.ufd, pages, n);
				break;
			case UFFD_EVENT_REMAP:
				move_range(pages, n, m->arg.remap.from, m->arg.remap.to,
					   m->arg.remap.len);
				break;
			case UFFD_EVENT_REMOVE:
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

		for (size_t i = 0; i < n && !blocked; i++) {
			int ret;

			if (pages[i].done)
				continue;
			ret = copy_page(own_uffd, &pages[i], 1);
			if (ret == -EAGAIN) {
				/* Events wait to be read first. */
				blocked = true;
				continue;
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

static int map_stores(void)
{
	for (size_t i = 0; i < nstores; i++) {
		void *p = mmap(NULL, dev_pages * PAGE, PROT_READ, MAP_SHARED, stores[i].fd, 0);

		if (p == MAP_FAILED)
			return -errno;
		stores[i].map = p;
	}
	return 0;
}

static const uint8_t *store_page(uint64_t id, uint64_t pfn)
{
	for (size_t i = 0; i < nstores; i++)
		if (stores[i].id == id && stores[i].map)
			return stores[i].map + pfn * PAGE;
	return NULL;
}

/* The pages the table names, skipping its holes (it is sparse). */
static int gather_pages(const struct rescue_entry *table, size_t len, struct lost_page **out,
			size_t *nout, size_t *unknown)
{
	struct lost_page *pages = NULL;
	size_t n = 0, cap = 0;
	off_t off = 0;

	while ((off = lseek(table_fd, off, SEEK_DATA)) >= 0 && (size_t)off < len) {
		off_t end = lseek(table_fd, off, SEEK_HOLE);

		if (end < 0 || (size_t)end > len)
			end = (off_t)len;
		for (size_t i = (size_t)off / sizeof(*table); i < (size_t)end / sizeof(*table); i++) {
			uint64_t va = atomic_load_explicit(&table[i].vaddr, memory_order_acquire);
			const uint8_t *src;

			if (!(va & RESCUE_VALID))
				continue;
			src = store_page(table[i].store, i % dev_pages);
			if (!src) {
				(*unknown)++;
				continue;
			}
			if (n == cap) {
				struct lost_page *p;

				cap = cap ? 2 * cap : 1024;
				p = realloc(pages, cap * sizeof(*p));
				if (!p) {
					free(pages);
					return -ENOMEM;
				}
				pages = p;
			}
			pages[n++] = (struct lost_page){ .vaddr = va & ~(PAGE - 1), .src = src };
		}
		off = end;
	}
	*out = pages;
	*nout = n;
	return 0;
}

static void rescue_run(void)
{
	const size_t len = (size_t)ndevices * dev_pages * sizeof(struct rescue_entry);
	struct lost_page *pages = NULL;
	size_t n = 0, copied = 0, unknown = 0;
	void *table;
	int ret;

	pthread_mutex_lock(&rescue_lock);
	table = mmap(NULL, len, PROT_READ, MAP_SHARED, table_fd, 0);
	ret = table == MAP_FAILED ? -errno : map_stores();
	if (!ret)
		ret = gather_pages(table, len, &pages, &n, &unknown);
	if (!ret)
		copied = put_pages_back(pages, n);
	/* The last reference to the uffd: the kernel unregisters every range,
	 * drops the write protection zdevd may have left, and wakes every
	 * fault, which the plain page tables now serve. */
	close(own_uffd);
	own_uffd = -1;
	free(pages);
	if (table != MAP_FAILED)
		munmap(table, len);
	for (size_t i = 0; i < nstores; i++) {
		if (stores[i].map)
			munmap((void *)stores[i].map, dev_pages * PAGE);
		close(stores[i].fd);
	}
	nstores = 0;
	close(table_fd);
	table_fd = -1;
	pthread_mutex_unlock(&rescue_lock);
	if (ret)
		fprintf(stderr, "libzdev: zdevd is gone and device pages could not be read back: %s\n",
			strerror(-ret));
	else
		fprintf(stderr, "libzdev: zdevd is gone; %zu device pages copied back%s, going on without a device\n",
			copied, unknown ? " (some in no store held here)" : "");
}

static void *agent_main(void *arg)
{
	struct pollfd p = { .fd = (int)(intptr_t)arg, .events = POLLIN };

	/* The pidfd turns readable when zdevd has exited, however it died. */
	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	atomic_store_explicit(&lost, true, memory_order_release);
	rescue_run();
	return NULL;
}

static int start_agent(int pidfd)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The program's signals are not for the agent. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&t, &attr, agent_main, (void *)(intptr_t)pidfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return ret;
}

static int daemon_pidfd_of(int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	int fd;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	fd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
	return fd < 0 ? -errno : fd;
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

void zrescue_attach(struct zclient *c)
{
	uint64_t info = 0;
	int fd;

	pthread_mutex_lock(&rescue_lock);
	if (agent_for == getpid())
		goto out_unlock;
	daemon_pidfd = daemon_pidfd_of(c->sock);
	if (daemon_pidfd < 0)
		goto out_give_up;
	if (own_uffd < 0) {
		/* A fork child's uffd came to zdevd with the fork event. */
		own_uffd = ask_rescue(c, RESCUE_UFFD, 0, NULL);
		if (own_uffd < 0)
			goto out_give_up;
	}
	fd = ask_rescue(c, RESCUE_TABLE, 0, &info);
	if (fd < 0 || !info) {
		if (fd >= 0)
			close(fd);
		goto out_give_up;
	}
	table_fd = fd;
	dev_pages = info;
	ndevices = c->ndevices;
	if (start_agent(daemon_pidfd))
		goto out_give_up;
	agent_for = getpid();
	goto out_unlock;

out_give_up:
	give_up_locked();
out_unlock:
	pthread_mutex_unlock(&rescue_lock);
}

void zrescue_add_store(struct zclient *c, unsigned int dev)
{
	uint64_t id = 0;
	int fd;

	if (dev >= ZDEV_MAX_DEVICES)
		return;
	pthread_mutex_lock(&rescue_lock);
	if (agent_for != getpid() || own_store[dev])
		goto out_unlock;
	fd = ask_rescue(c, RESCUE_STORE, dev, &id);
	if (fd < 0)
		goto out_unlock;
	if (add_held_store(id, fd)) {
		close(fd);
		goto out_unlock;
	}
	own_store[dev] = id;
out_unlock:
	pthread_mutex_unlock(&rescue_lock);
}

void zrescue_atfork_child(void)
{
	/* Another thread of the parent may have held it. */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	memcpy(&rescue_lock, &fresh, sizeof(fresh));
	give_up_locked();
	memset(own_store, 0, sizeof(own_store));
	agent_for = 0;
}
