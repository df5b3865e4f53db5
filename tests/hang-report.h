/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_HANG_REPORT_H
#define ZDEV_TEST_HANG_REPORT_H

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Where a hung test is stuck, printed to stderr (which the test's log
 * keeps) before it is killed: every thread of the test process and of its
 * descendants (zdevd among them), the kernel's view from /proc, and gdb's
 * backtraces where gdb is installed (as root: an ordinary user's watchdog
 * may not trace the test).
 */

static inline void hang_cat(const char *path, const char *label)
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

static inline pid_t hang_ppid(pid_t pid)
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

static inline bool hang_descends(pid_t pid, pid_t from)
{
	for (int depth = 0; pid > 1 && depth < 32; depth++) {
		if (pid == from)
			return true;
		pid = hang_ppid(pid);
	}
	return false;
}

static inline void hang_gdb(pid_t pid)
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

static inline void hang_dump_process(pid_t pid)
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
		hang_cat(path, "comm");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/wchan", (int)pid, t->d_name);
		hang_cat(path, "wchan");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", (int)pid, t->d_name);
		hang_cat(path, "syscall");
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", (int)pid, t->d_name);
		hang_cat(path, "stack");
	}
	closedir(tasks);
	hang_gdb(pid);
}

/* Dumps pid and its descendants, but not the watchdog. */
static inline void hang_report(pid_t pid, const char *name)
{
	const pid_t self = getpid();
	struct dirent *e;
	DIR *proc;

	fprintf(stderr, "# %s: about to time out; its threads and its descendants':\n", name);
	proc = opendir("/proc");
	while (proc && (e = readdir(proc))) {
		pid_t p = (pid_t)atoi(e->d_name);

		if (p > 0 && p != self && hang_descends(p, pid))
			hang_dump_process(p);
	}
	if (proc)
		closedir(proc);
	fflush(stderr);
}

/*
 * A process of its own watches the calling one, for seconds: a process hung
 * with every signal blocked would never run a handler. It is a grandchild,
 * so that no wait() of the watched one reaps it, and it ends when the
 * watched one does; when time is up, it reports, and kills the watched
 * process if asked (when nothing else would end it).
 */
static inline void hang_watch(unsigned int seconds, const char *name, bool kill_it)
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
		if (poll(&p, 1, (int)seconds * 1000) == 0) {
			hang_report(pid, name);
			if (kill_it)
				kill(pid, SIGKILL);
		}
		_exit(0);
	}
	waitpid(middle, NULL, 0);
}

#endif
