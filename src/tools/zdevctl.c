/* SPDX-License-Identifier: MIT */
/* zdevctl: asks a running zdevd for status and stats. See zdevctl(8). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/plot.h"
#include "tools/zdevctl.h"

/* Exit statuses, in zdevctl(8). */
enum {
	EXIT_NO_ZDEVD = 1,	/* no zdevd answered, or not in a way zdevctl reads */
	EXIT_USAGE = 2,
	EXIT_REFUSED = 3,	/* zdevd did not unplug or plug the device */
	EXIT_PLOT = 4,		/* the trace could not be read, or the picture written */
};

static const char usage[] =
	"usage: zdevctl [--socket PATH] [--json] status|stats\n"
	"       zdevctl [--socket PATH] unplug|plug DEVICE\n"
	"       zdevctl plot TRACE.json OUT.svg\n"
	"       zdevctl --help|--version\n"
	"\n"
	"  status         the devices and their memory, the client processes, and what\n"
	"                 zdevd can give its clients\n"
	"  stats          fault and migration counters, in all and for each device, and\n"
	"                 the latency of the CPU faults zdevd served\n"
	"  unplug DEVICE  take the device away: every page on it comes home to its\n"
	"                 process; requests naming it fail with ENODEV until a plug\n"
	"  plug DEVICE    bring an unplugged device back, fresh and empty\n"
	"  plot TRACE.json OUT.svg\n"
	"                 draw a trace of zdevd --trace: device memory in use over time\n"
	"                 and the CPU fault latency histogram, as SVG\n"
	"  --socket PATH  the zdevd to ask; by default $ZDEV_SOCKET, else\n"
	"                 $XDG_RUNTIME_DIR/zdev/zdevd.sock, else /run/zdev/zdevd.sock\n"
	"  --json         one JSON object, for tools\n"
	"\n"
	"See zdevctl(8).\n";

/* Where the socket path came from, for the message when nobody answers. */
static const char *socket_origin(bool from_option)
{
	const char *env;

	if (from_option)
		return "given with --socket";
	if ((env = getenv("ZDEV_SOCKET")) && *env)
		return "from $ZDEV_SOCKET";
	if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		return "from $XDG_RUNTIME_DIR";
	return "the default: neither ZDEV_SOCKET nor XDG_RUNTIME_DIR is set";
}

static int no_answer(const char *path, bool from_option, int err)
{
	struct stat st;

	switch (err) {
	case -ENOENT:
	case -ECONNREFUSED:
	case -ENOTSOCK:
		fprintf(stderr, "zdevctl: no zdevd answers on %s (%s): %s\n", path,
			socket_origin(from_option), strerror(-err));
		/* zdevd finds its default socket as zdevctl does. */
		if (from_option)
			fprintf(stderr, "zdevctl: start one with 'zdevd --socket %s'", path);
		else
			fprintf(stderr, "zdevctl: start one with 'zdevd', which listens there too");
		fprintf(stderr, ", or name the socket of one that runs with --socket PATH or "
			"ZDEV_SOCKET\n");
		break;
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "zdevctl: %s (%s): %s: the zdevd there does not serve this user\n",
			path, socket_origin(from_option), strerror(-err));
		break;
	case -ECONNRESET:
	case -EPIPE:
		if (!stat(path, &st) && st.st_uid != geteuid())
			fprintf(stderr, "zdevctl: the zdevd on %s hung up without an answer: it "
				"serves only its own user, uid %u\n", path, (unsigned int)st.st_uid);
		else
			fprintf(stderr, "zdevctl: the zdevd on %s hung up without an answer: it "
				"may be exiting\n", path);
		break;
	case -EMSGSIZE:
	case -EPROTO:
	case -EBADMSG:
		fprintf(stderr, "zdevctl: the zdevd on %s answered in another protocol than "
			"zdevctl's (version %d): use the zdevctl of the same zdev\n", path,
			ZDEV_PROTO_VERSION);
		break;
	default:
		fprintf(stderr, "zdevctl: %s: %s\n", path, strerror(-err));
	}
	return EXIT_NO_ZDEVD;
}

/* zdevd's refusal of an unplug or a plug, in words. */
static int refused(const char *cmd, unsigned int device, int status)
{
	switch (status) {
	case -EALREADY:
		fprintf(stderr, "zdevctl: device %u is %s already\n", device,
			!strcmp(cmd, "unplug") ? "unplugged" : "plugged");
		break;
	case -ENODEV:
		fprintf(stderr, "zdevctl: zdevd has no device %u\n", device);
		break;
	case -EPERM:
	case -EACCES:
		fprintf(stderr, "zdevctl: %s device %u: %s: only root and the user zdevd runs "
			"as may %s devices\n", cmd, device, strerror(-status), cmd);
		break;
	case -EBUSY:
		fprintf(stderr, "zdevctl: unplug device %u: %s: some of its pages could not "
			"come home (zdevd's log says more); it stays plugged\n", device,
			strerror(-status));
		break;
	default:
		fprintf(stderr, "zdevctl: %s device %u: %s\n", cmd, device, strerror(-status));
	}
	return EXIT_REFUSED;
}

/* unplug DEVICE, plug DEVICE. */
static int plug_command(const char *path, bool from_option, const char *cmd, int argc,
			char **argv)
{
	unsigned long device;
	uint64_t moved = 0;
	char *end;
	int status, ret;

	if (argc != 2) {
		fprintf(stderr, "zdevctl: %s takes one argument, a device number; try zdevctl "
			"--help\n", cmd);
		return EXIT_USAGE;
	}
	errno = 0;
	device = strtoul(argv[1], &end, 10);
	if (errno || end == argv[1] || *end || argv[1][0] == '-' || device >= ZDEV_MAX_DEVICES) {
		fprintf(stderr, "zdevctl: %s: '%s' is not a device number (0 to %d)\n", cmd,
			argv[1], ZDEV_MAX_DEVICES - 1);
		return EXIT_USAGE;
	}
	ret = zdevctl_plug(path, !strcmp(cmd, "unplug"), (unsigned int)device, &status, &moved);
	if (ret)
		return no_answer(path, from_option, ret);
	if (status)
		return refused(cmd, (unsigned int)device, status);
	if (!strcmp(cmd, "unplug"))
		printf("device %lu unplugged: %llu %s came home\n", device,
		       (unsigned long long)moved, moved == 1 ? "page" : "pages");
	else
		printf("device %lu plugged\n", device);
	return 0;
}

/* plot TRACE.json OUT.svg: asks no zdevd. */
static int plot_command(bool json, int argc, char **argv)
{
	if (json) {
		fprintf(stderr, "zdevctl: plot has no JSON output\n");
		return EXIT_USAGE;
	}
	if (argc != 3) {
		fprintf(stderr, "zdevctl: plot takes two arguments, a trace of zdevd --trace and "
			"the SVG file to write; try zdevctl --help\n");
		return EXIT_USAGE;
	}
	return plot_trace("zdevctl", argv[1], argv[2]) ? EXIT_PLOT : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false, from_option = false, status;
	struct zdevctl_view view;
	char path[108];
	const char *cmd;
	int c, ret;

	if (proto_default_socket(path, sizeof(path))) {
		fprintf(stderr, "zdevctl: the socket path from the environment is too long\n");
		return EXIT_USAGE;
	}
	while ((c = getopt_long(argc, argv, "s:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (snprintf(path, sizeof(path), "%s", optarg) >= (int)sizeof(path)) {
				fprintf(stderr, "zdevctl: --socket %s: too long for a socket path\n",
					optarg);
				return EXIT_USAGE;
			}
			from_option = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("zdevctl (zdev) %s, protocol version %d\n", PACKAGE_VERSION,
			       ZDEV_PROTO_VERSION);
			return 0;
		default:
			fputs("zdevctl: try zdevctl --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (!strcmp(cmd, "plot"))
		return plot_command(json, argc - optind, argv + optind);
	if (!strcmp(cmd, "unplug") || !strcmp(cmd, "plug")) {
		if (json) {
			fprintf(stderr, "zdevctl: %s has no JSON output\n", cmd);
			return EXIT_USAGE;
		}
		return plug_command(path, from_option, cmd, argc - optind, argv + optind);
	}
	if (strcmp(cmd, "status") && strcmp(cmd, "stats")) {
		fprintf(stderr, "zdevctl: '%s' is not a command; try zdevctl --help\n", cmd);
		return EXIT_USAGE;
	}
	/* --json may also follow the command */
	if (argc - optind == 2 && !strcmp(argv[optind + 1], "--json")) {
		json = true;
	} else if (argc - optind != 1) {
		fprintf(stderr, "zdevctl: %s takes no argument '%s'; try zdevctl --help\n", cmd,
			argv[optind + 1]);
		return EXIT_USAGE;
	}
	status = !strcmp(cmd, "status");
	ret = zdevctl_query(path, status, &view);
	if (ret)
		return no_answer(path, from_option, ret);
	if (status && json)
		zdevctl_status_json(&view);
	else if (status)
		zdevctl_status_text(&view);
	else if (json)
		zdevctl_stats_json(&view);
	else
		zdevctl_stats_text(&view);
	zdevctl_view_free(&view);
	return 0;
}
