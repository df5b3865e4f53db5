/* SPDX-License-Identifier: MIT */
/* zdevctl: status and stats as one JSON object each, for tools. The keys are
 * in zdevctl(8); ZDEVCTL_JSON_SCHEMA says which set they are. */
#include "config.h"

#include <stdio.h>

#include "page.h"
#include "zdev.h"
#include "tools/zdevctl.h"

/* s as a JSON string: quotes, backslashes and control characters escaped. */
static void print_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_header(const struct zdevctl_view *v)
{
	printf("{\"schema_version\":%d,\"zdevd\":{\"pid\":%d,\"uptime_s\":%.3f,\"socket\":",
	       ZDEVCTL_JSON_SCHEMA, v->st.daemon_pid, v->st.uptime_ns / 1e9);
	print_string(v->socket);
	printf("},\"page_size\":%lu,", PG_SIZE);
}

static void print_client(const struct zdevctl_view *v, const struct zmsg_client *c)
{
	printf("{\"pid\":%d,\"uid\":%u,\"command\":", c->pid, c->uid);
	print_string(c->comm);
	printf(",\"handles\":%u,\"device_pages\":[", c->handles);
	for (unsigned int i = 0; i < v->st.ndevices; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)c->device_pages[i]);
	printf("]}");
}

void zdevctl_status_json(const struct zdevctl_view *v)
{
	const struct zmsg_status_ok *s = &v->st;

	print_header(v);
	printf("\"clients\":%u,\"clients_total\":%llu,\"kernel_faults\":%s,\"fork_events\":%s,"
	       "\"devices\":[", s->clients, (unsigned long long)s->clients_total,
	       s->features & ZFEAT_KERNEL_FAULTS ? "true" : "false",
	       s->features & ZFEAT_FORK_EVENTS ? "true" : "false");
	for (unsigned int i = 0; i < s->ndevices; i++) {
		const struct zmsg_status_device *d = &s->dev[i];

		printf("%s{\"device\":%u,\"memory_type\":\"%s\",\"plugged\":%s,\"clients\":%u,"
		       "\"pool\":{\"total_pages\":%llu,"
		       "\"used_pages\":%llu,\"free_pages\":%llu,\"limit_pages\":%llu,\"chunks\":%u,"
		       "\"peak_used_pages\":%llu,\"warm_pages\":%llu},"
		       "\"model\":{\"link_gb_per_s\":%g,\"fault_latency_us\":%g,\"added_ms\":%.3f}}",
		       i ? "," : "", i,
		       d->memory_type == ZDEV_MEMORY_DEVICE_COHERENT ? "coherent" : "private",
		       s->unplugged & (1u << i) ? "false" : "true", v->dev[i].clients, (unsigned long long)d->pool_pages_total,
		       (unsigned long long)d->pool_pages_used,
		       (unsigned long long)(d->pool_pages_total - d->pool_pages_used),
		       (unsigned long long)d->pool_limit_pages, d->chunks,
		       (unsigned long long)d->peak_pages_used, (unsigned long long)d->warm_pages,
		       d->link_bytes_per_sec / 1e9, d->fault_latency_ns / 1e3, d->model_added_ns / 1e6);
	}
	printf("],\"client_list\":[");
	for (size_t i = 0; i < v->nclients; i++) {
		printf("%s", i ? "," : "");
		print_client(v, &v->clients[i]);
	}
	printf("]}\n");
}

/* "p50":24.6,"p50_bucket":[16.384,32.768]: the middle of a power-of-two
 * bucket of nanoseconds, and the bucket (null above: no bound), in us. */
static void print_percentile(const char *name, uint64_t ns)
{
	uint64_t lo, hi;

	zdevctl_latency_bucket(ns, &lo, &hi);
	printf("\"%s\":%.3f,\"%s_bucket\":", name, ns / 1e3, name);
	if (!ns)
		printf("null");
	else if (hi == UINT64_MAX)
		printf("[%.3f,null]", lo / 1e3);
	else
		printf("[%.3f,%.3f]", lo / 1e3, hi / 1e3);
}

static void print_device_stats(const struct zdevctl_view *v, unsigned int i)
{
	const struct zmsg_device_status_ok *d = &v->dev[i];

	printf("%s{\"device\":%u,\"cpu_faults\":%llu,\"device_faults\":%llu,"
	       "\"pages_to_device\":%llu,\"pages_to_system\":%llu,\"exclusive_grants\":%llu,"
	       "\"exclusive_revokes\":%llu,\"peak_used_pages\":%llu}",
	       i ? "," : "", i, (unsigned long long)d->cpu_faults,
	       (unsigned long long)d->device_faults, (unsigned long long)d->pages_to_device,
	       (unsigned long long)d->pages_to_system, (unsigned long long)d->exclusive_grants,
	       (unsigned long long)d->exclusive_revokes,
	       (unsigned long long)v->st.dev[i].peak_pages_used);
}

void zdevctl_stats_json(const struct zdevctl_view *v)
{
	const struct zmsg_status_ok *s = &v->st;

	print_header(v);
	printf("\"cpu_faults\":%llu,\"device_faults\":%llu,\"pages_to_device\":%llu,"
	       "\"pages_to_system\":%llu,\"exclusive_grants\":%llu,\"exclusive_revokes\":%llu,"
	       "\"fault_latency_us\":{",
	       (unsigned long long)s->cpu_faults, (unsigned long long)s->device_faults,
	       (unsigned long long)s->pages_to_device, (unsigned long long)s->pages_to_system,
	       (unsigned long long)s->exclusive_grants, (unsigned long long)s->exclusive_revokes);
	print_percentile("p50", s->fault_p50_ns);
	printf(",");
	print_percentile("p99", s->fault_p99_ns);
	printf(",\"max\":%.3f},\"clients_total\":%llu,\"peak_used_pages\":[", s->fault_max_ns / 1e3,
	       (unsigned long long)s->clients_total);
	for (unsigned int i = 0; i < s->ndevices; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)s->dev[i].peak_pages_used);
	printf("],\"devices\":[");
	for (unsigned int i = 0; i < s->ndevices; i++)
		print_device_stats(v, i);
	printf("]}\n");
}
