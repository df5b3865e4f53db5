/* SPDX-License-Identifier: MIT */
/*
 * fault_p99_loaded and its neighbours: how much other clients delay a light
 * one. A light client moves a few pages to the device and touches them back
 * one at a time, a pause after each, timing each CPU fault: it asks less of
 * zdevd than its share. Its p99 alone is the baseline, measured in the same
 * run (before the others and after, both runs' faults together), and each
 * figure is the same p99 while others use the same zdevd:
 *
 *   fault_p99_loaded      63 heavy clients churn: migrations both ways,
 *                         CPU faults, exclusive grants and revocations
 *   fault_p99_silent      one client sends requests and never reads a reply
 *   fault_p99_fragments   one client sends its requests a byte at a time
 *                         (SOCK_SEQPACKET: every send is a message of its
 *                         own, so a fragment is a truncated message), again
 *                         on a new connection each time it is cut off
 *   fault_p99_flood       one client sends requests as fast as zdevd takes
 *                         them, reading the replies as they come
 *
 * zdevd's CPU time is printed beside each.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "page.h"
#include "proto.h"
#include "touch.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define HEAVY_CLIENTS 63
#define HEAVY_PAGES 128
#define HEAVY_EXCLUSIVE 16
#define LIGHT_PAGES 64
#define LIGHT_FAULTS 768
#define LIGHT_PAUSE_US 2000
/* The others get going before the light client starts. */
#define WARMUP_US 300000

struct shared {
	atomic_bool stop;
	atomic_uint ready;
	double lat[2 * LIGHT_FAULTS];	/* the baseline's two runs */
	int light_status;	/* 0, or the errno the light client failed with */
	/* zdevd's own time for the light client's faults (zdev_get_stats),
	 * from reading each to serving it: what of the p99 zdevd spends */
	double service_p99_us;
};

static struct shared *sh;
static struct zdevd_instance zd;

/* ---- the light client ---- */

static void light_main(unsigned int slot)
{
	double *lat = sh->lat + slot * LIGHT_FAULTS;
	size_t order[LIGHT_PAGES];
	struct zdev_result res;
	struct zdev *dev;
	char *buf;
	int ret;

	ret = zdev_open(NULL, 0, &dev);
	if (!ret)
		ret = zdev_alloc(dev, LIGHT_PAGES * PG_SIZE, (void **)&buf);
	for (unsigned int r = 0; !ret && r < LIGHT_FAULTS / LIGHT_PAGES; r++) {
		memset(buf, 0x5a, LIGHT_PAGES * PG_SIZE);
		ret = zdev_migrate_to_device(dev, buf, LIGHT_PAGES, &res);
		page_order(order, LIGHT_PAGES, 4000 + r, true);
		for (size_t i = 0; !ret && i < LIGHT_PAGES; i++) {
			usleep(LIGHT_PAUSE_US);
			touch_pages(buf, order + i, 1, lat + r * LIGHT_PAGES + i);
		}
	}
	if (!ret) {
		struct zdev_stats st = { .size = sizeof(st) };

		ret = zdev_get_stats(dev, &st);
		sh->service_p99_us = (double)st.fault_p99_ns / 1e3;
	}
	sh->light_status = -ret;
	_exit(ret ? 1 : 0);
}

/* ---- the others ---- */

static void heavy_main(unsigned int i)
{
	const size_t words = PG_SIZE / sizeof(uint64_t);
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *p;

	if (zdev_open(NULL, i % 2, &dev) ||
	    zdev_alloc(dev, HEAVY_PAGES * PG_SIZE, (void **)&p))
		_exit(1);
	memset(p, 1, HEAVY_PAGES * PG_SIZE);
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->stop)) {
		if (zdev_migrate_to_device(dev, p, HEAVY_PAGES, &res))
			_exit(2);
		/* half home by CPU faults */
		for (size_t k = 0; k < HEAVY_PAGES / 2; k++)
			p[k * words]++;
		if (zdev_make_exclusive(dev, p, HEAVY_EXCLUSIVE, &res))
			_exit(3);
		/* revoked by CPU writes */
		for (size_t k = 0; k < HEAVY_EXCLUSIVE; k++)
			p[k * words]++;
		if (zdev_migrate_to_system(dev, p + HEAVY_PAGES / 2 * words, HEAVY_PAGES / 2, &res))
			_exit(4);
	}
	zdev_close(dev);
	_exit(0);
}

static int connect_raw(void)
{
	int sock;

	while ((sock = zmsg_connect(zd.socket_path)) < 0 && !atomic_load(&sh->stop))
		usleep(1000);
	return sock;
}

/* STATUS needs no handshake: the cheapest real work a stranger can ask. */
static void status_request(union zmsg *m, uint64_t seq)
{
	zmsg_init(m, ZMSG_STATUS, seq);
}

/* Sends requests and never reads a reply; once zdevd stops taking them, it
 * keeps trying. */
static void silent_main(void)
{
	int sock = connect_raw();
	uint64_t seq = 1;
	union zmsg m;

	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->stop)) {
		status_request(&m, seq);
		if (send(sock, &m, m.hdr.size, MSG_DONTWAIT | MSG_NOSIGNAL) == m.hdr.size)
			seq++;
		else
			usleep(1000);
	}
	_exit(0);
}

/* Sends each request a byte at a time: every byte is a message of one byte,
 * which zdevd takes as malformed; cut off, it connects again. */
static void fragments_main(void)
{
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->stop)) {
		int sock = connect_raw();
		union zmsg m;

		status_request(&m, 1);
		for (size_t b = 0; b < m.hdr.size && !atomic_load(&sh->stop); b++)
			if (send(sock, (char *)&m + b, 1, MSG_NOSIGNAL) != 1)
				break;
		close(sock);
	}
	_exit(0);
}

/* As many requests as zdevd takes: sends while it can, reads what came. */
static void flood_main(void)
{
	int sock = connect_raw();
	uint64_t seq = 1;
	union zmsg m;

	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load(&sh->stop)) {
		status_request(&m, seq);
		if (send(sock, &m, m.hdr.size, MSG_DONTWAIT | MSG_NOSIGNAL) == m.hdr.size)
			seq++;
		while (recv(sock, &m, sizeof(m), MSG_DONTWAIT) > 0)
			;
	}
	_exit(0);
}

/* ---- a run ---- */

enum others { NONE, HEAVY, SILENT, FRAGMENTS, FLOOD };

static pid_t spawn(void (*fn)(unsigned int), unsigned int arg)
{
	pid_t pid = fork();

	if (pid == 0)
		fn(arg);
	return pid;
}

static void run_silent(unsigned int i) { (void)i; silent_main(); }
static void run_fragments(unsigned int i) { (void)i; fragments_main(); }
static void run_flood(unsigned int i) { (void)i; flood_main(); }

/* The light client's faults, into its slot of sh->lat, while the others
 * run, and zdevd's CPU seconds meanwhile in *cpu: 0, or -1 if a client
 * failed. */
static int run(enum others others, unsigned int slot, double *cpu, double *service)
{
	pid_t pids[HEAVY_CLIENTS], light;
	unsigned int n = 0, want;
	int status, failed = 0;
	double cpu0;

	atomic_store(&sh->stop, false);
	atomic_store(&sh->ready, 0);
	switch (others) {
	case NONE: break;
	case HEAVY:
		for (unsigned int i = 0; i < HEAVY_CLIENTS; i++)
			pids[n++] = spawn(heavy_main, i);
		break;
	case SILENT: pids[n++] = spawn(run_silent, 0); break;
	case FRAGMENTS: pids[n++] = spawn(run_fragments, 0); break;
	case FLOOD: pids[n++] = spawn(run_flood, 0); break;
	}
	want = n;
	while (atomic_load(&sh->ready) < want)
		usleep(1000);
	usleep(WARMUP_US);
	cpu0 = process_cpu_seconds(zd.pid);
	light = spawn(light_main, slot);
	if (waitpid(light, &status, 0) != light || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "load-bench: the light client failed: %s (status %#x)\n",
			strerror(sh->light_status), status);
		failed = 1;
	}
	*cpu = process_cpu_seconds(zd.pid) - cpu0;
	*service = sh->service_p99_us;
	atomic_store(&sh->stop, true);
	for (unsigned int i = 0; i < n; i++) {
		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			fprintf(stderr, "load-bench: another client failed (status %#x)\n", status);
			failed = 1;
		}
	}
	return failed ? -1 : 0;
}

static double p99_us(unsigned int nslots)
{
	return percentile(sh->lat, nslots * LIGHT_FAULTS, 0.99) / 1e3;
}

int main(void)
{
	static const struct {
		const char *name;
		enum others others;
	} figures[] = {
		{ "fault_p99_loaded", HEAVY },
		{ "fault_p99_silent", SILENT },
		{ "fault_p99_fragments", FRAGMENTS },
		{ "fault_p99_flood", FLOOD },
	};
	static double disturbed[4][LIGHT_FAULTS];
	double alone, cpu_alone[2], cpu[4], service_alone[2], service[4];
	size_t nfig = sizeof(figures) / sizeof(figures[0]);
	int ret = 0;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("load-bench: mmap");
		return 1;
	}
	zdevd_start_plain(&zd, NULL);
	/* Alone, the others one after the other, alone again: a machine
	 * that got busier or quieter meanwhile shows in the baseline too. */
	ret = run(NONE, 0, &cpu_alone[0], &service_alone[0]);
	for (size_t f = 0; !ret && f < nfig; f++) {
		ret = run(figures[f].others, 1, &cpu[f], &service[f]);
		memcpy(disturbed[f], sh->lat + LIGHT_FAULTS, sizeof(disturbed[f]));
	}
	if (!ret)
		ret = run(NONE, 1, &cpu_alone[1], &service_alone[1]);
	if (!ret) {
		alone = p99_us(2);
		printf("light client alone: p99 %.1f us (%d faults, one each %d us), "
		       "zdevd cpu %.3f s and %.3f s, zdevd's service p99 about %.0f us and %.0f us\n",
		       alone, 2 * LIGHT_FAULTS, LIGHT_PAUSE_US, cpu_alone[0], cpu_alone[1],
		       service_alone[0], service_alone[1]);
		for (size_t f = 0; f < nfig; f++) {
			figure(figures[f].name,
			       percentile(disturbed[f], LIGHT_FAULTS, 0.99) / 1e3, "us", alone, "us");
			/* the service p99 is known to its power-of-two bucket */
			printf("zdevd cpu: %.3f s while the light client ran; zdevd's service of its "
			       "faults: p99 about %.0f us\n", cpu[f], service[f]);
		}
	}
	if (zdevd_stop(&zd)) {
		fprintf(stderr, "load-bench: zdevd did not stop cleanly\n");
		ret = 1;
	}
	return ret;
}
