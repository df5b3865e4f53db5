/* SPDX-License-Identifier: MIT */
/* zdev-run: the private zdevd, started for one program and stopped after it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "tools/zdev-run.h"
#include "uffd_probe.h"

#define POLL_MS			10
#define READY_TIMEOUT_MS	10000
/* zdevd evicts every page back to its owner before it exits. */
#define STOP_TIMEOUT_MS		30000

int run_zdevd_check(const char *socket)
{
	int fd = zmsg_connect(socket);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* The child's side of the fork: never returns. */
static void exec_zdevd(const char *exe, const char *socket, unsigned int ndevices,
		       const char *memory, pid_t parent)
{
	char devices[16];
	sigset_t none;
	int fd;

	/* A zdev-run killed outright takes its zdevd along. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
		_exit(RUN_EXIT_FAIL);
	/* Its own session: Ctrl-C and a hangup of the terminal are for the
	 * program; zdevd stops when zdev-run has finished with it. */
	setsid();
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	/* Standard output is the program's alone. */
	dup2(STDERR_FILENO, STDOUT_FILENO);
#ifdef SYS_close_range
	syscall(SYS_close_range, 3, ~0u, 0);
#endif
	snprintf(devices, sizeof(devices), "%u", ndevices);
	execl(exe, exe, "--foreground", "--socket", socket, "--devices", devices, "--memory", memory,
	      (char *)NULL);
	log_err("%s: %s", exe, strerror(errno));
	_exit(RUN_EXIT_FAIL);
}

static void describe_status(char *buf, size_t len, int status)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d, %s", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
}

static int wait_ready(struct run_zdevd *z, const char *exe)
{
	char what[64];
	int status;

	int ret = -ETIMEDOUT;

	for (int waited = 0; waited < READY_TIMEOUT_MS; waited += POLL_MS) {
		if (!run_zdevd_check(z->socket))
			return 0;
		if (wait4(z->pid, &status, WNOHANG, &z->ru) == z->pid) {
			z->pid = 0;
			describe_status(what, sizeof(what), status);
			log_err("%s exited at start (%s); its message, if any, is above", exe, what);
			return -ECHILD;
		}
		if (run_hurry) {
			ret = -EINTR;
			goto out_kill;
		}
		usleep(POLL_MS * 1000);
	}
	log_err("%s did not accept connections on %s within %d s: killed", exe, z->socket,
		READY_TIMEOUT_MS / 1000);
out_kill:
	kill(z->pid, SIGKILL);
	while (waitpid(z->pid, &status, 0) < 0 && errno == EINTR)
		;
	z->pid = 0;
	return ret;
}

/* zdevd starts without userfaultfd, but then serves nobody: say why now. */
static int check_uffd(void)
{
	struct uffd_caps caps;
	int ret = uffd_probe(&caps);

	if (ret == -ENOSYS)
		log_err("this kernel has no userfaultfd (CONFIG_USERFAULTFD), which zdevd needs");
	else if (ret)
		log_err("this user may not create a userfaultfd (%s), so zdevd could serve no process: "
			"allow it with sysctl vm.unprivileged_userfaultfd=1 or read-write access to "
			"/dev/userfaultfd, or set ZDEV_SOCKET to a zdevd that can",
			strerror(-ret));
	return ret;
}

int run_zdevd_start(struct run_zdevd *z, const char *exe, const char *dir, unsigned int ndevices,
		    const char *memory)
{
	pid_t parent = getpid();
	int ret;

	ret = check_uffd();
	if (ret)
		return ret == -ENOSYS ? -ENOSYS : -EPERM;
	if (snprintf(z->socket, sizeof(z->socket), "%s/" RUN_SOCKET_NAME, dir) >=
	    (int)sizeof(z->socket)) {
		log_err("%s: too long for a socket", dir);
		return -ENAMETOOLONG;
	}
	z->pid = fork();
	if (z->pid < 0) {
		ret = -errno;
		z->pid = 0;
		log_err("fork: %s", strerror(-ret));
		return ret;
	}
	if (!z->pid)
		exec_zdevd(exe, z->socket, ndevices, memory, parent);
	return wait_ready(z, exe);
}

/* Waits for zdevd to exit, up to STOP_TIMEOUT_MS or until run_hurry; then
 * kills it. Its wait status. */
static int reap(struct run_zdevd *z)
{
	int status = 0;

	for (int waited = 0;; waited += POLL_MS) {
		pid_t r = wait4(z->pid, &status, WNOHANG, &z->ru);

		if (r == z->pid || (r < 0 && errno != EINTR))
			return status;
		if (waited >= STOP_TIMEOUT_MS || run_hurry)
			break;
		usleep(POLL_MS * 1000);
	}
	if (!run_hurry)
		log_warn("zdevd did not exit within %d s of SIGTERM: killed", STOP_TIMEOUT_MS / 1000);
	kill(z->pid, SIGKILL);
	while (wait4(z->pid, &status, 0, &z->ru) < 0 && errno == EINTR)
		;
	return status;
}

void run_zdevd_stop(struct run_zdevd *z)
{
	char what[64];
	int status;

	if (!z->pid)
		return;
	if (wait4(z->pid, &status, WNOHANG, &z->ru) == z->pid) {
		describe_status(what, sizeof(what), status);
		log_warn("zdevd ended while the program ran (%s): the program went on without a device",
			 what);
	} else {
		kill(z->pid, SIGTERM);
		status = reap(z);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			describe_status(what, sizeof(what), status);
			log_warn("zdevd stopped with %s", what);
		}
	}
	z->pid = 0;
	z->stopped = true;
}
