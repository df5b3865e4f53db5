/* SPDX-License-Identifier: MIT */
/*
 * walltime FILE PROGRAM [ARGS...]: runs PROGRAM and appends its wall time in
 * nanoseconds, a line, to FILE; exits with its status (128 + N when signal N
 * killed it), its standard streams untouched. bench/shim-bench.sh times with
 * it: a shell has no clock finer than a second, and date(1) would add its own
 * start-up, a few milliseconds, to every sample.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "figure.h"

/* Its status as a shell gives it, or 127 when it could not be started. */
static int run(char **argv)
{
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "walltime: fork: %s\n", strerror(errno));
		return 127;
	}
	if (!pid) {
		execvp(argv[0], argv);
		fprintf(stderr, "walltime: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	uint64_t start, end;
	FILE *out;
	int status;

	if (argc < 3) {
		fprintf(stderr, "usage: walltime FILE PROGRAM [ARGS...]\n");
		return 127;
	}
	/* Opened first: a sample that cannot be kept is not worth taking. */
	out = fopen(argv[1], "a");
	if (!out) {
		fprintf(stderr, "walltime: %s: %s\n", argv[1], strerror(errno));
		return 127;
	}
	start = now_ns();
	status = run(argv + 2);
	end = now_ns();
	fprintf(out, "%" PRIu64 "\n", end - start);
	if (fclose(out)) {
		fprintf(stderr, "walltime: %s: %s\n", argv[1], strerror(errno));
		return 127;
	}
	return status;
}
