/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdevd-harness.h"

#define STOP_DEADLINE_MS 30000

static int try_connect(const char *path)
{
	int fd = zmsg_connect(path);

	return fd < 0 ? -1 : fd;
}

const char *zdevd_unavailable(void)
{
	static char why[160];
	struct uffd_caps caps;
	int ret = uffd_probe(&caps);

	if (ret == -EPERM || ret == -ENOSYS) {
		snprintf(why, sizeof(why),
			 "no userfaultfd for this process (%s; see vm.unprivileged_userfaultfd): "
			 "zdevd cannot serve it", strerror(-ret));
		return why;
	}
	/* Any other error is zdevd's to report, as a failure. Without fork
	 * events or kernel-mode faults zdevd still serves us: the cases that
	 * need them skip (zdev_get_features). */
	return NULL;
}

/*
 * Root keeps every capability of its bounding set across execv: without
 * CAP_SYS_PTRACE in it, zdevd gets no fork events, as an ordinary user's
 * does. The test process lets go of it as well, for the kernel lets a
 * process read another's memory only if it holds every capability the
 * other has. An ordinary user has nothing to drop.
 */
static void drop_ptrace_capability(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	const unsigned int word = CAP_SYS_PTRACE / 32, bit = 1u << (CAP_SYS_PTRACE % 32);

	if (prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) && errno != EPERM)
		perror("PR_CAPBSET_DROP");
	if (syscall(SYS_capget, &hdr, data)) {
		perror("capget");
		return;
	}
	data[word].effective &= ~bit;
	data[word].permitted &= ~bit;
	data[word].inheritable &= ~bit;
	if (syscall(SYS_capset, &hdr, data))
		perror("capset");
}

/*
 * A zdevd that died may still listen for a moment: its io_uring, torn down
 * after the process, holds the socket until then, and a connect succeeds
 * and is reset later. A new zdevd would take it for a live one and refuse
 * the socket, and our readiness check would be fooled.
 */
static void wait_listener_gone(const char *path)
{
	for (int i = 0; i < 500; i++) {
		int fd = try_connect(path);

		if (fd < 0)
			return;
		close(fd);
		usleep(10000);
	}
	fprintf(stderr, "the last zdevd on %s still listens\n", path);
	exit(99);
}

static void start(struct zdevd_instance *z, const char *const *extra_args, bool pool_debug,
		  bool without_ptrace, bool same_socket)
{
	const char *top = getenv("top_builddir"), *why = zdevd_unavailable();
	char exe[512];
	const char *argv[32];
	int argc = 0, fd;

	if (why) {
		printf("SKIP: %s\n", why);
		exit(77);
	}
	snprintf(exe, sizeof(exe), "%s/zdevd", top ? top : ".");
	if (same_socket) {
		/* zdevd_stop removed the directory; a killed zdevd left its
		 * socket, which the new one replaces. */
		if (mkdir(z->dir, 0700) && errno != EEXIST) {
			perror(z->dir);
			exit(99);
		}
		wait_listener_gone(z->socket_path);
	} else {
		snprintf(z->dir, sizeof(z->dir), "/tmp/zdev-test-XXXXXX");
		if (!mkdtemp(z->dir)) {
			perror("mkdtemp");
			exit(99);
		}
		snprintf(z->socket_path, sizeof(z->socket_path), "%s/zdevd.sock", z->dir);
	}
	argv[argc++] = exe;
	argv[argc++] = "--foreground";
	if (pool_debug)
		argv[argc++] = "--pool-debug";
	argv[argc++] = "--socket";
	argv[argc++] = z->socket_path;
	/* Tests run many zdevds at once: none keeps memory warm unless it
	 * asks (a later --warm wins). */
	argv[argc++] = "--warm";
	argv[argc++] = "0";
	for (int i = 0; extra_args && extra_args[i] && argc < 30; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;
	if (without_ptrace)
		drop_ptrace_capability();
	/* Spawned, not forked: a fork of a client process waits for zdevd,
	 * or for its rescue, to read the fork event, which tests of those
	 * are not about. */
	errno = posix_spawn(&z->pid, exe, NULL, NULL, (char *const *)argv, environ);
	if (errno) {
		perror(exe);
		exit(99);
	}
	for (int i = 0; i < 500; i++) {
		int status;

		fd = try_connect(z->socket_path);
		if (fd >= 0) {
			close(fd);
			setenv("ZDEV_SOCKET", z->socket_path, 1);
			return;
		}
		if (waitpid(z->pid, &status, WNOHANG) == z->pid) {
			fprintf(stderr, "zdevd exited at start (status %d)\n", status);
			exit(99);
		}
		usleep(10000);
	}
	fprintf(stderr, "zdevd did not come up on %s\n", z->socket_path);
	kill(z->pid, SIGKILL);
	exit(99);
}

void zdevd_start(struct zdevd_instance *z, const char *const *extra_args)
{
	start(z, extra_args, true, false, false);
}

void zdevd_start_without_ptrace(struct zdevd_instance *z, const char *const *extra_args)
{
	start(z, extra_args, true, true, false);
}

void zdevd_start_plain(struct zdevd_instance *z, const char *const *extra_args)
{
	start(z, extra_args, false, false, false);
}

void zdevd_restart(struct zdevd_instance *z, const char *const *extra_args)
{
	start(z, extra_args, true, false, true);
}

int zdevd_stop(struct zdevd_instance *z)
{
	int status = 0;

	if (z->pid <= 0)
		return 0;
	kill(z->pid, SIGTERM);
	/* zdevd must exit on SIGTERM: one that has not within the deadline
	 * hangs, and is killed so that the hang is reported (128 + SIGKILL)
	 * instead of blocking the test run. */
	for (int i = 0; i < STOP_DEADLINE_MS / 10; i++) {
		if (waitpid(z->pid, &status, WNOHANG) == z->pid)
			goto out_reaped;
		usleep(10000);
	}
	fprintf(stderr, "zdevd did not exit within %d s of SIGTERM: killed\n",
		STOP_DEADLINE_MS / 1000);
	kill(z->pid, SIGKILL);
	waitpid(z->pid, &status, 0);
out_reaped:
	z->pid = 0;
	unlink(z->socket_path);
	rmdir(z->dir);
	status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (status)
		fprintf(stderr, "zdevd exited with status %d\n", status);
	return status;
}

int zdevd_pool_status(struct zdevd_instance *z, unsigned int device, struct zdevd_pool_status *st)
{
	union zmsg m;
	int fd = try_connect(z->socket_path), type;

	if (fd < 0)
		return -errno;
	zmsg_init(&m, ZMSG_STATUS, 1);
	type = zmsg_send(fd, &m, -1) ?: zmsg_recv(fd, &m, NULL);
	close(fd);
	if (type != ZMSG_STATUS_OK)
		return type < 0 ? type : -EPROTO;
	st->total = m.status_ok.dev[device].pool_pages_total;
	st->used = m.status_ok.dev[device].pool_pages_used;
	st->limit = m.status_ok.dev[device].pool_limit_pages;
	st->peak = m.status_ok.dev[device].peak_pages_used;
	st->warm = m.status_ok.dev[device].warm_pages;
	st->clients = m.status_ok.clients;
	st->clients_total = m.status_ok.clients_total;
	st->unplugged = !!(m.status_ok.unplugged & (1u << device));
	return 0;
}

static int plug_request(struct zdevd_instance *z, int type, unsigned int device,
			unsigned long long *moved)
{
	union zmsg m;
	int fd = try_connect(z->socket_path), ret;

	if (fd < 0)
		return -errno;
	zmsg_init(&m, type, 1);
	m.req.device = device;
	ret = zmsg_send(fd, &m, -1) ?: zmsg_recv(fd, &m, NULL);
	close(fd);
	if (ret != ZMSG_REPLY)
		return ret < 0 ? ret : -EPROTO;
	if (moved)
		*moved = m.reply.cpages;
	return m.reply.status;
}

int zdevd_unplug(struct zdevd_instance *z, unsigned int device, unsigned long long *moved)
{
	return plug_request(z, ZMSG_UNPLUG, device, moved);
}

int zdevd_plug(struct zdevd_instance *z, unsigned int device)
{
	return plug_request(z, ZMSG_PLUG, device, NULL);
}

long zdevd_wait_warm(struct zdevd_instance *z, unsigned int device, unsigned long long pages,
		     long timeout_ms)
{
	const struct timespec step = { 0, 10 * 1000000l };
	struct zdevd_pool_status st;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int ret = zdevd_pool_status(z, device, &st);
		long waited;

		if (ret)
			return ret;
		clock_gettime(CLOCK_MONOTONIC, &t);
		waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (st.warm >= pages)
			return waited;
		if (waited > timeout_ms)
			return -ETIMEDOUT;
		nanosleep(&step, NULL);
	}
}
