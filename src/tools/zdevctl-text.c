/* SPDX-License-Identifier: MIT */
/* zdevctl: status and stats for people. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "page.h"
#include "units.h"
#include "zdev.h"
#include "tools/zdevctl.h"

static const char *pages_text(char *buf, size_t len, uint64_t pages)
{
	units_format_size(buf, len, pages * PG_SIZE);
	return buf;
}

/* A latency with the unit that keeps it short: "850 ns", "24.6 us", "3.1 ms". */
static const char *ns_text(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

static const char *uptime_text(char *buf, size_t len, uint64_t ns)
{
	uint64_t s = ns / 1000000000;

	if (s < 60)
		snprintf(buf, len, "%llu s", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llu min %llu s", (unsigned long long)s / 60,
			 (unsigned long long)s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%llu h %llu min", (unsigned long long)s / 3600,
			 (unsigned long long)s / 60 % 60);
	else
		snprintf(buf, len, "%llu d %llu h", (unsigned long long)s / 86400,
			 (unsigned long long)s / 3600 % 24);
	return buf;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_device_memory(const struct zdevctl_view *v, unsigned int i)
{
	const struct zmsg_status_device *d = &v->st.dev[i];
	char used[32], limit[32], peak[32], pool[32], warm[32];

	if (v->st.unplugged & (1u << i)) {
		printf("device %u: unplugged (zdevctl plug %u brings it back: %s, %s memory)\n", i,
		       i, pages_text(limit, sizeof(limit), d->pool_limit_pages),
		       d->memory_type == ZDEV_MEMORY_DEVICE_COHERENT ? "coherent" : "private");
		return;
	}

	printf("device %u: device memory %s of %s in use (%llu of %llu pages), peak %s; "
	       "pool %s in %u %s, %s warm; %s memory\n", i,
	       pages_text(used, sizeof(used), d->pool_pages_used),
	       pages_text(limit, sizeof(limit), d->pool_limit_pages),
	       (unsigned long long)d->pool_pages_used, (unsigned long long)d->pool_limit_pages,
	       pages_text(peak, sizeof(peak), d->peak_pages_used),
	       pages_text(pool, sizeof(pool), d->pool_pages_total), d->chunks,
	       plural(d->chunks, "chunk", "chunks"), pages_text(warm, sizeof(warm), d->warm_pages),
	       d->memory_type == ZDEV_MEMORY_DEVICE_COHERENT ? "coherent" : "private");
}

/* A modelled device's link and fault latency (zdevd --link, --fault-latency),
 * and the time the model added; nothing for a device without a model. */
static void print_device_model(const struct zdevctl_view *v, unsigned int i)
{
	const struct zmsg_status_device *d = &v->st.dev[i];

	if (!d->link_bytes_per_sec && !d->fault_latency_ns)
		return;
	printf("device %u: model: ", i);
	if (d->link_bytes_per_sec)
		printf("link %g GB/s each way", d->link_bytes_per_sec / 1e9);
	else
		printf("no link cost");
	printf(", fault latency %g us; time added %.3f ms\n", d->fault_latency_ns / 1e3,
	       d->model_added_ns / 1e6);
}

static void print_client(const struct zdevctl_view *v, const struct zmsg_client *c)
{
	uint64_t total = 0;
	unsigned int on = 0;
	char size[32];

	for (unsigned int i = 0; i < v->st.ndevices; i++) {
		total += c->device_pages[i];
		on += c->device_pages[i] > 0;
	}
	printf("  pid %d (%s), uid %u, %u device %s: ", c->pid, c->comm[0] ? c->comm : "?",
	       c->uid, c->handles, plural(c->handles, "handle", "handles"));
	if (!total) {
		printf("no device pages\n");
		return;
	}
	printf("%llu device %s (%s)", (unsigned long long)total, plural(total, "page", "pages"),
	       pages_text(size, sizeof(size), total));
	for (unsigned int i = 0, k = 0; i < v->st.ndevices; i++) {
		if (!c->device_pages[i])
			continue;
		if (on == 1)
			printf(" on device %u", i);
		else
			printf("%s%llu on device %u", k++ ? ", " : ": ",
			       (unsigned long long)c->device_pages[i], i);
	}
	printf("\n");
}

void zdevctl_status_text(const struct zdevctl_view *v)
{
	const struct zmsg_status_ok *s = &v->st;
	char up[32];

	printf("zdevd: pid %d, up %s, socket %s\n", s->daemon_pid,
	       uptime_text(up, sizeof(up), s->uptime_ns), v->socket);
	for (unsigned int i = 0; i < s->ndevices; i++) {
		print_device_memory(v, i);
		print_device_model(v, i);
	}
	printf("clients: %u now, %llu served in all\n", s->clients,
	       (unsigned long long)s->clients_total);
	for (size_t i = 0; i < v->nclients; i++)
		print_client(v, &v->clients[i]);
	/* What every client gets; zdev_get_features(3) says what each means. */
	printf("kernel-mode faults: %s\nfork events: %s\n",
	       s->features & ZFEAT_KERNEL_FAULTS ? "yes" : "no (system calls on device pages fail with EFAULT)",
	       s->features & ZFEAT_FORK_EVENTS ? "yes" : "no (device pages come home before a fork)");
}

/* "p50 in [16.4 us, 32.8 us)": the percentile's bucket, all it is known to. */
static void print_percentile(const char *name, uint64_t ns)
{
	char lo_text[32], hi_text[32];
	uint64_t lo, hi;

	zdevctl_latency_bucket(ns, &lo, &hi);
	if (hi == UINT64_MAX)
		printf("%s %s or more", name, ns_text(lo_text, sizeof(lo_text), lo));
	else
		printf("%s in [%s, %s)", name, ns_text(lo_text, sizeof(lo_text), lo),
		       ns_text(hi_text, sizeof(hi_text), hi));
}

static void print_latency(const struct zmsg_status_ok *s)
{
	char max[32];

	if (!s->fault_max_ns) {
		printf("fault service latency: no CPU fault served yet\n");
		return;
	}
	printf("fault service latency: ");
	print_percentile("p50", s->fault_p50_ns);
	printf(", ");
	print_percentile("p99", s->fault_p99_ns);
	printf(" (power-of-two buckets), max %s\n", ns_text(max, sizeof(max), s->fault_max_ns));
}

static void print_device_stats(const struct zdevctl_view *v, unsigned int i)
{
	const struct zmsg_device_status_ok *d = &v->dev[i];
	char to_dev[32], to_sys[32], peak[32];

	printf("device %u: cpu faults %llu, device faults %llu, pages to device %llu (%s), "
	       "to system %llu (%s), exclusive grants %llu, revokes %llu, peak %s in use\n", i,
	       (unsigned long long)d->cpu_faults, (unsigned long long)d->device_faults,
	       (unsigned long long)d->pages_to_device,
	       pages_text(to_dev, sizeof(to_dev), d->pages_to_device),
	       (unsigned long long)d->pages_to_system,
	       pages_text(to_sys, sizeof(to_sys), d->pages_to_system),
	       (unsigned long long)d->exclusive_grants, (unsigned long long)d->exclusive_revokes,
	       pages_text(peak, sizeof(peak), v->st.dev[i].peak_pages_used));
}

void zdevctl_stats_text(const struct zdevctl_view *v)
{
	const struct zmsg_status_ok *s = &v->st;
	char up[32], to_dev[32], to_sys[32];

	printf("since zdevd started, %s ago:\n", uptime_text(up, sizeof(up), s->uptime_ns));
	printf("cpu faults served: %llu\ndevice faults: %llu\n"
	       "pages to device: %llu (%s)\npages to system: %llu (%s)\n"
	       "exclusive grants: %llu\nexclusive revokes: %llu\n",
	       (unsigned long long)s->cpu_faults, (unsigned long long)s->device_faults,
	       (unsigned long long)s->pages_to_device,
	       pages_text(to_dev, sizeof(to_dev), s->pages_to_device),
	       (unsigned long long)s->pages_to_system,
	       pages_text(to_sys, sizeof(to_sys), s->pages_to_system),
	       (unsigned long long)s->exclusive_grants, (unsigned long long)s->exclusive_revokes);
	print_latency(s);
	printf("client processes served: %llu\n", (unsigned long long)s->clients_total);
	for (unsigned int i = 0; i < s->ndevices; i++)
		print_device_stats(v, i);
}
