/* SPDX-License-Identifier: MIT */
/* zdevctl: asks a running zdevd for status and stats. See zdevctl(8). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

static const char usage[] = "usage: zdevctl [--socket PATH] status|stats [--json]\n";

static int query(const char *path, struct zmsg_status_ok *out)
{
	union zmsg m;
	int fd, ret;

	fd = zmsg_connect(path);
	if (fd < 0)
		return fd;
	zmsg_init(&m, ZMSG_STATUS, 1);
	ret = zmsg_send(fd, &m, -1);
	if (!ret)
		ret = zmsg_recv(fd, &m, NULL);
	if (ret >= 0)
		ret = ret == ZMSG_STATUS_OK ? m.status_ok.status : -EPROTO;
	if (!ret)
		*out = m.status_ok;
	close(fd);
	return ret;
}

static void print_status(const struct zmsg_status_ok *s, bool json)
{
	if (json) {
		printf("{\"clients\":%u,\"clients_total\":%llu,\"kernel_faults\":%s,"
		       "\"fork_events\":%s,\"devices\":[", s->clients,
		       (unsigned long long)s->clients_total,
		       s->features & ZFEAT_KERNEL_FAULTS ? "true" : "false",
		       s->features & ZFEAT_FORK_EVENTS ? "true" : "false");
		for (unsigned int i = 0; i < s->ndevices; i++) {
			const struct zmsg_status_device *d = &s->dev[i];

			printf("%s{\"device\":%u,\"pool\":{\"total_pages\":%llu,\"used_pages\":%llu,"
			       "\"free_pages\":%llu,\"limit_pages\":%llu,\"chunks\":%u,"
			       "\"peak_used_pages\":%llu}}",
			       i ? "," : "", i, (unsigned long long)d->pool_pages_total,
			       (unsigned long long)d->pool_pages_used,
			       (unsigned long long)(d->pool_pages_total - d->pool_pages_used),
			       (unsigned long long)d->pool_limit_pages, d->chunks,
			       (unsigned long long)d->peak_pages_used);
		}
		printf("]}\n");
		return;
	}
	printf("clients: %u (%llu served in all)\n", s->clients,
	       (unsigned long long)s->clients_total);
	for (unsigned int i = 0; i < s->ndevices; i++) {
		const struct zmsg_status_device *d = &s->dev[i];

		printf("device %u: pool %llu pages (%u chunks), %llu used, %llu free, limit %llu, "
		       "peak %llu used\n", i,
		       (unsigned long long)d->pool_pages_total, d->chunks,
		       (unsigned long long)d->pool_pages_used,
		       (unsigned long long)(d->pool_pages_total - d->pool_pages_used),
		       (unsigned long long)d->pool_limit_pages,
		       (unsigned long long)d->peak_pages_used);
	}
	/* What every client gets; zdev_get_features(3) says what each means. */
	printf("kernel-mode faults: %s\nfork events: %s\n",
	       s->features & ZFEAT_KERNEL_FAULTS ? "yes" : "no (system calls on device pages fail with EFAULT)",
	       s->features & ZFEAT_FORK_EVENTS ? "yes" : "no (device pages come home before a fork)");
}

static void print_stats_json(const struct zmsg_status_ok *s)
{
	printf("{\"cpu_faults\":%llu,\"pages_to_device\":%llu,\"pages_to_system\":%llu,"
	       "\"exclusive_grants\":%llu,\"exclusive_revokes\":%llu,"
	       "\"fault_latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
	       "\"clients_total\":%llu,\"peak_used_pages\":[",
	       (unsigned long long)s->cpu_faults, (unsigned long long)s->pages_to_device,
	       (unsigned long long)s->pages_to_system, (unsigned long long)s->exclusive_grants,
	       (unsigned long long)s->exclusive_revokes, s->fault_p50_ns / 1e3,
	       s->fault_p99_ns / 1e3, s->fault_max_ns / 1e3,
	       (unsigned long long)s->clients_total);
	for (unsigned int i = 0; i < s->ndevices; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)s->dev[i].peak_pages_used);
	printf("]}\n");
}

static void print_stats(const struct zmsg_status_ok *s, bool json)
{
	if (json) {
		print_stats_json(s);
		return;
	}
	printf("cpu faults served: %llu\npages to device: %llu\npages to system: %llu\n"
	       "exclusive grants: %llu\nexclusive revokes: %llu\n"
	       "fault service latency: p50 %.1f us, p99 %.1f us, max %.1f us\n",
	       (unsigned long long)s->cpu_faults, (unsigned long long)s->pages_to_device,
	       (unsigned long long)s->pages_to_system, (unsigned long long)s->exclusive_grants,
	       (unsigned long long)s->exclusive_revokes, s->fault_p50_ns / 1e3,
	       s->fault_p99_ns / 1e3, s->fault_max_ns / 1e3);
	printf("client processes served: %llu\n", (unsigned long long)s->clients_total);
	for (unsigned int i = 0; i < s->ndevices; i++)
		printf("device %u: peak pages used: %llu\n", i,
		       (unsigned long long)s->dev[i].peak_pages_used);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char path[108];
	struct zmsg_status_ok st = { 0 };
	bool json = false;
	const char *cmd;
	int c, ret;

	if (proto_default_socket(path, sizeof(path))) {
		fprintf(stderr, "zdevctl: socket path too long\n");
		return 1;
	}
	while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			snprintf(path, sizeof(path), "%s", optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 1;
		}
	}
	/* --json may also follow the command */
	if (optind < argc && argc - optind == 2 && !strcmp(argv[optind + 1], "--json"))
		json = true;
	else if (argc - optind != 1) {
		fputs(usage, stderr);
		return 1;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "status") && strcmp(cmd, "stats")) {
		fputs(usage, stderr);
		return 1;
	}
	ret = query(path, &st);
	if (ret) {
		fprintf(stderr, "zdevctl: %s: %s\n", path, strerror(-ret));
		return 1;
	}
	if (!strcmp(cmd, "status"))
		print_status(&st, json);
	else
		print_stats(&st, json);
	return 0;
}
