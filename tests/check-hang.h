/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_CHECK_HANG_H
#define ZDEV_TEST_CHECK_HANG_H

#include <check.h>
#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * A case that outlives its timeout is killed by Check with SIGKILL, and its
 * log says only "Test timeout expired". So that a hang on a machine we cannot
 * log in to still says where it was, a watchdog process wakes a little before
 * each case's timeout and prints to stderr (which the test's log keeps)
 * every thread of the case and of its descendants (zdevd among them): the
 * kernel's view from /proc, and gdb's backtraces where gdb is installed (as
 * root: an ordinary user's watchdog may not trace the case).
 */

#define CHECK_HANG_MAX_CASES 64

/* A case's test, run through check_hang_run() */
struct check_hang_case {
	TTest wrapped;
	const TTest *test;
	double timeout;
};

static struct check_hang_case check_hang_cases[CHECK_HANG_MAX_CASES];
static unsigned int check_hang_ncases;

static inline void check_hang_run(int i);

/* The test to add in test's place: the same, with the alarm armed first. */
static inline const TTest *check_hang_wrap(const TTest *test, double timeout)
{
	struct check_hang_case *c;

	if (check_hang_ncases == CHECK_HANG_MAX_CASES)
		return test;
	c = &check_hang_cases[check_hang_ncases++];
	c->test = test;
	c->timeout = timeout;
	c->wrapped = *test;
	c->wrapped.fn = check_hang_run;
	return &c->wrapped;
}

static inline void check_hang_cat(const char *path, const char *label)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	fprintf(stderr, "    %s: %s%s", label, buf, n && buf[n - 1] == '\n' ? "" : "\n");
}

static inline pid_t check_hang_ppid(pid_t pid)
{
	char path[64], buf[512], *close_paren;
	FILE *f;
	int ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f)) {
		/* the command in parentheses may hold spaces */
		close_paren = strrchr(buf, ')');
		if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) != 1)
			ppid = 0;
	}
	fclose(f);
	return ppid;
}

static inline bool check_hang_descends(pid_t pid, pid_t from)
{
	for (int depth = 0; pid > 1 && depth < 32; depth++) {
		if (pid == from)
			return true;
		pid = check_hang_ppid(pid);
	}
	return false;
}

static inline void check_hang_gdb(pid_t pid)
{
	char spid[16];
	pid_t gdb;

	if (access("/usr/bin/gdb", X_OK))
		return;
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	gdb = fork();
	if (gdb == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl("/usr/bin/gdb", "gdb", "-batch", "-nx", "-p", spid, "-ex",
		      "thread apply all bt 30", (char *)NULL);
		_exit(127);
	}
	if (gdb > 0)
		waitpid(gdb, NULL, 0);
}

static inline void check_hang_dump_process(pid_t pid)
{
	char path[320];
	struct dirent *t;
	DIR *tasks;

	fprintf(stderr, "  process %d\n", (int)pid);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	tasks = opendir(path);
	if (!tasks)
		return;
	while ((t = readdir(tasks))) {
		if (t->d_name[0] == '.')
			continue;
		fprintf(stderr, "   thread %s\n", t->d_name);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, t->d_name);
		check_hang_cat(path, "comm");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/wchan", (int)pid, t->d_name);
		check_hang_cat(path, "wchan");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int)pid, t->d_name);
		check_hang_cat(path, "syscall");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", (int)pid, t->d_name);
		check_hang_cat(path, "stack");
	}
	closedir(tasks);
	check_hang_gdb(pid);
}

/* Dumps the case (pid) and its descendants, but not the watchdog. */
static inline void check_hang_report(pid_t pid, const char *name)
{
	const pid_t self = getpid();
	struct dirent *e;
	DIR *proc;

	fprintf(stderr, "# %s: about to time out; its threads and its descendants':\n", name);
	proc = opendir("/proc");
	while (proc && (e = readdir(proc))) {
		pid_t p = (pid_t)atoi(e->d_name);

		if (p > 0 && p != self && check_hang_descends(p, pid))
			check_hang_dump_process(p);
	}
	if (proc)
		closedir(proc);
	fflush(stderr);
}

/*
 * A process of its own watches the case: a case hung with every signal
 * blocked would never run a handler. It is a grandchild, so that no wait()
 * of the case's reaps it, and it ends when the case does.
 */
static inline void check_hang_watch(unsigned int seconds, const char *name)
{
	const pid_t pid = getpid();
	pid_t middle = fork();

	if (middle < 0)
		return;
	if (middle == 0) {
		struct pollfd p = { .events = POLLIN };

		p.fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (p.fd < 0 || fork() != 0)
			_exit(0);
		/* The case's exit makes its pidfd readable. */
		if (poll(&p, 1, (int)seconds * 1000) == 0)
			check_hang_report(pid, name);
		_exit(0);
	}
	waitpid(middle, NULL, 0);
}

/* In the forked case: Check names the running test, not its setup. */
static inline void check_hang_run(int i)
{
	const char *mult_env = getenv("CK_TIMEOUT_MULTIPLIER");
	const char *default_env = getenv("CK_DEFAULT_TIMEOUT");
	double timeout = default_env ? atof(default_env) : 4;
	double mult = mult_env ? atof(mult_env) : 1;
	const struct check_hang_case *c = NULL;
	double margin;

	for (unsigned int k = 0; k < check_hang_ncases && !c; k++)
		if (!strcmp(check_hang_cases[k].test->name, tcase_name()))
			c = &check_hang_cases[k];
	if (!c)
		abort();
	if (c->timeout > 0)
		timeout = c->timeout;
	if (mult > 0)
		timeout *= mult;
	/* gdb takes seconds to attach to a sanitized program */
	margin = timeout >= 60 ? 20 : timeout / 4;
	if (timeout - margin >= 1)
		check_hang_watch((unsigned int)(timeout - margin), c->test->name);
	c->test->fn(i);
}

#endif
