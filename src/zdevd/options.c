/* SPDX-License-Identifier: MIT */
/* zdevd's command line: its options, their defaults and their checks. See zdevd(8). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zdevd/options.h"
#include "zdevd/peer.h"

static const char usage[] =
	"usage: zdevd [--socket PATH] [--devices N] [--memory SIZE] [--chunk SIZE]\n"
	"             [--client-memory SIZE] [--client-registered SIZE] [--client-handles N]\n"
	"             [--pool-debug] [--foreground] [--ready-fd FD] [--verbose]\n"
	"             [--group GROUP]\n";

static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

/* --ready-fd: a descriptor zdevd was started with. Setting FD_CLOEXEC
 * checks that it is open, so a wrong number fails at start, not when
 * zdevd is ready. 0 or -EINVAL with a message. */
static int parse_ready_fd(const char *s, int *out)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(s, &end, 10);
	if (errno || end == s || *end || fd < 0 || fd > INT_MAX) {
		fprintf(stderr, "zdevd: --ready-fd takes a file descriptor\n");
		return -EINVAL;
	}
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC)) {
		fprintf(stderr, "zdevd: --ready-fd %ld: %s\n", fd, strerror(errno));
		return -EINVAL;
	}
	*out = (int)fd;
	return 0;
}

int options_parse(int argc, char **argv, struct zdevd_config *cfg)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "devices", required_argument, NULL, 'd' },
		{ "memory", required_argument, NULL, 'm' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pool-debug", no_argument, NULL, 'D' },
		{ "client-memory", required_argument, NULL, 'M' },
		{ "client-registered", required_argument, NULL, 'R' },
		{ "client-handles", required_argument, NULL, 'H' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "group", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	*cfg = (struct zdevd_config){
		.devs = { .ndevices = 2, .memory = 1ul << 30, .chunk = 256ul << 20,
			  .client_registered = 1ul << 40 },
		.client_handles = 256,
		.ready_fd = -1,
	};
	if (proto_default_socket(cfg->socket_path, sizeof(cfg->socket_path)))
		return -ENAMETOOLONG;
	while ((c = getopt_long(argc, argv, "s:d:m:c:fvDhM:R:H:r:g:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", optarg) >=
			    (int)sizeof(cfg->socket_path)) {
				fprintf(stderr, "zdevd: socket path too long\n");
				return -EINVAL;
			}
			break;
		case 'd':
			cfg->devs.ndevices = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || cfg->devs.ndevices < 1 || cfg->devs.ndevices > ZDEV_MAX_DEVICES) {
				fprintf(stderr, "zdevd: --devices takes 1 to %d\n", ZDEV_MAX_DEVICES);
				return -EINVAL;
			}
			break;
		case 'H':
			cfg->client_handles = (unsigned int)strtoul(optarg, &end, 10);
			if (*end) {
				fprintf(stderr, "zdevd: --client-handles takes a number\n");
				return -EINVAL;
			}
			break;
		case 'm':
		case 'c':
		case 'M':
		case 'R':
			if (parse_size(optarg, c == 'm' ? &cfg->devs.memory : c == 'c' ? &cfg->devs.chunk
							: c == 'M' ? &cfg->devs.client_memory
								   : &cfg->devs.client_registered)) {
				fprintf(stderr, "zdevd: bad size '%s' (a number with K, M or G)\n", optarg);
				return -EINVAL;
			}
			break;
		case 'g':
			if (peer_parse_group(optarg, &cfg->group))
				return -EINVAL;
			cfg->have_group = true;
			break;
		case 'r':
			if (parse_ready_fd(optarg, &cfg->ready_fd))
				return -EINVAL;
			break;
		case 'f': cfg->foreground = true; break;
		case 'v': cfg->verbose = true; break;
		case 'D': cfg->devs.pool_debug = true; break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return -EINVAL;
		}
	}
	if (optind < argc) {
		fputs(usage, stderr);
		return -EINVAL;
	}
	if (cfg->devs.chunk > cfg->devs.memory)
		cfg->devs.chunk = cfg->devs.memory;
	return 0;
}
