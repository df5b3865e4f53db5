/* SPDX-License-Identifier: MIT */
/* zdevd in the background: see detach.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "zdevd/detach.h"

/* The child's end of the pipe to the waiting process, or -1. */
static int ready_pipe = -1;

/* The waiting process: exits when the child serves or has died. */
static void __attribute__((noreturn)) wait_for_child(pid_t child, int fd)
{
	char byte;
	ssize_t n;
	int status;

	while ((n = read(fd, &byte, 1)) < 0 && errno == EINTR)
		;
	if (n == 1)
		_exit(0);
	/* End of file: the child exited, having said why on standard error. */
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(1);
	}
	_exit(WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
}

int detach_start(void)
{
	int fds[2], ret;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC)) {
		ret = -errno;
		fprintf(stderr, "zdevd: pipe: %s\n", strerror(errno));
		return ret;
	}
	/* Nothing buffered may be written twice. */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		fprintf(stderr, "zdevd: fork: %s\n", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return ret;
	}
	if (pid > 0) {
		close(fds[1]);
		wait_for_child(pid, fds[0]);
	}
	close(fds[0]);
	ready_pipe = fds[1];
	return 0;
}

int detach_leave_session(void)
{
	int ret;

	/* A new session without a terminal: no SIGHUP when the terminal
	 * goes, no SIGINT from its ^C. */
	if (setsid() < 0) {
		ret = -errno;
		fprintf(stderr, "zdevd: setsid: %s\n", strerror(errno));
		return ret;
	}
	/* The paths zdevd uses later were made absolute (options.c). */
	if (chdir("/")) {
		ret = -errno;
		fprintf(stderr, "zdevd: chdir /: %s\n", strerror(errno));
		return ret;
	}
	return 0;
}

int detach_finish(void)
{
	int fd, ret = 0;

	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "zdevd: /dev/null: %s\n", strerror(errno));
		return ret;
	}
	fflush(NULL);
	/* Whoever started zdevd may wait for the end of its output (a shell's
	 * $(...), a pipe): once detached, zdevd holds none of it open. */
	for (int i = 0; i <= 2; i++) {
		if (i != fd && dup2(fd, i) < 0) {
			ret = -errno;
			fprintf(stderr, "zdevd: /dev/null: %s\n", strerror(errno));
			goto out_close;
		}
	}
	log_to_syslog("zdevd");
	while (write(ready_pipe, "", 1) < 0 && errno == EINTR)
		;
	close(ready_pipe);
	ready_pipe = -1;
out_close:
	if (fd > 2)
		close(fd);
	return ret;
}
