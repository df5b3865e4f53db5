/* SPDX-License-Identifier: MIT */
/*
 * The process's one connection to zdevd, shared by every device handle: the
 * handshake, the uffd and its ownership proof, and request/reply exchanges.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/anonymize.h"
#include "lib/client.h"
#include "lib/own.h"
#include "lib/rescue.h"
#include "lib/xmap.h"
#include "page.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdev.h"

#ifdef __SANITIZE_THREAD__
/* ThreadSanitizer cannot start a thread in a fork child of a threaded
 * process (a lock of its own may be held by a thread that did not come
 * along): there the agent waits for the child's first call. */
#define AGENT_IN_FORK_CHILD 0
#else
#define AGENT_IN_FORK_CHILD 1
#endif

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client *current_client;
/* Set in the parent just before fork, by every thread that forks: atomic,
 * though all of them store the same pid. */
static _Atomic pid_t forking_pid;
/* Forks under way in this process whose parent zdevd gets no fork event:
 * from the prepare handler's FORK_PREPARE until the fork returns, nothing
 * may go to a device (see client_atfork_prepare). */
static atomic_int forks_without_event;
/* This thread's fork raised it (pthread_atfork runs in the forking thread). */
static __thread bool fork_counted;
/* How long a fork child whose claim failed waits to see zdevd exit. */
#define FORK_CLAIM_WAIT_MS 2000
/* How long a fork without an event waits for pages zdevd did not bring home. */
#define FORK_HOME_WAIT_MS 2000
/* The connection whose lock this thread's fork holds (a fork event's). */
static __thread struct client *fork_locked;
/* Our uffd serves kernel-mode faults: it was made without
 * UFFD_USER_MODE_ONLY. A fork child with a fork event inherits the kind. */
static atomic_bool uffd_kernel_faults;

/* A store zdevd hands over, with fd: where our pages will live, kept for a
 * rescue. Answered STORED; 0 or the send's -errno. */
static int take_store(struct client *c, union zmsg *m, int fd)
{
	if (fd >= 0 && !rescue_take_store(m->store.device, m->store.id, fd))
		close(fd);
	m->store.status = 0;
	m->hdr.type = ZMSG_STORED;
	return zmsg_send(c->sock, m, -1);
}

/* The zap a migration asks for. Only we can zap our memory. The kernel holds
 * us in madvise until zdevd has read the REMOVE event; zdevd never waits on
 * us for that, so this cannot deadlock. */
static void zap(struct zmsg_zap *z)
{
	if (!rescue_zap_begin()) {
		z->status = -ENODEV;
		return;
	}
	z->status = madvise((void *)(uintptr_t)z->addr, z->len, MADV_DONTNEED) ? -errno : 0;
	rescue_zap_end();
}

/*
 * True when m is a request zdevd makes of us in the middle of an exchange:
 * then it is done and answered, and *err is the answer's send (0 or
 * -errno). False for anything else, which ends the exchange.
 */
static bool serve_daemon(struct client *c, union zmsg *m, int type, int *err)
{
	switch (type) {
	case ZMSG_XMAP:
		/* Only we can mprotect ourselves (exclusive access). */
		xmap_serve(&m->xmap);
		break;
	case ZMSG_ANONYMIZE:
		m->zap.status = anonymize_mapping(m->zap.addr, m->zap.len, m->zap.prot);
		m->hdr.type = ZMSG_ANONYMIZED;
		break;
	case ZMSG_ZAP:
		zap(&m->zap);
		m->hdr.type = ZMSG_ZAPPED;
		break;
	default:
		return false;
	}
	*err = zmsg_send(c->sock, m, -1);
	return true;
}

static bool moves_to_device(int type)
{
	return type == ZMSG_MIGRATE_TO_DEV || type == ZMSG_EXCLUSIVE_HELD;
}

/* err, from a send or receive on c: if it says the connection is gone
 * (zdevd closed it, or died), the session is over, and the call says so
 * with as. */
static int connection_lost(struct client *c, int err, int as)
{
	switch (err) {
	case -EPIPE:
	case -ECONNRESET:
	case -ENOTCONN:
	case -EBADF:
		c->broken = true;
		return as;
	default:
		return err;
	}
}

/* Sends a request and waits for its answer, serving what zdevd asks of us
 * in between. Caller holds c->lock. */
int client_call_fd(struct client *c, union zmsg *req, union zmsg *rep, int fd, int *rep_fd)
{
	const int req_type = req->hdr.type;
	int ret, type;

	if (rep_fd)
		*rep_fd = -1;
	if (c->broken || rescue_daemon_lost()) {
		c->broken = true;
		return -ENODEV;
	}
	/* Read under c->lock, which the fork's prepare handler takes after
	 * raising the count: a migration either ended before its
	 * FORK_PREPARE or sees the count. It then fails as one that found
	 * every page busy does. */
	if (moves_to_device(req_type) && atomic_load(&forks_without_event)) {
		zmsg_init(rep, ZMSG_REPLY, req->hdr.seq);
		rep->reply.status = -ENOENT;
		return ZMSG_REPLY;
	}
	req->hdr.seq = ++c->seq;
	if (moves_to_device(req_type))
		rescue_migration_begin(req->req.addr, req->req.npages * PG_SIZE);
	ret = zmsg_send(c->sock, req, fd);
	if (ret) {
		/* It never left: nothing of it can be zdevd's. */
		if (moves_to_device(req_type))
			rescue_migration_end();
		return connection_lost(c, ret, -ENOTCONN);
	}
	for (;;) {
		int rfd = -1;

		type = zmsg_recv(c->sock, rep, &rfd);
		if (type == ZMSG_STORE) {
			ret = take_store(c, rep, rfd);
			if (ret)
				return connection_lost(c, ret, -ENODEV);
			continue;
		}
		if (rfd >= 0 && rep_fd && type == ZMSG_REPLY)
			*rep_fd = rfd;
		else if (rfd >= 0)
			close(rfd);
		if (type < 0)
			return connection_lost(c, type, -ENODEV);
		if (!serve_daemon(c, rep, type, &ret))
			break;
		if (ret)
			return connection_lost(c, ret, -ENODEV);
	}
	/* Only a reply ends it: if zdevd died, the rescue still needs it. */
	if (type == ZMSG_REPLY && moves_to_device(req_type))
		rescue_migration_end();
	if (rep->hdr.seq != req->hdr.seq) {
		if (rep_fd && *rep_fd >= 0) {
			close(*rep_fd);
			*rep_fd = -1;
		}
		return -EPROTO;
	}
	return type;
}

int client_call(struct client *c, union zmsg *req, union zmsg *rep, int fd)
{
	return client_call_fd(c, req, rep, fd, NULL);
}

static int make_uffd(int devnode)
{
	int fd = -1;

	if (devnode >= 0)
		fd = ioctl(devnode, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	/* Without the node, a uffd that serves kernel-mode faults needs
	 * privilege; a user-mode-only one always works. */
	if (fd < 0)
		fd = uffd_create(0);
	atomic_store(&uffd_kernel_faults, fd >= 0);
	xmap_populate_by_touch(fd < 0);
	if (fd < 0)
		fd = uffd_create(UFFD_USER_MODE_ONLY);
	return fd;
}

/*
 * A fork child: maps the proof page zdevd named and sends UFFD without an
 * fd; zdevd finds which of our parent's fork events brought our uffd. Only
 * system calls, no allocation: it also runs in the atfork handler. The
 * reply's status, or -errno.
 */
static int prove_fork(int sock, uint64_t proof_addr)
{
	union zmsg m;
	void *proof;
	int type;

	proof = mmap((void *)(uintptr_t)proof_addr, PG_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (proof == MAP_FAILED)
		return -errno;
	if (proof != (void *)(uintptr_t)proof_addr) {
		munmap(proof, PG_SIZE);
		return -EADDRINUSE;
	}
	zmsg_init(&m, ZMSG_UFFD, 2);
	m.req.addr = proof_addr;
	type = zmsg_send(sock, &m, -1);
	if (!type)
		type = zmsg_recv(sock, &m, NULL);
	munmap(proof, PG_SIZE);
	if (type < 0)
		return type;
	return type == ZMSG_REPLY ? m.reply.status : -EPROTO;
}

static int hand_over_uffd(struct client *c, const struct zmsg_hello_ok *ok, int devnode)
{
	union zmsg req, rep;
	void *proof;
	int uffd, ret;

	uffd = make_uffd(devnode);
	if (uffd < 0)
		return uffd;
	/* The proof page: zdevd resolves it through the uffd and reads it
	 * back through our memory. It must not be touched before that. */
	proof = mmap((void *)(uintptr_t)ok->proof_addr, PG_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (proof == MAP_FAILED || (uintptr_t)proof != ok->proof_addr) {
		ret = proof == MAP_FAILED ? -errno : -EADDRINUSE;
		if (proof != MAP_FAILED)
			munmap(proof, PG_SIZE);
		goto out_close;
	}
	zmsg_init(&req, ZMSG_UFFD, 0);
	req.req.addr = ok->proof_addr;
	ret = client_call(c, &req, &rep, uffd);
	munmap(proof, PG_SIZE);
	if (ret >= 0)
		ret = ret == ZMSG_REPLY ? rep.reply.status : -EPROTO;
	/* Kept: if zdevd dies, ours keeps the registrations (and so the
	 * device pages' faults) waiting for the rescue instead of reading
	 * zeros. */
	if (!ret && rescue_keep_uffd(uffd))
		return 0;
out_close:
	close(uffd);
	return ret;
}

static int handshake(struct client *c, bool forked)
{
	union zmsg req, rep;
	int devnode = -1, type, ret;

	zmsg_init(&req, ZMSG_HELLO, ++c->seq);
	req.hello.version = ZDEV_PROTO_VERSION;
	req.hello.pid = getpid();
	req.hello.flags = forked ? ZHELLO_FORKED : 0;
	req.hello.parent_pid = forked ? atomic_load_explicit(&forking_pid, memory_order_relaxed) : 0;
	ret = zmsg_send(c->sock, &req, -1);
	if (ret)
		return ret;
	type = zmsg_recv(c->sock, &rep, &devnode);
	if (type < 0)
		return type;
	if (type != ZMSG_HELLO_OK) {
		ret = -EPROTO;
		goto out_close;
	}
	ret = rep.hello_ok.status;
	if (ret)
		goto out_close;
	c->ndevices = rep.hello_ok.ndevices;
	memcpy(c->memory_type, rep.hello_ok.memory_type, sizeof(c->memory_type));
	atomic_store(&c->features, rep.hello_ok.features);
	c->daemon_pid = rep.hello_ok.daemon_pid;
	/* Under Yama's ptrace_scope 1 zdevd may read our memory only if we
	 * say so. */
	prctl(PR_SET_PTRACER, (unsigned long)c->daemon_pid, 0, 0, 0);
	if (rep.hello_ok.features & ZFEAT_PROVE_FORK)
		ret = prove_fork(c->sock, rep.hello_ok.proof_addr);
	else if (!(rep.hello_ok.features & ZFEAT_HAVE_MM))
		ret = hand_over_uffd(c, &rep.hello_ok, devnode);
out_close:
	if (devnode >= 0)
		close(devnode);
	return ret;
}

static void client_free(struct client *c)
{
	if (c->sock >= 0)
		close(c->sock);
	pthread_mutex_destroy(&c->lock);
	own_free(c, sizeof(*c));
}

/* Crash survival, once a session (caller holds c->lock, or has c to
 * itself): the agent's two RESCUE exchanges take the connection's next two
 * sequence numbers. */
static void attach_rescue(struct client *c)
{
	if (rescue_attached())
		return;
	rescue_attach(c->sock, c->seq + 1, c->daemon_pid, c->ndevices);
	c->seq += 2;
}

int client_connect(struct client *c, bool forked)
{
	int ret = -ENOTCONN;

	/* The handshake's own exchanges go through client_call. */
	c->broken = false;
	/* A proof address that happens to be taken here: ask for another. */
	for (int attempt = 0; attempt < 3; attempt++) {
		c->sock = zmsg_connect(c->path);
		ret = c->sock < 0 ? c->sock : handshake(c, forked);
		if (ret != -EEXIST && ret != -EADDRINUSE)
			break;
		close(c->sock);
		c->sock = -1;
	}
	if (ret) {
		if (c->sock >= 0)
			close(c->sock);
		c->sock = -1;
		c->broken = true;
		return ret;
	}
	c->session++;
	/* Without it the process only loses crash survival. */
	attach_rescue(c);
	return 0;
}

int client_get(const char *path, struct client **out)
{
	char def[108];
	struct client *c;
	bool forked = false;
	int ret;

	pthread_mutex_lock(&sessions_lock);
	c = current_client;
	if (c && c->pid != getpid()) {
		/* We are a fork child: the parent's connection is not ours,
		 * but our uffd came to zdevd with the fork event, if zdevd
		 * gets them; else we are a new client. */
		forked = atomic_load(&c->features) & ZFEAT_FORK_EVENTS;
		current_client = NULL;
		client_free(c);
		c = NULL;
	}
	if (c) {
		c->refs++;
		*out = c;
		pthread_mutex_unlock(&sessions_lock);
		return 0;
	}
	if (!path) {
		ret = proto_default_socket(def, sizeof(def));
		if (ret)
			goto out_unlock;
		path = def;
	}
	/* Every handle was closed, and then zdevd was lost: its rescue ends
	 * before a new session begins (its uffd still holds our ranges). */
	if (rescue_daemon_lost())
		rescue_settle(RESCUE_SETTLE_MS);
	ret = -ENOMEM;
	c = own_alloc(sizeof(*c));
	if (!c)
		goto out_unlock;
	pthread_mutex_init(&c->lock, NULL);
	c->sock = -1;
	c->pid = getpid();
	c->refs = 1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	ret = client_connect(c, forked);
	if (ret) {
		client_free(c);
		goto out_unlock;
	}
	current_client = c;
	*out = c;
out_unlock:
	pthread_mutex_unlock(&sessions_lock);
	return ret;
}

void client_put(struct client *c)
{
	bool last;

	pthread_mutex_lock(&sessions_lock);
	last = --c->refs == 0;
	if (last && current_client == c)
		current_client = NULL;
	pthread_mutex_unlock(&sessions_lock);
	if (last)
		client_free(c);
}

/*
 * In a fork child (pthread_atfork): tell zdevd our pid, so it pairs us with
 * the uffd our parent's fork event brought and watches us exit. Besides
 * system calls, only the agent's start allocates: glibc makes malloc and
 * pthread_create usable in a fork child, whatever threads the parent had.
 */
/*
 * With fork events: the fork shares device pages, and a coherent device's
 * pages stay mapped in both processes, so zdevd write-protects them first
 * (the kernel's fork write-protects them) to see each process's first write
 * after it: its copy-on-write. Only a zdevd with a coherent device is asked.
 * The connection's lock is taken without the sessions lock, which a session
 * starting would take inside it.
 */
static void prepare_coherent_fork(struct client *c)
{
	union zmsg req, rep;
	bool coherent = false;

	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < c->ndevices && i < ZDEV_MAX_DEVICES; i++)
		coherent |= c->memory_type[i] == ZDEV_MEMORY_DEVICE_COHERENT;
	if (coherent && c->sock >= 0 && !c->broken) {
		zmsg_init(&req, ZMSG_FORK_PREPARE, 0);
		client_call(c, &req, &rep, -1);
	}
	pthread_mutex_unlock(&c->lock);
}

void client_atfork_prepare(void)
{
	struct client *c;
	union zmsg req, rep;
	bool failed;
	int ret;

	atomic_store_explicit(&forking_pid, getpid(), memory_order_relaxed);
	pthread_mutex_lock(&sessions_lock);
	c = current_client;
	if (!c || c->pid != getpid()) {
		pthread_mutex_unlock(&sessions_lock);
		return;
	}
	c->refs++;
	pthread_mutex_unlock(&sessions_lock);
	if (atomic_load(&c->features) & ZFEAT_FORK_EVENTS) {
		prepare_coherent_fork(c);
		/* Held until the fork returns: the pages listed for the child
		 * are all it misses (rescue_fork_begin). */
		pthread_mutex_lock(&c->lock);
		rescue_fork_begin();
		fork_locked = c;
		return;
	}
	/*
	 * zdevd will get no fork event: the child's copy of every mapping
	 * loses its registration, and a page left on the device would read as
	 * zeros there. Nothing goes out from now on (client_call_fd), and
	 * every page comes home. If that fails, zdevd is gone or going, and
	 * pages come home as it exits or through the rescue, which may not
	 * have begun yet: the connection breaks before zdevd's pidfd tells
	 * the agent. The fork waits for them, or the child would read zeros.
	 */
	atomic_fetch_add(&forks_without_event, 1);
	fork_counted = true;
	zmsg_init(&req, ZMSG_FORK_PREPARE, 0);
	pthread_mutex_lock(&c->lock);
	ret = client_call(c, &req, &rep, -1);
	failed = ret != ZMSG_REPLY || rep.reply.status;
	pthread_mutex_unlock(&c->lock);
	client_put(c);
	if (failed && rescue_fork_wait_home(FORK_HOME_WAIT_MS))
		fprintf(stderr, "libzdev: zdevd went away as this process forked; the child may "
				"miss pages left on a device\n");
}

void client_atfork_parent(void)
{
	struct client *c = fork_locked;

	fork_locked = NULL;
	if (c) {
		rescue_fork_parent();
		pthread_mutex_unlock(&c->lock);
		client_put(c);
	}
	if (fork_counted)
		atomic_fetch_sub(&forks_without_event, 1);
	fork_counted = false;
}

bool client_kernel_faults(void)
{
	return atomic_load(&uffd_kernel_faults);
}

/* Pairs us with the uffd our parent's fork event brought to zdevd, and
 * starts our agent: true if zdevd paired us. */
static bool claim_fork(struct client *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	bool claimed = false;
	union zmsg m;
	int fd;

	memcpy(sa.sun_path, c->path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		zmsg_init(&m, ZMSG_HELLO, 1);
		m.hello.version = ZDEV_PROTO_VERSION;
		m.hello.pid = getpid();
		m.hello.parent_pid = atomic_load_explicit(&forking_pid, memory_order_relaxed);
		m.hello.flags = ZHELLO_FORKED;
		/* Without a fork event (the parent had nothing registered)
		 * there is nothing to claim: the child becomes a client of
		 * its own when it opens a device. */
		/* Once claimed, the child keeps its own uffd and table and
		 * runs its own agent at once: it may never call us again, and
		 * the pages it shares with its parent must survive zdevd. */
		claimed = !zmsg_send(fd, &m, -1) && zmsg_recv(fd, &m, NULL) == ZMSG_HELLO_OK &&
			  (m.hello_ok.features & ZFEAT_PROVE_FORK) &&
			  !prove_fork(fd, m.hello_ok.proof_addr);
		if (claimed && AGENT_IN_FORK_CHILD)
			rescue_attach_forked(fd, m.hello_ok.daemon_pid, m.hello_ok.ndevices);
	}
	close(fd);
	return claimed;
}

/* True when the zdevd of pid has exited within wait_ms, or its pid is no
 * process's any more. */
static bool daemon_gone(pid_t pid, int wait_ms)
{
	struct pollfd p = { .events = POLLIN };
	bool gone;

	if (pid <= 0)
		return true;
	p.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p.fd < 0)
		return errno == ESRCH;
	/* A pidfd is readable once its process has exited, reaped or not. */
	gone = poll(&p, 1, wait_ms) > 0;
	close(p.fd);
	return gone;
}

void client_atfork_child(void)
{
	struct client *c = current_client;
	const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	bool claimed, gone;

	rescue_atfork_child();
	/* The forks of other threads of the parent stay theirs. */
	atomic_store(&forks_without_event, 0);
	fork_counted = false;
	if (fork_locked) {
		/* Held by the thread we are a copy of, which is not here. */
		memcpy(&fork_locked->lock, &fresh, sizeof(fresh));
		fork_locked = NULL;
	}
	if (!c)
		return;
	/* The parent's connection is the parent's. */
	close(c->sock);
	c->sock = -1;
	if (!(atomic_load(&c->features) & ZFEAT_FORK_EVENTS))
		return;	/* no uffd of ours at zdevd to claim */
	claimed = claim_fork(c);
	/* Only an agent of ours keeps our uffd, and our pages, from going
	 * with zdevd. A claim that failed, or an agent that did not start,
	 * is most likely zdevd dying: it is given the time to finish, when
	 * there are device pages to lose. A parent with nothing registered
	 * raised no fork event, so zdevd has nothing for us to claim, and
	 * every fork of a shell would otherwise wait here. */
	if (rescue_fork_has_pages() && (!claimed || (AGENT_IN_FORK_CHILD && !rescue_attached())))
		gone = daemon_gone(c->daemon_pid, FORK_CLAIM_WAIT_MS);
	else
		gone = daemon_gone(c->daemon_pid, 0);
	rescue_fork_child(gone);
}
