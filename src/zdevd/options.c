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
#include <unistd.h>

#include "units.h"
#include "zdevd_limits.h"
#include "zdevd/model_options.h"
#include "zdevd/options.h"
#include "zdevd/peer.h"

static const char usage[] =
	"usage: zdevd [--socket PATH] [--devices N] [--memory SIZE] [--chunk SIZE]\n"
	"             [--memory-type private|coherent[,...]] [--warm SIZE]\n"
	"             [--client-memory SIZE] [--client-registered SIZE] [--client-handles N]\n"
	"             [--client-pending N]\n"
	"             [--link [DEV=]GBPS|pcie4|pcie5|cxl] [--fault-latency [DEV=]USEC]\n"
	"             [--group GROUP] [--pool-debug] [--foreground] [--pidfile FILE]\n"
	"             [--ready-fd FD] [--trace FILE] [--verbose] [--version] [--help]\n";

/* "zdevd: --OPTION: 'ARG': why" */
static int complain(const char *option, const char *arg, const char *why)
{
	fprintf(stderr, "zdevd: --%s: '%s': %s\n", option, arg, why);
	return -EINVAL;
}

static int parse_size(const char *option, const char *arg, const struct size_rule *rule,
		      size_t *out)
{
	char why[UNITS_WHY_MAX];

	if (units_parse_size(arg, rule, out, why, sizeof(why)))
		return complain(option, arg, why);
	return 0;
}

static int parse_count(const char *option, const char *arg, uint64_t min, uint64_t max,
		       unsigned int *out)
{
	char why[UNITS_WHY_MAX];
	uint64_t v;

	if (units_parse_count(arg, min, max, &v, why, sizeof(why)))
		return complain(option, arg, why);
	*out = (unsigned int)v;
	return 0;
}

/* --group: a group's name, or else its number. 0 or -EINVAL with a
 * message. */
static int parse_group(const char *arg, gid_t *out)
{
	char why[UNITS_WHY_MAX];
	uint64_t gid;
	int ret;

	ret = peer_group_by_name(arg, out);
	if (ret != -ENOENT)
		return ret ? complain("group", arg, strerror(-ret)) : 0;
	/* (gid_t)-1 is no group: chown() takes it as "leave the group". */
	if (!arg[0] || arg[0] < '0' || arg[0] > '9')
		return complain("group", arg, "no such group");
	if (units_parse_count(arg, 0, (gid_t)-2, &gid, why, sizeof(why)))
		return complain("group", arg, why);
	*out = (gid_t)gid;
	return 0;
}

/* --ready-fd: a descriptor zdevd was started with. Setting FD_CLOEXEC
 * checks that it is open, so a wrong number fails at start, not when
 * zdevd is ready. 0 or -EINVAL with a message. */
static int parse_ready_fd(const char *s, int *out)
{
	char why[UNITS_WHY_MAX];
	uint64_t fd;

	if (units_parse_count(s, 0, INT_MAX, &fd, why, sizeof(why)))
		return complain("ready-fd", s, why);
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC))
		return complain("ready-fd", s, strerror(errno));
	*out = (int)fd;
	return 0;
}

/*
 * A path for after zdevd detached, which changes to / so as to keep no
 * file system busy: a relative one is taken from the directory zdevd
 * started in. 0 or -EINVAL with a message.
 */
static int absolute_path(const char *option, char *path, size_t len)
{
	char cwd[PATH_MAX], joined[PATH_MAX];

	if (path[0] == '/' || !path[0])
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return complain(option, path, strerror(errno));
	if (snprintf(joined, sizeof(joined), "%s/%s", cwd, path) >= (int)sizeof(joined) ||
	    strlen(joined) >= len)
		return complain(option, path, "too long once made absolute");
	strcpy(path, joined);
	return 0;
}

static int copy_path(const char *option, const char *arg, char *path, size_t len)
{
	if (!arg[0])
		return complain(option, arg, "an empty path");
	if (snprintf(path, len, "%s", arg) >= (int)len)
		return complain(option, arg, "too long");
	return 0;
}

/*
 * --chunk against --memory, once both are known. Without --chunk, the
 * largest multiple of the block up to the default that divides --memory:
 * the pool only ever holds whole chunks.
 */
static int check_chunk(struct devset_config *devs, const char *chunk_arg)
{
	char limit[UNITS_FORMAT_MAX], why[UNITS_WHY_MAX];

	if (!chunk_arg) {
		devs->chunk = devs->memory < ZDEVD_CHUNK_DEFAULT ? devs->memory
								 : ZDEVD_CHUNK_DEFAULT;
		while (devs->memory % devs->chunk)
			devs->chunk -= ZDEVD_BLOCK;
		return 0;
	}
	units_format_exact(limit, sizeof(limit), devs->memory);
	if (devs->chunk > devs->memory) {
		snprintf(why, sizeof(why), "must be at most --memory (%s)", limit);
		return complain("chunk", chunk_arg, why);
	}
	if (devs->memory % devs->chunk) {
		snprintf(why, sizeof(why), "must divide --memory (%s) into whole chunks", limit);
		return complain("chunk", chunk_arg, why);
	}
	return 0;
}

/*
 * --memory-type: a comma-separated list, one type per device from device 0
 * on; devices not listed are private. Its length is checked against
 * --devices once both are known (check_memory_types). 0 or -EINVAL with a
 * message.
 */
static int parse_memory_types(const char *arg, struct devset_config *devs, unsigned int *n)
{
	const char *p = arg;

	memset(devs->memtype, 0, sizeof(devs->memtype));
	for (*n = 0;; p++) {
		size_t len = strcspn(p, ",");

		if (*n == ZDEV_MAX_DEVICES)
			return complain("memory-type", arg, "names more devices than zdevd can have");
		if (len == 7 && !strncmp(p, "private", len))
			devs->memtype[(*n)++] = REFPOOL_MEMTYPE_PRIVATE;
		else if (len == 8 && !strncmp(p, "coherent", len))
			devs->memtype[(*n)++] = REFPOOL_MEMTYPE_COHERENT;
		else
			return complain("memory-type", arg,
					"each type must be 'private' or 'coherent'");
		p += len;
		if (!*p)
			return 0;
	}
}

static int check_memory_types(const struct devset_config *devs, const char *arg, unsigned int n)
{
	char why[UNITS_WHY_MAX];

	if (n <= devs->ndevices)
		return 0;
	snprintf(why, sizeof(why), "names %u devices, but --devices is %u", n, devs->ndevices);
	return complain("memory-type", arg, why);
}

static void print_version(void)
{
	printf("zdevd (zdev) %s\n", PACKAGE_VERSION);
}

int options_parse(int argc, char **argv, struct zdevd_config *cfg)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "devices", required_argument, NULL, 'd' },
		{ "memory", required_argument, NULL, 'm' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "memory-type", required_argument, NULL, 't' },
		{ "warm", required_argument, NULL, 'w' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pool-debug", no_argument, NULL, 'D' },
		{ "client-memory", required_argument, NULL, 'M' },
		{ "client-registered", required_argument, NULL, 'R' },
		{ "client-handles", required_argument, NULL, 'H' },
		{ "client-pending", required_argument, NULL, 'P' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "trace", required_argument, NULL, 'T' },
		{ "group", required_argument, NULL, 'g' },
		{ "link", required_argument, NULL, 'L' },
		{ "fault-latency", required_argument, NULL, 'F' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct size_rule memory_rule = ZDEVD_MEMORY_RULE,
				      chunk_rule = ZDEVD_CHUNK_RULE,
				      client_memory_rule = ZDEVD_CLIENT_MEMORY_RULE,
				      warm_rule = ZDEVD_WARM_RULE,
				      client_registered_rule = ZDEVD_CLIENT_REGISTERED_RULE;
	const char *chunk_arg = NULL, *types_arg = NULL;
	struct model_args model = { .top_dev = -1 };
	unsigned int ntypes = 0;
	int c, ret = 0;

	*cfg = (struct zdevd_config){
		.devs = { .ndevices = ZDEVD_DEVICES_DEFAULT, .memory = ZDEVD_MEMORY_DEFAULT,
			  .client_registered = ZDEVD_CLIENT_REGISTERED_DEFAULT,
			  .warm = ZDEVD_WARM_ALL },
		.client_handles = ZDEVD_CLIENT_HANDLES_DEFAULT,
		.client_pending = ZDEVD_CLIENT_PENDING_DEFAULT,
		.ready_fd = -1,
	};
	if (proto_default_socket(cfg->socket_path, sizeof(cfg->socket_path))) {
		fprintf(stderr, "zdevd: the default socket path is too long\n");
		return -ENAMETOOLONG;
	}
	while (!ret && (c = getopt_long(argc, argv, "s:d:m:c:t:w:fvDhM:R:H:P:r:g:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ret = copy_path("socket", optarg, cfg->socket_path, sizeof(cfg->socket_path));
			break;
		case 'p':
			ret = copy_path("pidfile", optarg, cfg->pidfile, sizeof(cfg->pidfile));
			break;
		case 'T':
			ret = copy_path("trace", optarg, cfg->trace, sizeof(cfg->trace));
			break;
		case 'd':
			ret = parse_count("devices", optarg, 1, ZDEV_MAX_DEVICES,
					  &cfg->devs.ndevices);
			break;
		case 'H':
			ret = parse_count("client-handles", optarg, 0, ZDEVD_CLIENT_HANDLES_MAX,
					  &cfg->client_handles);
			break;
		case 'P':
			ret = parse_count("client-pending", optarg, 0, ZDEVD_CLIENT_PENDING_MAX,
					  &cfg->client_pending);
			break;
		case 'm':
			ret = parse_size("memory", optarg, &memory_rule, &cfg->devs.memory);
			break;
		case 'c':
			ret = parse_size("chunk", optarg, &chunk_rule, &cfg->devs.chunk);
			chunk_arg = optarg;
			break;
		case 't':
			ret = parse_memory_types(optarg, &cfg->devs, &ntypes);
			types_arg = optarg;
			break;
		case 'w':
			ret = parse_size("warm", optarg, &warm_rule, &cfg->devs.warm);
			break;
		case 'M':
			ret = parse_size("client-memory", optarg, &client_memory_rule,
					 &cfg->devs.client_memory);
			break;
		case 'R':
			ret = parse_size("client-registered", optarg, &client_registered_rule,
					 &cfg->devs.client_registered);
			break;
		case 'g':
			ret = parse_group(optarg, &cfg->group);
			cfg->have_group = !ret;
			break;
		case 'L': ret = model_args_link(&model, optarg); break;
		case 'F': ret = model_args_fault(&model, optarg); break;
		case 'r': ret = parse_ready_fd(optarg, &cfg->ready_fd); break;
		case 'f': cfg->foreground = true; break;
		case 'v': cfg->verbose = true; break;
		case 'D': cfg->devs.pool_debug = true; break;
		case 'V': print_version(); exit(0);
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return -EINVAL;
		}
	}
	if (ret)
		return ret;
	if (optind < argc) {
		fprintf(stderr, "zdevd: '%s': not an option\n", argv[optind]);
		fputs(usage, stderr);
		return -EINVAL;
	}
	ret = check_chunk(&cfg->devs, chunk_arg);
	if (!ret)
		ret = check_memory_types(&cfg->devs, types_arg, ntypes);
	if (!ret)
		ret = model_args_apply(&model, &cfg->devs);
	if (!ret && !cfg->foreground)
		ret = absolute_path("socket", cfg->socket_path, sizeof(cfg->socket_path));
	if (!ret && !cfg->foreground)
		ret = absolute_path("pidfile", cfg->pidfile, sizeof(cfg->pidfile));
	if (!ret && !cfg->foreground)
		ret = absolute_path("trace", cfg->trace, sizeof(cfg->trace));
	return ret;
}
