/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devset.h"
#include "lathist.h"
#include "page.h"
#include "uffd_compat.h"
#include "zdevd/clients.h"
#include "zdevd/status.h"
#include "zmm.h"

uint32_t status_features(const struct zdevd *d)
{
	uint32_t f = 0;

	if (d->devnode_ok)
		f |= ZFEAT_KERNEL_FAULTS;
	if (d->devs.uffd_features & UFFD_FEATURE_EVENT_FORK)
		f |= ZFEAT_FORK_EVENTS;
	return f;
}

static void fill_model(const struct device *dev, struct zmsg_status_device *out)
{
	out->link_bytes_per_sec = dev->model.cfg.link_bytes_per_sec;
	out->fault_latency_ns = dev->model.cfg.fault_ns;
	out->model_added_ns = atomic_load_explicit(&dev->model.added_ns, memory_order_relaxed);
}

static void fill_pool(struct device *dev, struct zmsg_status_device *out)
{
	struct refpool_stats ps;

	refpool_get_stats(dev->pool, &ps);
	out->pool_pages_total = ps.pages_total;
	out->pool_pages_used = ps.pages_used;
	out->pool_limit_pages = ps.limit_pages;
	out->chunks = ps.chunks;
	out->memory_type = dev->memtype;
	out->peak_pages_used = ps.pages_peak;
	out->warm_pages = atomic_load_explicit(&dev->warm_blocks, memory_order_relaxed) *
			  REFPOOL_BLOCK_PAGES;
}

void status_fill(struct zdevd *d, union zmsg *m)
{
	struct zmsg_status_ok *s = &m->status_ok;
	struct lathist_snap lat;

	s->ndevices = d->devs.ndevices;
	s->daemon_pid = getpid();
	s->uptime_ns = lathist_now_ns() - d->devs.started_ns;
	pthread_mutex_lock(&d->mms_lock);
	s->clients = d->nclients;
	s->clients_total = d->clients_total;
	pthread_mutex_unlock(&d->mms_lock);
	s->features = status_features(d);
	for (unsigned int i = 0; i < d->devs.ndevices; i++) {
		struct device_totals *t = &d->devs.dev[i].totals;

		s->cpu_faults += atomic_load(&t->cpu_faults);
		s->device_faults += atomic_load(&t->device_faults);
		s->pages_to_device += atomic_load(&t->pages_to_device);
		s->pages_to_system += atomic_load(&t->pages_to_system);
		s->exclusive_grants += atomic_load(&t->exclusive_grants);
		s->exclusive_revokes += atomic_load(&t->exclusive_revokes);
		fill_model(&d->devs.dev[i], &s->dev[i]);
		if (device_enter(&d->devs.dev[i])) {
			/* No pool: only what the device would be. */
			s->unplugged |= 1u << i;
			s->dev[i].memory_type = d->devs.dev[i].memtype;
			s->dev[i].pool_limit_pages = d->devs.cfg.memory / PG_SIZE;
			continue;
		}
		fill_pool(&d->devs.dev[i], &s->dev[i]);
		device_leave(&d->devs.dev[i]);
	}
	lathist_read(&d->fault_lat, &lat);
	s->fault_p50_ns = lathist_percentile(&lat, 0.50);
	s->fault_p99_ns = lathist_percentile(&lat, 0.99);
	s->fault_max_ns = lat.max_ns;
}

/* The processes with pages on device dev now. */
static uint32_t clients_on_device(struct zdevd *d, unsigned int dev)
{
	uint32_t n = 0;

	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *mm = d->mms; mm; mm = mm->next)
		n += atomic_load(&mm->cnt[dev].device_pages) > 0;
	pthread_mutex_unlock(&d->mms_lock);
	return n;
}

void status_fill_device(struct zdevd *d, const struct zmsg_req *req, union zmsg *m)
{
	struct zmsg_device_status_ok *s = &m->device_status_ok;
	struct device_totals *t;

	s->device = req->device;
	if (req->device >= d->devs.ndevices) {
		s->status = -ENODEV;
		return;
	}
	t = &d->devs.dev[req->device].totals;
	s->cpu_faults = atomic_load(&t->cpu_faults);
	s->device_faults = atomic_load(&t->device_faults);
	s->pages_to_device = atomic_load(&t->pages_to_device);
	s->pages_to_system = atomic_load(&t->pages_to_system);
	s->exclusive_grants = atomic_load(&t->exclusive_grants);
	s->exclusive_revokes = atomic_load(&t->exclusive_revokes);
	s->clients = clients_on_device(d, req->device);
}

/* The process's command name, or "" (it may be gone, or hidden by hidepid). */
static void read_comm(pid_t pid, char comm[16])
{
	char path[32];
	ssize_t n = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, 15);
		close(fd);
	}
	if (n < 0)
		n = 0;
	if (n > 0 && comm[n - 1] == '\n')
		n--;
	memset(comm + n, 0, (size_t)(16 - n));
}

static void fill_client(struct zdevd *d, struct zmm *mm, struct zmsg_client *c)
{
	c->pid = mm->pid;
	c->uid = mm->uid;
	pthread_mutex_lock(&mm->lock);
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++)
		c->handles += mm->handles[i];
	pthread_mutex_unlock(&mm->lock);
	for (unsigned int i = 0; i < d->devs.ndevices; i++)
		c->device_pages[i] = atomic_load(&mm->cnt[i].device_pages);
	read_comm(mm->pid, c->comm);
}

void status_fill_clients(struct zdevd *d, const struct zmsg_req *req, union zmsg *m)
{
	struct zmsg_clients_ok *s = &m->clients_ok;
	struct zmm *mms[ZMSG_CLIENTS_PER_PAGE];
	bool more;

	/* A pid is positive: an arg beyond what pid_t holds lists none. */
	if (req->arg > INT32_MAX)
		return;
	s->count = clients_list_after(d, (pid_t)req->arg, mms, ZMSG_CLIENTS_PER_PAGE, &more);
	s->more = more;
	for (unsigned int i = 0; i < s->count; i++) {
		fill_client(d, mms[i], &s->client[i]);
		zmm_put(mms[i]);
	}
}
