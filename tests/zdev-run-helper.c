/* SPDX-License-Identifier: MIT */
/*
 * What tests/test-zdev-run*.sh need and a shell lacks:
 *
 *   zdev-run-helper --foreground --socket PATH [zdevd's other options]
 *	A stand-in zdevd: accepts connections on PATH until SIGTERM or SIGINT,
 *	then removes it and exits 0; with --ready-fd FD, writes a newline to
 *	FD and closes it once PATH accepts connections, as zdevd does. With STANDIN_ZDEVD_LOG it appends its
 *	arguments there; with STANDIN_ZDEVD_FAIL=1 it exits 1 at once, as a
 *	zdevd that cannot start.
 *
 *   zdev-run-helper pgrp PROGRAM [ARGS...]
 *	Runs PROGRAM as the leader of a new process group with SIGINT and
 *	SIGQUIT at their defaults, which a shell's background job does not
 *	have, so that a test can send SIGINT to the group as a terminal would.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void log_args(int argc, char **argv)
{
	const char *path = getenv("STANDIN_ZDEVD_LOG");
	FILE *f;

	if (!path || !(f = fopen(path, "a")))
		return;
	fprintf(f, "pid %d:", (int)getpid());
	for (int i = 1; i < argc; i++)
		fprintf(f, " %s", argv[i]);
	fputc('\n', f);
	fclose(f);
}

static int standin_zdevd(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sigaction act = { .sa_handler = on_stop };
	const char *fail = getenv("STANDIN_ZDEVD_FAIL");
	const char *path = NULL;
	int fd, ready = -1;

	log_args(argc, argv);
	if (fail && !strcmp(fail, "1")) {
		fprintf(stderr, "standin-zdevd: failing at start, as asked\n");
		return 1;
	}
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--socket"))
			path = argv[i + 1];
		else if (!strcmp(argv[i], "--ready-fd"))
			ready = atoi(argv[i + 1]);
	}
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "standin-zdevd: no --socket\n");
		return 2;
	}
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
		perror("standin-zdevd");
		return 1;
	}
	if (ready >= 0 && (write(ready, "\n", 1) != 1 || close(ready))) {
		perror("standin-zdevd: --ready-fd");
		return 1;
	}
	while (!stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) > 0) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0)
				close(c);
		}
	}
	unlink(path);
	return 0;
}

static int pgrp(char **argv)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	if (setpgid(0, 0)) {
		perror("setpgid");
		return 1;
	}
	execvp(argv[0], argv);
	perror(argv[0]);
	return 127;
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "pgrp"))
		return pgrp(argv + 2);
	if (argc > 1 && !strncmp(argv[1], "--", 2))
		return standin_zdevd(argc, argv);
	fprintf(stderr, "usage: zdev-run-helper --foreground --socket PATH ... | pgrp PROGRAM [ARGS...]\n");
	return 2;
}
