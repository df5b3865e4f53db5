/* SPDX-License-Identifier: MIT */
/* The public API of include/zdev.h: argument checks, then one request each. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/anonymize.h"
#include "lib/client.h"
#include "lib/export.h"
#include "lib/moved.h"
#include "lib/own.h"
#include "lib/rescue.h"
#include "lib/segv.h"
#include "lib/session.h"
#include "lib/xmap.h"
#include "lib/zdevpriv.h"
#include "page.h"
#include "zdev.h"

struct zdev {
	struct client *client;
	struct session_handle h;	/* its device, and its place on the connection */
};

static pthread_once_t process_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	client_atfork_prepare();
	/* The kernel restores the parent's device-exclusive entries when
	 * fork copies them; the child then inherits ordinary pages. */
	xmap_revoke_all();
	/* Last, once nothing here waits for the connection's lock, which a
	 * thread waiting for the rescue to end may hold: the rescue waits
	 * for the forks it counts. */
	rescue_fork_prepare();
}

static void atfork_parent(void)
{
	rescue_fork_returned();
	client_atfork_parent();
}

static void atfork_child(void)
{
	xmap_atfork_child();
	client_atfork_child();
}

/*
 * Before the first connection, so before zdevd can ask for exclusive pages or
 * an anonymous mapping: the fork handlers and the SIGSEGV handler's claimers,
 * the exclusive map's first (its faults are the frequent ones). The handler
 * itself goes in on first need. Two claimers fit segv.c's slots, so adding
 * them cannot fail.
 */
static void wire_process(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	segv_add_claimer(xmap_fault);
	segv_add_claimer(anonymize_fault);
}

static int check_range(const void *addr, size_t npages)
{
	uintptr_t a = (uintptr_t)addr;

	if (!npages || (a & (PG_SIZE - 1)) || npages > SIZE_MAX / PG_SIZE || a + npages * PG_SIZE < a)
		return -EINVAL;
	return 0;
}

static void fill_request(union zmsg *req, struct zdev *dev, enum zmsg_type type, const void *addr,
			 size_t npages, uint64_t buf, uint64_t arg)
{
	zmsg_init(req, type, 0);
	req->req.device = dev->h.device;
	req->req.addr = (uint64_t)(uintptr_t)addr;
	req->req.npages = npages;
	req->req.buf = buf;
	req->req.arg = arg;
}

/* Sends req and waits for its REPLY in rep: 0, or -errno if none came. */
static int call_for_reply(struct zdev *dev, union zmsg *req, union zmsg *rep)
{
	int ret = session_call(dev->client, &dev->h, req, rep);

	if (ret < 0)
		return ret;
	return ret == ZMSG_REPLY ? 0 : -EPROTO;
}

/* One request of the common shape; fills res on success (and on -ENOENT,
 * whose cpages says how much did end on the device). */
static int request(struct zdev *dev, enum zmsg_type type, const void *addr, size_t npages,
		   const void *buf, uint64_t arg, struct zdev_result *res)
{
	union zmsg req, rep;
	int ret;

	if (!dev)
		return -EINVAL;
	fill_request(&req, dev, type, addr, npages, (uint64_t)(uintptr_t)buf, arg);
	ret = call_for_reply(dev, &req, &rep);
	if (ret)
		return ret;
	if (res && (rep.reply.status == 0 || rep.reply.status == -ENOENT)) {
		res->cpages = rep.reply.cpages;
		res->faults = rep.reply.faults;
	}
	return rep.reply.status;
}

ZDEV_EXPORT int zdev_open(const char *socket_path, unsigned int device, struct zdev **out)
{
	struct zdev *dev;
	int ret;

	if (!out)
		return -EINVAL;
	pthread_once(&process_once, wire_process);
	dev = own_alloc(sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	ret = client_get(socket_path, &dev->client);
	if (ret)
		goto err_free;
	dev->h.device = device;
	/* Opens the handle in the session (a new one, if zdevd was lost). */
	ret = session_lock(dev->client, &dev->h);
	if (ret)
		goto err_put;
	session_unlock(dev->client);
	*out = dev;
	return 0;

err_put:
	client_put(dev->client);
err_free:
	own_free(dev, sizeof(*dev));
	return ret;
}

ZDEV_EXPORT int zdev_close(struct zdev *dev)
{
	int ret;

	if (!dev)
		return -EINVAL;
	ret = session_close(dev->client, &dev->h);
	client_put(dev->client);
	own_free(dev, sizeof(*dev));
	return ret;
}

ZDEV_EXPORT int zdev_alloc(struct zdev *dev, size_t len, void **addr)
{
	size_t size, span;
	char *p, *aligned;

	if (!dev || !addr || !len || len > SIZE_MAX - WIN_SIZE - PG_SIZE)
		return -EINVAL;
	size = pg_up(len);
	/* Window-aligned when large enough: device THPs and cheap zaps need it. */
	span = size >= WIN_SIZE ? size + WIN_SIZE : size;
	p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	aligned = size >= WIN_SIZE ? (char *)(uintptr_t)win_up((uintptr_t)p) : p;
	if (aligned > p)
		munmap(p, (size_t)(aligned - p));
	if (aligned + size < p + span)
		munmap(aligned + size, (size_t)(p + span - (aligned + size)));
	*addr = aligned;
	return 0;
}

ZDEV_EXPORT int zdev_free(struct zdev *dev, void *addr, size_t len)
{
	if (!dev || !addr || !len || ((uintptr_t)addr & (PG_SIZE - 1)))
		return -EINVAL;
	/* The unmap event tells zdevd; its device pages are freed at once. */
	return munmap(addr, pg_up(len)) ? -errno : 0;
}

ZDEV_EXPORT int zdev_read(struct zdev *dev, const void *addr, size_t npages, void *out,
			  struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	if (ret || !out)
		return ret ?: -EINVAL;
	return request(dev, ZMSG_READ, addr, npages, out, 0, res);
}

ZDEV_EXPORT int zdev_write(struct zdev *dev, void *addr, size_t npages, const void *in,
			   struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	if (ret || !in)
		return ret ?: -EINVAL;
	return request(dev, ZMSG_WRITE, addr, npages, in, 0, res);
}

ZDEV_EXPORT int zdev_migrate_to_device(struct zdev *dev, void *addr, size_t npages,
				       struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	return ret ?: request(dev, ZMSG_MIGRATE_TO_DEV, addr, npages, NULL, 0, res);
}

ZDEV_EXPORT int zdev_migrate_to_system(struct zdev *dev, void *addr, size_t npages,
				       struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	return ret ?: request(dev, ZMSG_MIGRATE_TO_SYS, addr, npages, NULL, 0, res);
}

ZDEV_EXPORT int zdev_snapshot(struct zdev *dev, const void *addr, size_t npages, uint8_t *prot,
			      struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	if (ret || !prot)
		return ret ?: -EINVAL;
	return request(dev, ZMSG_SNAPSHOT, addr, npages, prot, 0, res);
}

/* What every exclusive request needs first: leaves of the map for the
 * range, our SIGSEGV handler, and its line to zdevd for pages mremap moves
 * (without which those, only, would not revoke: not worth failing for). */
static int exclusive_prepare(struct zdev *dev, const void *addr, size_t npages)
{
	int ret = xmap_prepare((uintptr_t)addr, npages);

	if (!ret)
		moved_open(dev->client->path);
	return ret ?: segv_install();
}

ZDEV_EXPORT int zdev_make_exclusive(struct zdev *dev, void *addr, size_t npages,
				    struct zdev_result *res)
{
	union zmsg req, rep;
	int ret = check_range(addr, npages);

	if (ret || !dev)
		return ret ?: -EINVAL;
	ret = exclusive_prepare(dev, addr, npages);
	if (ret)
		return ret;
	fill_request(&req, dev, ZMSG_EXCLUSIVE, addr, npages, 0, xmap_dir_addr());
	ret = call_for_reply(dev, &req, &rep);
	if (ret)
		return ret;
	/* On failure too: the pages before the failing one stay exclusive. */
	if (res) {
		res->cpages = rep.reply.cpages;
		res->faults = 0;
	}
	return rep.reply.status;
}

ZDEV_EXPORT int zdevpriv_make_exclusive_held(struct zdev *dev, void *addr, size_t npages,
					    struct zdev_result *res)
{
	int ret = check_range(addr, npages);

	return ret ?: request(dev, ZMSG_EXCLUSIVE_HELD, addr, npages, NULL, 0, res);
}

ZDEV_EXPORT int zdev_check_exclusive(struct zdev *dev, const void *addr, size_t npages)
{
	int ret = check_range(addr, npages);

	return ret ?: request(dev, ZMSG_CHECK_EXCLUSIVE, addr, npages, NULL, xmap_dir_addr(),
			      NULL);
}

/* One ATOMIC_ADD of page's counter: client_call's answer. Already the
 * device's, the page is pinned here, and zdevd adds at once; if not, zdevd
 * grants it to the device pinned. Either way no CPU thread can revoke it
 * until the unpin, after zdevd's add. */
static int call_atomic_add(struct zdev *dev, uintptr_t page, union zmsg *req, union zmsg *rep)
{
	sigset_t mask;
	int ret = session_lock(dev->client, &dev->h);

	if (ret)
		return ret;
	xmap_signals_block(&mask);
	xmap_pin(page, dev->h.device);
	ret = client_call(dev->client, req, rep, -1);
	xmap_unpin(page);
	xmap_signals_restore(&mask);
	session_unlock(dev->client);
	return ret;
}

ZDEV_EXPORT int zdev_atomic_add(struct zdev *dev, uint64_t *addr, uint64_t delta, uint64_t *old)
{
	const uintptr_t page = (uintptr_t)addr & ~(PG_SIZE - 1);
	union zmsg req, rep;
	int ret;

	if (!dev || !addr || ((uintptr_t)addr & (sizeof(*addr) - 1)))
		return -EINVAL;
	ret = exclusive_prepare(dev, (void *)page, 1);
	if (ret)
		return ret;
	zmsg_init(&req, ZMSG_ATOMIC_ADD, 0);
	req.req.device = dev->h.device;
	req.req.addr = (uint64_t)(uintptr_t)addr;
	req.req.npages = 1;
	req.req.arg = delta;
	req.req.buf = xmap_dir_addr();
	ret = call_atomic_add(dev, page, &req, &rep);
	/* zdevd never saw it: the new session's may. */
	if (ret == -ENOTCONN)
		ret = call_atomic_add(dev, page, &req, &rep);
	if (ret < 0)
		return ret == -ENOTCONN ? -ENODEV : ret;
	if (ret != ZMSG_REPLY)
		return -EPROTO;
	if (!rep.reply.status && old)
		*old = rep.reply.old_value;
	return rep.reply.status;
}

ZDEV_EXPORT int zdev_release(struct zdev *dev)
{
	return request(dev, ZMSG_RELEASE, NULL, 0, NULL, 0, NULL);
}

ZDEV_EXPORT int zdev_set_flags(struct zdev *dev, uint64_t flags)
{
	return request(dev, ZMSG_SET_FLAGS, NULL, 0, NULL, flags, NULL);
}

/* STATS of dev into rep: 0 or -errno. */
static int call_stats(struct zdev *dev, union zmsg *rep)
{
	union zmsg req;
	int ret;

	zmsg_init(&req, ZMSG_STATS, 0);
	req.req.device = dev->h.device;
	ret = session_call(dev->client, &dev->h, &req, rep);
	if (ret < 0)
		return ret;
	if (ret != ZMSG_STATS_OK)
		return ret == ZMSG_REPLY ? rep->reply.status : -EPROTO;
	return 0;
}

ZDEV_EXPORT int zdev_get_features(struct zdev *dev, uint64_t *features)
{
	int ret;

	if (!dev || !features)
		return -EINVAL;
	/* Those of the session of now: a new zdevd may differ. */
	ret = session_lock(dev->client, &dev->h);
	if (ret)
		return ret;
	*features = 0;
	if (client_kernel_faults())
		*features |= ZDEV_FEATURE_KERNEL_FAULTS;
	if (atomic_load(&dev->client->features) & ZFEAT_FORK_EVENTS)
		*features |= ZDEV_FEATURE_FORK_SHARED;
	session_unlock(dev->client);
	return 0;
}

ZDEV_EXPORT int zdev_get_memory_type(struct zdev *dev, unsigned int *type)
{
	int ret;

	if (!dev || !type)
		return -EINVAL;
	/* That of the session of now: a new zdevd may make the device
	 * another type. */
	ret = session_lock(dev->client, &dev->h);
	if (ret)
		return ret;
	*type = dev->client->memory_type[dev->h.device];
	session_unlock(dev->client);
	return 0;
}

ZDEV_EXPORT int zdev_get_stats(struct zdev *dev, struct zdev_stats *st)
{
	struct zdev_stats full;
	union zmsg rep;
	size_t fill;
	int ret;

	if (!dev || !st || st->size < offsetof(struct zdev_stats, cpu_faults))
		return -EINVAL;
	fill = st->size < sizeof(full) ? st->size : sizeof(full);
	ret = call_stats(dev, &rep);
	if (ret)
		return ret;
	full = (struct zdev_stats){
		.version = ZDEV_STATS_VERSION,
		.size = sizeof(full),
		.cpu_faults = rep.stats_ok.cpu_faults,
		.device_faults = rep.stats_ok.device_faults,
		.pages_to_device = rep.stats_ok.pages_to_device,
		.pages_to_system = rep.stats_ok.pages_to_system,
		.exclusive_grants = rep.stats_ok.exclusive_grants,
		.exclusive_revokes = rep.stats_ok.exclusive_revokes,
		.device_pages = rep.stats_ok.device_pages,
		.pool_pages_total = rep.stats_ok.pool_pages_total,
		.pool_pages_used = rep.stats_ok.pool_pages_used,
		.pool_limit_pages = rep.stats_ok.pool_limit_pages,
		.peak_device_pages = rep.stats_ok.peak_device_pages,
		.fault_p50_ns = rep.stats_ok.fault_p50_ns,
		.fault_p99_ns = rep.stats_ok.fault_p99_ns,
		.fault_max_ns = rep.stats_ok.fault_max_ns,
	};
	/* A program built with an older header has a smaller struct: fill
	 * only what it has room for, and say how much that was. */
	if (fill < sizeof(full))
		full.size = (uint32_t)fill;
	memcpy(st, &full, fill);
	return 0;
}

ZDEV_EXPORT int zdevpriv_fault_hist(struct zdev *dev, uint64_t *buckets, unsigned int n,
				    uint64_t *max_ns)
{
	union zmsg rep;
	int ret;

	if (!dev || (!buckets && n))
		return -EINVAL;
	ret = call_stats(dev, &rep);
	if (ret)
		return ret;
	if (n > LATHIST_BUCKETS)
		n = LATHIST_BUCKETS;
	if (n)
		memcpy(buckets, rep.stats_ok.fault_hist, n * sizeof(*buckets));
	if (max_ns)
		*max_ns = rep.stats_ok.fault_max_ns;
	return (int)n;
}
