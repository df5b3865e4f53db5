/* SPDX-License-Identifier: MIT */
/*
 * A connected client's messages: the handshake, the uffd and its proof, and
 * the requests. They run on a worker (workers.c), not on the event loop: a
 * device access may touch the client's memory and wait for a fault that only
 * the event loop can serve, and a migration waits for the client to zap.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devset.h"
#include "exclusive_map.h"
#include "log.h"
#include "migrate.h"
#include "mirror.h"
#include "page.h"
#include "store.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdev.h"
#include "zdevd/clients.h"
#include "zdevd/model_wait.h"
#include "zdevd/peer.h"
#include "zdevd/proof.h"
#include "zdevd/session.h"
#include "zdevd/status.h"
#include "zdevd/unplug.h"
#include "zmm.h"

#define ACCESS_WINDOW 4096ul	/* pages a device access handles at once */
/* Tries of an access window that met uffd events still unread (-EAGAIN),
 * and the pause between them. */
#define ACCESS_RETRIES 50
#define ACCESS_RETRY_US 1000

/* A connection logs one warning, about the first thing zdevd refused it: a
 * client that goes on sending what is refused does not fill the log, nor
 * does one that connects again for each (log_client). */
#define session_warn(s, fmt, ...)                                                      \
	do {                                                                           \
		if (!(s)->warned) {                                                    \
			(s)->warned = true;                                            \
			log_client_warn("pid %d: " fmt, (int)(s)->pid, ##__VA_ARGS__); \
		}                                                                      \
	} while (0)

/* A REPLY whose value and faults, if any, the caller fills in. */
static void reply_init(union zmsg *m, uint64_t seq, int status)
{
	zmsg_init(m, ZMSG_REPLY, seq);
	m->reply.status = status;
}

static int reply_status(struct session *s, uint64_t seq, int status)
{
	union zmsg m;

	reply_init(&m, seq, status);
	return zmsg_send(s->sock, &m, -1);
}

/* The reply to a request that reaches pages: cpages and faults, the test
 * driver's counts. */
static int reply_pages(struct session *s, uint64_t seq, int status, uint64_t cpages,
		       uint64_t faults)
{
	union zmsg m;

	reply_init(&m, seq, status);
	m.reply.cpages = cpages;
	m.reply.faults = faults;
	return zmsg_send(s->sock, &m, -1);
}

static int check_range(uint64_t addr, uint64_t npages)
{
	if (!npages || (addr & (PG_SIZE - 1)))
		return -EINVAL;
	/* No overflow, and within what a 57-bit address space can hold. */
	if (npages > (1ull << 45) || addr + npages * PG_SIZE <= addr || addr + npages * PG_SIZE > (1ull << 57))
		return -EINVAL;
	return 0;
}

/* ---- handshake ---- */

static int on_hello(struct session *s, const struct zmsg_hello *h)
{
	union zmsg m;
	int devnode = -1, ret;

	zmsg_init(&m, ZMSG_HELLO_OK, h->hdr.seq);
	m.hello_ok.version = ZDEV_PROTO_VERSION;
	m.hello_ok.ndevices = s->d->devs.ndevices;
	for (unsigned int i = 0; i < s->d->devs.ndevices; i++)
		m.hello_ok.memory_type[i] = (uint8_t)s->d->devs.dev[i].memtype;
	m.hello_ok.daemon_pid = getpid();
	m.hello_ok.features = status_features(s->d) & ZFEAT_FORK_EVENTS;
	if (h->version != ZDEV_PROTO_VERSION)
		m.hello_ok.status = -EPROTO;
	else if (h->pid != s->pid) {
		m.hello_ok.status = -EPERM;	/* it must speak for itself */
		session_warn(s, "HELLO for pid %d: refused", (int)h->pid);
	}
	if (m.hello_ok.status)
		return zmsg_send(s->sock, &m, -1) ?: m.hello_ok.status;

	s->hello = true;
	/* A process zdevd serves already (it closed every handle and opens
	 * one again, or opens a second line for its signal handler) keeps its
	 * one uffd: its registrations are that uffd's. */
	s->mm = clients_find_live(s->d, s->pid);
	if (!s->mm && (h->flags & ZHELLO_AUX)) {
		/* A second line needs a process we know. */
		m.hello_ok.status = -ENOENT;
		return zmsg_send(s->sock, &m, -1) ?: -ENOENT;
	}
	if (s->mm) {
		m.hello_ok.features |= ZFEAT_HAVE_MM;
	} else if ((h->flags & ZHELLO_FORKED) && h->parent_pid > 0 &&
		   clients_fork_pending(s->d, h->parent_pid)) {
		/* A child whose uffd came with a fork event of its parent:
		 * its proof page tells which. */
		s->fork_parent = h->parent_pid;
		s->proof_addr = proof_pick_addr();
		m.hello_ok.proof_addr = s->proof_addr;
		m.hello_ok.features |= ZFEAT_PROVE_FORK;
	} else {
		s->proof_addr = proof_pick_addr();
		m.hello_ok.proof_addr = s->proof_addr;
		if (s->d->devnode_ok) {
			devnode = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
			if (devnode >= 0)
				m.hello_ok.features |= ZFEAT_KERNEL_FAULTS;
		}
	}
	ret = zmsg_send(s->sock, &m, devnode);
	if (devnode >= 0)
		close(devnode);
	return ret;
}

/* A fork child proved which of its parent's fork events' uffds is its own. */
static int claim_fork_uffd(struct session *s, uint64_t proof_addr)
{
	s->mm = clients_claim_fork(s->d, s->pid, s->fork_parent, proof_addr);
	if (!s->mm) {
		session_warn(s, "no fork event of pid %d has its uffd", (int)s->fork_parent);
		return -EPERM;
	}
	return 0;
}

static int take_uffd(struct session *s, int fd, uint64_t proof_addr)
{
	uint64_t got = 0;
	struct zmm *mm;
	int ret;

	if (s->mm || !s->proof_addr || proof_addr != s->proof_addr) {
		session_warn(s, "UFFD with no proof address of this connection's: refused");
		return -EINVAL;
	}
	s->proof_addr = 0;	/* one attempt per address */
	if (s->fork_parent)
		return fd < 0 ? claim_fork_uffd(s, proof_addr) : -EINVAL;
	if (fd < 0)
		return -EINVAL;
	/* Our handshake: a uffd whose API was already set (by a client that
	 * wants other semantics, or not a fresh uffd at all) is refused. */
	ret = uffd_handshake(fd, s->d->devs.uffd_features, &got, NULL);
	if (ret) {
		session_warn(s, "the fd sent as its uffd is no fresh userfaultfd: refused");
		return ret == -EINVAL ? -EBADF : ret;
	}
	if ((got & s->d->devs.uffd_features) != s->d->devs.uffd_features)
		return -EOPNOTSUPP;
	ret = proof_check(fd, s->pid, proof_addr);
	if (ret) {
		session_warn(s, "its uffd failed the ownership proof");
		return ret;
	}
	/* io_uring needs O_NONBLOCK to arm its poll on a uffd. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ret = zmm_create(&s->d->devs, s->pid, s->uid, fd, &mm);
	if (ret)
		return ret;
	clients_add(s->d, mm);
	ret = loop_watch_mm(s->d, mm);
	if (ret) {
		clients_exit(s->d, mm);
		mm->uffd = -1;	/* the caller closes fd */
		zmm_put(mm);
		return ret;
	}
	s->mm = mm;
	return 0;
}

/* ---- requests ---- */

/* RESCUE: the fd is sent with the reply; the mm keeps its own. */
static int on_rescue(struct session *s, const struct zmsg_req *r)
{
	struct zmm *mm = s->mm;
	uint64_t info = 0;
	int fd = -1, ret = 0;
	union zmsg m;

	if (!mm)
		return reply_status(s, r->hdr.seq, -ENOTCONN);
	switch (r->arg) {
	case RESCUE_TABLE:
		fd = mm->stores.table_fd;
		info = s->d->devs.dev[0].dev_pages;
		break;
	case RESCUE_UFFD:
		fd = mm->uffd;
		break;
	default:
		ret = -EINVAL;
	}
	if (!ret && fd < 0)
		ret = -EBADF;
	reply_init(&m, r->hdr.seq, ret);
	m.reply.dev_pages = ret ? 0 : info;
	return zmsg_send(s->sock, &m, ret ? -1 : fd);
}

/* Sends m to the client, in the middle of its request, and takes its
 * answer into m, which must be of type want: 0, or -errno. */
static int ask_client(struct session *s, union zmsg *m, int want)
{
	int type = zmsg_send(s->sock, m, -1);

	if (type)
		return type;
	type = zmsg_recv(s->sock, m, NULL);
	if (type < 0)
		return type;
	return type == want ? 0 : -EPROTO;
}

/* ZAP or ANONYMIZE: what the client did, or -errno. */
static int ask_mapping_change(struct session *s, int type, int answer, uint64_t addr, uint64_t len,
			      unsigned int prot)
{
	union zmsg m;
	int ret;

	zmsg_init(&m, type, 0);
	m.zap.addr = addr;
	m.zap.len = len;
	m.zap.prot = prot;
	ret = ask_client(s, &m, answer);
	if (ret)
		return ret;
	if (m.zap.addr != addr || m.zap.len != len)
		return -EPROTO;
	return m.zap.status;
}

static int session_zap(void *ctx, uint64_t addr, uint64_t len)
{
	return ask_mapping_change(ctx, ZMSG_ZAP, ZMSG_ZAPPED, addr, len, 0);
}

static int session_anonymize(void *ctx, uint64_t addr, uint64_t len, unsigned int prot)
{
	return ask_mapping_change(ctx, ZMSG_ANONYMIZE, ZMSG_ANONYMIZED, addr, len, prot);
}

static int session_give_store(void *ctx, unsigned int dev, int fd, uint64_t id)
{
	struct session *s = ctx;
	union zmsg m;
	int ret;

	zmsg_init(&m, ZMSG_STORE, 0);
	m.store.device = dev;
	m.store.id = id;
	ret = zmsg_send(s->sock, &m, fd);
	if (ret)
		return ret;
	ret = zmsg_recv(s->sock, &m, NULL);
	if (ret < 0)
		return ret;
	/* A client that cannot keep it only gives up surviving zdevd. */
	return ret != ZMSG_STORED || m.store.id != id ? -EPROTO : 0;
}

static const struct migrate_client session_client = {
	.zap = session_zap,
	.anonymize = session_anonymize,
	.give_store = session_give_store,
};

/* Asks the client to change its exclusive-page map (only it can mprotect
 * itself), the way session_zap asks it to zap. */
static int session_xmap(void *ctx, const struct zmsg_xmap *ask, uint64_t *done)
{
	struct session *s = ctx;
	union zmsg m;
	int ret;

	zmsg_init(&m, ZMSG_XMAP, 0);
	m.xmap.op = ask->op;
	m.xmap.addr = ask->addr;
	m.xmap.len = ask->len;
	m.xmap.device = ask->device;
	m.xmap.prot = ask->prot;
	m.xmap.flags = ask->flags;
	ret = ask_client(s, &m, ZMSG_XMAP_DONE);
	if (ret)
		return ret;
	if (m.xmap.op != ask->op || m.xmap.addr != ask->addr || m.xmap.len > ask->len)
		return -EPROTO;
	*done = m.xmap.len;
	return m.xmap.status > 0 ? -EPROTO : m.xmap.status;
}

static int device_access(struct session *s, const struct zmsg_req *r, int type, uint64_t *cpages,
			 uint64_t *faults)
{
	uint64_t done = 0, c = 0, f = 0;
	int ret = 0;

	*cpages = *faults = 0;
	while (done < r->npages && !ret) {
		uint64_t n = r->npages - done < ACCESS_WINDOW ? r->npages - done : ACCESS_WINDOW;
		uint64_t addr = r->addr + done * PG_SIZE;

		for (int tries = 0;; tries++) {
			if (type == ZMSG_SNAPSHOT)
				ret = mirror_snapshot(s->mm, r->device, addr, n, r->buf + done, &c);
			else
				ret = mirror_access(s->mm, r->device, addr, n,
						    r->buf + done * PG_SIZE, type == ZMSG_WRITE, &c,
						    &f);
			/* -EAGAIN: a page brought back met uffd events still
			 * unread, and the wait gave up holding mm->lock, which
			 * the loop may need to read them. The lock is free
			 * now: the window again, which changes nothing twice. */
			if (ret != -EAGAIN || tries == ACCESS_RETRIES)
				break;
			usleep(ACCESS_RETRY_US);
		}
		done += n;
		*cpages += c;
		*faults |= f;	/* one fault round for the whole range */
	}
	return ret;
}

static void fill_stats(struct session *s, unsigned int dev, union zmsg *m)
{
	struct zmm_counters *c = &s->mm->cnt[dev];
	struct refpool_stats ps;
	struct lathist_snap lat;

	excl_sync_all(s->mm);	/* count the revocations made so far */
	refpool_get_stats(s->d->devs.dev[dev].pool, &ps);
	m->stats_ok.cpu_faults = atomic_load(&c->cpu_faults);
	m->stats_ok.device_faults = atomic_load(&c->device_faults);
	m->stats_ok.pages_to_device = atomic_load(&c->pages_to_device);
	m->stats_ok.pages_to_system = atomic_load(&c->pages_to_system);
	m->stats_ok.device_pages = atomic_load(&c->device_pages);
	m->stats_ok.exclusive_grants = atomic_load(&c->exclusive_grants);
	m->stats_ok.exclusive_revokes = atomic_load(&c->exclusive_revokes);
	m->stats_ok.pool_pages_total = ps.pages_total;
	m->stats_ok.pool_pages_used = ps.pages_used;
	m->stats_ok.pool_limit_pages = ps.limit_pages;
	m->stats_ok.peak_device_pages = atomic_load(&c->peak_device_pages);
	lathist_read(&s->mm->fault_lat, &lat);
	m->stats_ok.fault_p50_ns = lathist_percentile(&lat, 0.50);
	m->stats_ok.fault_p99_ns = lathist_percentile(&lat, 0.99);
	m->stats_ok.fault_max_ns = lat.max_ns;
	memcpy(m->stats_ok.fault_hist, lat.bucket, sizeof(lat.bucket));
}

/* A device handle more, within the client's limit. */
static int open_handle(struct zmm *mm, unsigned int dev, unsigned int limit)
{
	unsigned int open = 0;
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++)
		open += mm->handles[i];
	if (limit && open >= limit) {
		ret = -EMFILE;
	} else {
		mm->handles[dev]++;
		mm->open_devices |= 1ull << dev;
	}
	pthread_mutex_unlock(&mm->lock);
	return ret;
}

/* One handle fewer: true when it was the device's last. */
static bool close_handle(struct zmm *mm, unsigned int dev)
{
	bool last;

	pthread_mutex_lock(&mm->lock);
	last = --mm->handles[dev] == 0;
	if (last)
		mm->open_devices &= ~(1ull << dev);
	pthread_mutex_unlock(&mm->lock);
	return last;
}

/* XMOVED: the protection of a page mremap moved while exclusive. */
static int request_xmoved(struct session *s, const struct zmsg_req *r)
{
	unsigned int prot = 0;
	union zmsg m;
	int ret;

	/* The mremap that moved the page has been read by now (the fault came
	 * after it returned): wait until it is handled. */
	zmm_wait_events(s->mm);
	ret = excl_moved(s->mm, r->addr, &prot);
	reply_init(&m, r->hdr.seq, ret);
	m.reply.prot = prot;
	return zmsg_send(s->sock, &m, -1);
}

static int request_atomic_add(struct session *s, const struct zmsg_req *r)
{
	uint64_t old = 0;
	union zmsg m;
	int ret;

	ret = r->npages == 1 ? check_range(r->addr & ~(PG_SIZE - 1), 1) : -EINVAL;
	if (!ret)
		ret = excl_atomic_add(s->mm, r->device, r->addr, r->arg, r->buf, session_xmap, s,
				      &old);
	reply_init(&m, r->hdr.seq, ret);
	m.reply.old_value = ret ? 0 : old;
	return zmsg_send(s->sock, &m, -1);
}

/* MIGRATE_TO_DEV, and EXCLUSIVE_HELD (held: the pages end held exclusive). */
static int request_migrate_to_device(struct session *s, const struct zmsg_req *r, bool held,
				     uint64_t *cpages, uint64_t *faults)
{
	int ret = check_range(r->addr, r->npages);

	if (!ret)
		ret = excl_before_access(s->mm, r->device, ZMSG_MIGRATE_TO_DEV, r->addr, r->npages,
					 0, session_xmap, s, cpages, faults);
	if (!ret && held)
		ret = migrate_to_device_held_exclusive(s->mm, r->device, r->addr, r->npages,
						       &session_client, s, cpages);
	else if (!ret)
		ret = migrate_to_device(s->mm, r->device, r->addr, r->npages, &session_client, s,
					cpages);
	return ret;
}

/* READ, WRITE, SNAPSHOT. */
static int request_access(struct session *s, const struct zmsg_req *r, int type,
			  uint64_t *cpages, uint64_t *faults)
{
	int ret = check_range(r->addr, r->npages);

	if (!ret && type != ZMSG_SNAPSHOT)
		ret = excl_before_access(s->mm, r->device, type, r->addr, r->npages, r->buf,
					 session_xmap, s, cpages, faults);
	if (ret == 1)
		return 0;	/* served from the atomic mapping */
	if (!ret)
		ret = device_access(s, r, type, cpages, faults);
	if (!ret && type == ZMSG_SNAPSHOT)
		ret = excl_after_snapshot(s->mm, r->addr, r->npages, r->buf);
	return ret;
}

static int set_flags(struct zmm *mm, unsigned int dev, uint64_t flags)
{
	if (flags & ~ZDEV_FLAG_FAIL_ALLOC)
		return -EINVAL;
	pthread_mutex_lock(&mm->lock);
	mm->flags[dev] = flags;
	pthread_mutex_unlock(&mm->lock);
	return 0;
}

/* A request on a device the process has open. */
static int on_device_request(struct session *s, const struct zmsg_req *r, int type)
{
	const uint64_t model_t0 = model_wait_begin(s->d);
	uint64_t cpages = 0, faults = 0;
	union zmsg out;
	int ret;

	switch (type) {
	case ZMSG_OPEN:
		ret = open_handle(s->mm, r->device, s->d->cfg.client_handles);
		break;
	case ZMSG_CLOSE:
		/* The device lets go of the process's memory with its last
		 * handle, as the driver's release does. */
		ret = close_handle(s->mm, r->device) ? migrate_evict(s->mm, (int)r->device, &cpages)
						     : 0;
		break;
	case ZMSG_MIGRATE_TO_DEV:
		ret = request_migrate_to_device(s, r, false, &cpages, &faults);
		break;
	case ZMSG_MIGRATE_TO_SYS:
		ret = check_range(r->addr, r->npages);
		if (!ret)
			ret = migrate_to_system(s->mm, r->device, r->addr, r->npages, &cpages);
		break;
	case ZMSG_READ:
	case ZMSG_WRITE:
	case ZMSG_SNAPSHOT:
		ret = request_access(s, r, type, &cpages, &faults);
		break;
	case ZMSG_EXCLUSIVE:
		ret = check_range(r->addr, r->npages);
		if (!ret)
			ret = excl_make_exclusive(s->mm, r->device, r->addr, r->npages, r->arg,
						  session_xmap, s, &cpages);
		/* Pages before a failure stay exclusive: say how many. */
		model_wait_end(s->d, model_t0);
		return reply_pages(s, r->hdr.seq, ret, cpages, 0);
	case ZMSG_EXCLUSIVE_HELD:
		ret = request_migrate_to_device(s, r, true, &cpages, &faults);
		model_wait_end(s->d, model_t0);
		return reply_pages(s, r->hdr.seq, ret, cpages, 0);
	case ZMSG_CHECK_EXCLUSIVE:
		ret = check_range(r->addr, r->npages);
		if (!ret)
			ret = excl_check_exclusive(s->mm, r->device, r->addr, r->npages, r->arg);
		break;
	case ZMSG_ATOMIC_ADD:
		return request_atomic_add(s, r);
	case ZMSG_RELEASE:
		ret = clients_release_device(s->d, r->device);
		break;
	case ZMSG_SET_FLAGS:
		ret = set_flags(s->mm, r->device, r->arg);
		break;
	case ZMSG_STATS:
		zmsg_init(&out, ZMSG_STATS_OK, r->hdr.seq);
		fill_stats(s, r->device, &out);
		return zmsg_send(s->sock, &out, -1);
	default:
		ret = -EOPNOTSUPP;
	}
	model_wait_end(s->d, model_t0);
	return reply_pages(s, r->hdr.seq, ret, ret && ret != -ENOENT ? 0 : cpages, faults);
}

/*
 * FORK_PREPARE: the process is about to fork. When zdevd will get no fork
 * event, the child's copy of every mapping loses its registration, and a
 * page left on the device would read as zeros there: every page comes home
 * first, and the client sends no request that moves pages out until it
 * forked. With fork events (the client asks then only if it has a coherent
 * device), the coherent pages are write-protected instead, so that the
 * first write of each process after the fork reaches us.
 */
static int request_fork_prepare(struct session *s, const struct zmsg_req *r)
{
	const uint64_t model_t0 = model_wait_begin(s->d);
	uint64_t cpages = 0;
	int ret;

	zmm_wait_events(s->mm);
	if (status_features(s->d) & ZFEAT_FORK_EVENTS)
		ret = migrate_coherent_prepare_fork(s->mm, &cpages);
	else
		ret = migrate_evict(s->mm, -1, &cpages);
	model_wait_end(s->d, model_t0);
	return reply_pages(s, r->hdr.seq, ret, cpages, 0);
}

/* UNPLUG, PLUG: only root and zdevd's own user may take a device from
 * every other client; a --group member is refused, and that said once for
 * the connection. */
static int request_plug(struct session *s, const struct zmsg_req *r, int type)
{
	uint64_t moved = 0;
	int ret;

	if (!unplug_allowed(s->uid)) {
		session_warn(s, "uid %u may not %s devices: only root and uid %u may",
			     (unsigned int)s->uid, zmsg_type_name(type), (unsigned int)geteuid());
		return reply_status(s, r->hdr.seq, -EPERM);
	}
	if (r->device >= s->d->devs.ndevices)
		return reply_status(s, r->hdr.seq, -ENODEV);
	if (type == ZMSG_UNPLUG)
		ret = unplug_device(s->d, r->device, &moved);
	else
		ret = plug_device(s->d, r->device);
	return reply_pages(s, r->hdr.seq, ret, moved, 0);
}

/* A request on a device the process has open, with the device held
 * (device_enter()) so that an unplug waits for it to end. */
static int on_entered_request(struct session *s, const struct zmsg_req *r, int type)
{
	struct device *dev = &s->d->devs.dev[r->device];
	int ret = device_enter(dev);

	if (ret == -ENODEV && type == ZMSG_CLOSE) {
		/* Its pages came home with the unplug: only the handle goes. */
		close_handle(s->mm, r->device);
		return reply_status(s, r->hdr.seq, 0);
	}
	if (ret)
		return reply_status(s, r->hdr.seq, ret);
	ret = on_device_request(s, r, type);
	device_leave(dev);
	return ret;
}

static int on_request(struct session *s, union zmsg *m, int type)
{
	const struct zmsg_req *r = &m->req;
	union zmsg out;

	switch (type) {
	case ZMSG_STATUS:
		zmsg_init(&out, ZMSG_STATUS_OK, r->hdr.seq);
		status_fill(s->d, &out);
		return zmsg_send(s->sock, &out, -1);
	case ZMSG_DEVICE_STATUS:
		zmsg_init(&out, ZMSG_DEVICE_STATUS_OK, r->hdr.seq);
		status_fill_device(s->d, r, &out);
		return zmsg_send(s->sock, &out, -1);
	case ZMSG_CLIENTS:
		zmsg_init(&out, ZMSG_CLIENTS_OK, r->hdr.seq);
		status_fill_clients(s->d, r, &out);
		return zmsg_send(s->sock, &out, -1);
	case ZMSG_UNPLUG:
	case ZMSG_PLUG:
		return request_plug(s, r, type);
	}
	if (!s->mm)
		return reply_status(s, r->hdr.seq, -ENOTCONN);
	if (type == ZMSG_XMOVED)
		return request_xmoved(s, r);
	if (type == ZMSG_FORK_PREPARE)
		return request_fork_prepare(s, r);
	if (r->device >= s->d->devs.ndevices)
		return reply_status(s, r->hdr.seq, -ENODEV);
	if (type != ZMSG_OPEN && !(s->mm->open_devices & (1ull << r->device)))
		return reply_status(s, r->hdr.seq, -EBADF);
	zmm_wait_events(s->mm);
	return on_entered_request(s, r, type);
}

/*
 * A peer zdevd does not serve: its HELLO, or zdevctl's questions, are
 * answered -EACCES, which is what zdev_open() returns, and the connection
 * closed. Answering rather than closing at once spares the peer a kernel
 * race: a socket closed with a message unread reports ECONNRESET to the
 * other end ahead of anything sent before the close.
 */
static int on_refused(struct session *s, const union zmsg *m, int type, int fd)
{
	union zmsg out;

	if (fd >= 0)
		close(fd);
	switch (type) {
	case ZMSG_HELLO:
		zmsg_init(&out, ZMSG_HELLO_OK, m->hdr.seq);
		out.hello_ok.version = ZDEV_PROTO_VERSION;
		out.hello_ok.status = -EACCES;
		break;
	case ZMSG_STATUS:
		zmsg_init(&out, ZMSG_STATUS_OK, m->hdr.seq);
		out.status_ok.status = -EACCES;
		break;
	case ZMSG_DEVICE_STATUS:
		zmsg_init(&out, ZMSG_DEVICE_STATUS_OK, m->hdr.seq);
		out.device_status_ok.status = -EACCES;
		break;
	case ZMSG_CLIENTS:
		zmsg_init(&out, ZMSG_CLIENTS_OK, m->hdr.seq);
		out.clients_ok.status = -EACCES;
		break;
	case ZMSG_UNPLUG:
	case ZMSG_PLUG:
		zmsg_init(&out, ZMSG_REPLY, m->hdr.seq);
		out.reply.status = -EACCES;
		break;
	default:
		return -EACCES;
	}
	return zmsg_send(s->sock, &out, -1) ?: -EACCES;
}

/* zdevctl's questions and orders, which need no HELLO. */
static bool is_status_request(int type)
{
	return type == ZMSG_STATUS || type == ZMSG_DEVICE_STATUS || type == ZMSG_CLIENTS ||
	       type == ZMSG_UNPLUG || type == ZMSG_PLUG;
}

static int on_message(struct session *s, union zmsg *m, int type, int fd)
{
	int ret;

	if (s->refused)
		return on_refused(s, m, type, fd);
	/* UFFD's is the one fd a client sends: any other is closed, or every
	 * message that came with one would keep it open for good. */
	if (fd >= 0 && (type != ZMSG_UFFD || !s->hello)) {
		close(fd);
		fd = -1;
	}
	switch (type) {
	case ZMSG_HELLO:
		return s->hello ? -EPROTO : on_hello(s, &m->hello);
	case ZMSG_UFFD:
		if (!s->hello)
			return -EPROTO;
		ret = take_uffd(s, fd, m->req.addr);
		if (ret && fd >= 0)
			close(fd);
		return reply_status(s, m->hdr.seq, ret) ?: (ret == -EPERM ? ret : 0);
	case ZMSG_OPEN: case ZMSG_CLOSE: case ZMSG_MIGRATE_TO_DEV: case ZMSG_MIGRATE_TO_SYS:
	case ZMSG_READ: case ZMSG_WRITE: case ZMSG_SNAPSHOT: case ZMSG_RELEASE:
	case ZMSG_SET_FLAGS: case ZMSG_STATS: case ZMSG_STATUS: case ZMSG_EXCLUSIVE:
	case ZMSG_CHECK_EXCLUSIVE: case ZMSG_ATOMIC_ADD: case ZMSG_XMOVED: case ZMSG_RESCUE:
	case ZMSG_EXCLUSIVE_HELD: case ZMSG_FORK_PREPARE: case ZMSG_DEVICE_STATUS:
	case ZMSG_CLIENTS: case ZMSG_UNPLUG: case ZMSG_PLUG:
		if (!s->hello && !is_status_request(type))
			return -EPROTO;
		return type == ZMSG_RESCUE ? on_rescue(s, &m->req) : on_request(s, m, type);
	default:
		/* A reply type, or ZAPPED out of turn. */
		return -EPROTO;
	}
}

/*
 * What one REPLY takes of the kernel's memory while its client has not read
 * it (an skb's truesize, which SIOCOUTQ sums): the unit in which unread
 * replies are counted. 0 when the kernel does not say.
 */
static size_t reply_footprint;

static void measure_reply_footprint(void)
{
	int sv[2], queued = 0;
	union zmsg m;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return;
	reply_init(&m, 0, 0);
	if (!zmsg_send(sv[0], &m, -1) && !ioctl(sv[0], SIOCOUTQ, &queued) && queued > 0)
		reply_footprint = (size_t)queued;
	close(sv[0]);
	close(sv[1]);
	if (!reply_footprint)
		log_warn("the kernel does not tell how much of a connection's replies is unread: "
			 "--client-pending is not enforced");
}

/* The replies the client has not read yet; a larger answer counts for as
 * many replies as it takes room. */
static unsigned int unread_replies(struct session *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int queued = 0;

	pthread_once(&once, measure_reply_footprint);
	if (!reply_footprint || ioctl(s->sock, SIOCOUTQ, &queued) || queued <= 0)
		return 0;
	return (unsigned int)((size_t)queued / reply_footprint);
}

/* A request waits, and the client has --client-pending replies unread. */
static bool past_pending_limit(struct session *s)
{
	const unsigned int limit = s->d->cfg.client_pending;
	char c;

	if (!limit || unread_replies(s) < limit)
		return false;
	/* Nothing waiting: the poll says when something comes. */
	return recv(s->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

bool session_may_resume(struct session *s)
{
	/* Half the limit: a client reading one reply at a time is let in
	 * again in larger steps, not once per reply it reads. */
	return unread_replies(s) <= s->d->cfg.client_pending / 2;
}

int session_serve(struct session *s)
{
	union zmsg m;

	for (;;) {
		int fd = -1, type, ret;

		/* Shutting down: the request in flight was the last. */
		if (atomic_load(&s->d->stopping))
			return -ESHUTDOWN;
		/*
		 * A client that does not read its replies is not read either:
		 * its requests wait in the socket, where they cost zdevd
		 * nothing, and its sends block once that is full. Checked
		 * before each request, so that no reply ever waits for room
		 * in the socket and the worker goes on to others.
		 */
		if (past_pending_limit(s))
			return SESSION_HELD;
		type = zmsg_recv_flags(s->sock, &m, &fd, MSG_DONTWAIT);

		/* What is there now; the loop calls us again for more. */
		if (type == -EAGAIN)
			return 0;
		if (type == -ECONNRESET || type == -EPIPE)
			return type;
		if (type < 0) {
			/* Malformed: say so once and drop the client, whose
			 * memory stays as it is. */
			session_warn(s, "bad message (%s): closing its connection",
				     strerror(-type));
			return type;
		}
		ret = on_message(s, &m, type, fd);
		if (ret) {
			session_warn(s, "%s: %s: closing its connection", zmsg_type_name(type),
				     strerror(-ret));
			return ret;
		}
	}
}

struct session *session_new(struct zdevd *d, int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct session *s;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->refused = !peer_admitted(d, sock, &cred);
	s->warned = s->refused;	/* peer_admitted() logged the refusal */
	s->d = d;
	s->sock = sock;
	s->pid = cred.pid;
	s->uid = cred.uid;
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
	atomic_fetch_add_explicit(&d->nsessions, 1, memory_order_relaxed);
	return s;
}

void session_free(struct session *s)
{
	struct zdevd *d = s->d;

	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->mm)
		zmm_put(s->mm);
	close(s->sock);
	free(s);
	/* release: one that sees the count drop sees the session's mm let go */
	atomic_fetch_sub_explicit(&d->nsessions, 1, memory_order_release);
}
