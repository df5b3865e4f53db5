/* SPDX-License-Identifier: MIT */
/* zdev-run: the private zdevd, started for one program and stopped after it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "tools/zdev-run.h"
#include "uffd_probe.h"

/* Only without pidfd_open (Linux before 5.3): how often the stop looks. */
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

/* A stand-in zdevd that accepts and never answers cannot hold the summary
 * up longer than this. */
#define TOTALS_TIMEOUT_MS	2000

int run_zdevd_totals(const struct run_zdevd *z, struct run_zdevd_totals *t)
{
	const struct timeval tv = { .tv_sec = TOTALS_TIMEOUT_MS / 1000,
				    .tv_usec = TOTALS_TIMEOUT_MS % 1000 * 1000 };
	union zmsg m;
	int fd, ret;

	if (!z->pid)
		return -ENOENT;
	fd = zmsg_connect(z->socket);
	if (fd < 0)
		return fd;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		ret = -errno;
		goto out_close;
	}
	ret = zmsg_ask(fd, ZMSG_STATUS, ZMSG_STATUS_OK, 0, 0, 1, &m) ?: m.status_ok.status;
	if (ret)
		goto out_close;
	*t = (struct run_zdevd_totals){
		.counts = {
			.cpu_faults = m.status_ok.cpu_faults,
			.device_faults = m.status_ok.device_faults,
			.pages_to_device = m.status_ok.pages_to_device,
			.pages_to_system = m.status_ok.pages_to_system,
			.exclusive_grants = m.status_ok.exclusive_grants,
			.exclusive_revokes = m.status_ok.exclusive_revokes,
			.fault_max_ns = m.status_ok.fault_max_ns,
		},
		.fault_p50_ns = m.status_ok.fault_p50_ns,
		.fault_p99_ns = m.status_ok.fault_p99_ns,
	};
	for (uint32_t i = 0; i < m.status_ok.ndevices && i < ZDEV_MAX_DEVICES; i++)
		t->counts.peak_device_pages += m.status_ok.dev[i].peak_pages_used;
out_close:
	close(fd);
	return ret;
}

/* zdevd's ready descriptor (--ready-fd), the write end of a pipe: the first
 * after standard error, the only descriptor zdevd gets besides those. */
#define READY_FD		3

/* The child's side of the fork: never returns. */
static void exec_zdevd(const char *exe, const char *socket, unsigned int ndevices,
		       const char *memory, const char *memory_type, const char *warm,
		       const char *trace, const char *const *extra, pid_t parent, int ready)
{
	const char *argv[RUN_ZDEVD_ARGS_MAX];
	unsigned int n = 0;
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
	/* First, while no descriptor below it has moved: it may be one of
	 * 0 to 2 if zdev-run was started with them closed. dup2() clears
	 * O_CLOEXEC, which it does not do for a descriptor onto itself. */
	if (ready == READY_FD) {
		if (fcntl(READY_FD, F_SETFD, 0))
			_exit(RUN_EXIT_FAIL);
	} else if (dup2(ready, READY_FD) < 0) {
		_exit(RUN_EXIT_FAIL);
	}
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != STDIN_FILENO) {
		dup2(fd, STDIN_FILENO);
		close(fd);
	}
	/* Standard output is the program's alone. */
	dup2(STDERR_FILENO, STDOUT_FILENO);
#ifdef SYS_close_range
	syscall(SYS_close_range, READY_FD + 1, ~0u, 0);
#endif
	snprintf(devices, sizeof(devices), "%u", ndevices);
	const char *fixed[] = { exe, "--ready-fd", "3", "--foreground", "--socket", socket,
				"--devices", devices, "--memory", memory, "--warm", warm,
				memory_type ? "--memory-type" : NULL, memory_type };

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && fixed[i]; i++)
		argv[n++] = fixed[i];
	for (; extra && *extra && n < RUN_ZDEVD_ARGS_MAX - 1; extra++)
		argv[n++] = *extra;
	if (trace) {
		argv[n++] = "--trace";
		argv[n++] = trace;
	}
	argv[n] = NULL;
	execv(exe, (char *const *)argv);
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until fd is readable (or hung up), for at most timeout_ms. 1 when it
 * is, 0 at the timeout, -EINTR when run_hurry is set, -errno on failure.
 * The signals that set run_hurry are blocked but while ppoll() waits, so
 * that one that comes just before the wait still ends it.
 */
static int wait_readable(int fd, int timeout_ms)
{
	const int64_t deadline = now_ms() + timeout_ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	sigset_t hurry, unblocked;
	int ret;

	sigemptyset(&hurry);
	sigaddset(&hurry, SIGINT);
	sigaddset(&hurry, SIGQUIT);
	sigaddset(&hurry, SIGTERM);
	sigaddset(&hurry, SIGHUP);
	sigprocmask(SIG_BLOCK, &hurry, &unblocked);
	for (;;) {
		int64_t left = deadline - now_ms();
		struct timespec ts = { .tv_sec = left > 0 ? left / 1000 : 0,
				       .tv_nsec = left > 0 ? left % 1000 * 1000000 : 0 };

		if (run_hurry) {
			ret = -EINTR;
			break;
		}
		ret = ppoll(&p, 1, &ts, &unblocked);
		if (ret >= 0 || errno != EINTR) {
			ret = ret < 0 ? -errno : ret;
			break;
		}
	}
	sigprocmask(SIG_SETMASK, &unblocked, NULL);
	return ret;
}

static void kill_now(struct run_zdevd *z)
{
	int status;

	kill(z->pid, SIGKILL);
	while (waitpid(z->pid, &status, 0) < 0 && errno == EINTR)
		;
	z->pid = 0;
}

/* Reads zdevd's word on the ready pipe: a newline once it serves, EOF if
 * it exited first. */
static int wait_ready(struct run_zdevd *z, const char *exe, int ready)
{
	char what[64], c;
	int status, ret;
	ssize_t n;

	ret = wait_readable(ready, READY_TIMEOUT_MS);
	if (ret == 0) {
		log_err("%s did not accept connections on %s within %d s: killed", exe, z->socket,
			READY_TIMEOUT_MS / 1000);
		ret = -ETIMEDOUT;
	} else if (ret < 0 && ret != -EINTR) {
		log_err("waiting for %s: %s", exe, strerror(-ret));
	}
	if (ret < 0)
		goto out_kill;
	while ((n = read(ready, &c, 1)) < 0 && errno == EINTR)
		;
	if (n == 1)
		return 0;
	/* EOF: it exited, or closed the descriptor without a word and will
	 * never give it. An exiting process has its exit status before it
	 * closes its descriptors, which SIGKILL does not change then. */
	kill(z->pid, SIGKILL);
	while (wait4(z->pid, &status, 0, &z->ru) < 0 && errno == EINTR)
		;
	z->pid = 0;
	describe_status(what, sizeof(what), status);
	log_err("%s exited at start (%s); its message, if any, is above", exe, what);
	return -ECHILD;
out_kill:
	kill_now(z);
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
		    const char *memory, const char *memory_type, const char *warm,
		    const char *const *extra)
{
	pid_t parent = getpid();
	int ready[2], ret;

	ret = check_uffd();
	if (ret)
		return ret == -ENOSYS ? -ENOSYS : -EPERM;
	if (snprintf(z->socket, sizeof(z->socket), "%s/" RUN_SOCKET_NAME, dir) >=
	    (int)sizeof(z->socket)) {
		log_err("%s: too long for a socket", dir);
		return -ENAMETOOLONG;
	}
	if (pipe2(ready, O_CLOEXEC)) {
		ret = -errno;
		log_err("pipe: %s", strerror(-ret));
		return ret;
	}
	z->pid = fork();
	if (z->pid < 0) {
		ret = -errno;
		z->pid = 0;
		log_err("fork: %s", strerror(-ret));
		goto out_close_pipe;
	}
	if (!z->pid)
		exec_zdevd(exe, z->socket, ndevices, memory, memory_type, warm, z->trace, extra,
			   parent, ready[1]);
	/* zdevd's is now the only write end: its exit is EOF. */
	close(ready[1]);
	ready[1] = -1;
	ret = wait_ready(z, exe, ready[0]);
out_close_pipe:
	close(ready[0]);
	if (ready[1] >= 0)
		close(ready[1]);
	return ret;
}

/* Without pidfd_open: looks every POLL_MS. 1 when zdevd exited (reaped into
 * *status), 0 at the timeout or when run_hurry is set. */
static int reap_polling(struct run_zdevd *z, int *status)
{
	for (int waited = 0;; waited += POLL_MS) {
		pid_t r = wait4(z->pid, status, WNOHANG, &z->ru);

		if (r == z->pid || (r < 0 && errno != EINTR))
			return 1;
		if (waited >= STOP_TIMEOUT_MS || run_hurry)
			return 0;
		usleep(POLL_MS * 1000);
	}
}

/* zdevd's exit, without a sleep: its pidfd becomes readable when it exits.
 * As reap_polling(), or -ENOSYS (or another -errno) when there is no pidfd
 * to wait on. */
static int reap_pidfd(struct run_zdevd *z, int *status)
{
#ifdef SYS_pidfd_open
	int pidfd = (int)syscall(SYS_pidfd_open, z->pid, 0), ret;

	if (pidfd < 0)
		return -errno;
	ret = wait_readable(pidfd, STOP_TIMEOUT_MS);
	close(pidfd);
	/* A ppoll() that failed leaves it to polling. */
	if (ret < 0 && ret != -EINTR)
		return ret;
	if (ret <= 0)
		return 0;
	while (wait4(z->pid, status, 0, &z->ru) < 0 && errno == EINTR)
		;
	return 1;
#else
	(void)z;
	(void)status;
	return -ENOSYS;
#endif
}

/* Waits for zdevd to exit, up to STOP_TIMEOUT_MS or until run_hurry; then
 * kills it. Its wait status. */
static int reap(struct run_zdevd *z)
{
	int status = 0, ret;

	ret = reap_pidfd(z, &status);
	if (ret < 0)
		ret = reap_polling(z, &status);
	if (ret > 0)
		return status;
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
