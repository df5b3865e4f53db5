/* SPDX-License-Identifier: MIT */
/*
 * The soak: client processes doing random work on their memory through
 * zdevd for a while (CPU writes racing migrations each way, device reads and
 * writes, exclusive grants, device atomics, snapshots, forks), each checking
 * every byte against a model of its own, while the soak kills clients,
 * unplugs devices and plugs them again, and kills or stops zdevd and starts
 * another. At the end every client checks all
 * of its memory once more, and zdevd's pools must be back to empty.
 *
 *   soak [SECONDS]	(default $ZDEV_SOAK_SECONDS, else 15)
 *
 * $ZDEV_SOAK_DISRUPT picks what the soak does to the clients and zdevd, a
 * comma-separated list of client-kills, zdevd-kills, zdevd-stops and unplugs
 * (a device unplugged for a while, then plugged again) (the default: all
 * four; "none" for none).
 *
 * It reports in TAP: one test, with what it did; exit status 0 when nothing
 * was lost. make check runs a short soak, make soak a long one.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hang-report.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define DEVICES 2
#define CLIENTS 4
#define CLIENT_PAGES 2048
#define MAX_RUN 64		/* pages an operation takes at most */
#define WORDS (PG_SIZE / sizeof(uint64_t))
#define FULL_CHECK_EVERY 200	/* operations between checks of all memory */
#define SOAK_GRACE_S 180	/* past its time, how long a soak may take to end */

/* What a client did, sent to the soak when it ends. */
struct client_report {
	uint64_t ops, failed_ops, bytes_checked, forks;
	uint32_t lost;		/* pages found not as the model says */
	char what[96];		/* the first loss */
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- a client ---- */

struct client {
	uint64_t *mem;		/* managed: what zdevd moves */
	uint64_t *model;	/* plain: what mem must hold */
	uint64_t *scratch;	/* MAX_RUN pages for device reads and writes */
	struct zdev *dev[DEVICES];
	struct client_report r;
};

static void lost(struct client *c, size_t page, const char *op)
{
	if (!c->r.lost++)
		snprintf(c->r.what, sizeof(c->r.what), "page %zu after %s", page, op);
}

/* Pages [p, p + n) of mem against the model. */
static void check_pages(struct client *c, size_t p, size_t n, const char *op)
{
	for (size_t i = p; i < p + n; i++)
		if (memcmp(c->mem + i * WORDS, c->model + i * WORDS, PG_SIZE))
			lost(c, i, op);
	c->r.bytes_checked += n * PG_SIZE;
}

/* A device access that failed part way: each page is wholly as it was or
 * wholly as written (want, may be NULL for "as it was" only); the model
 * takes what is there. */
static void settle_pages(struct client *c, size_t p, size_t n, const uint64_t *want,
			 const char *op)
{
	for (size_t i = p; i < p + n; i++) {
		uint64_t *m = c->mem + i * WORDS, *model = c->model + i * WORDS;

		if (memcmp(m, model, PG_SIZE) &&
		    (!want || memcmp(m, want + (i - p) * WORDS, PG_SIZE)))
			lost(c, i, op);
		memcpy(model, m, PG_SIZE);
	}
}

static void random_run(size_t *p, size_t *n)
{
	*n = 1 + rng() % MAX_RUN;
	*p = rng() % (CLIENT_PAGES - *n + 1);
}

static void op_cpu_write(struct client *c)
{
	size_t p = rng() % CLIENT_PAGES, w = rng() % WORDS;
	uint64_t v = rng();

	c->mem[p * WORDS + w] = v;
	c->model[p * WORDS + w] = v;
}

static int op_device_write(struct client *c, struct zdev *dev)
{
	struct zdev_result res;
	uint64_t *data = c->scratch;
	size_t p, n;
	int ret;

	random_run(&p, &n);
	for (size_t i = 0; i < n * WORDS; i++)
		data[i] = rng();
	ret = zdev_write(dev, c->mem + p * WORDS, n, data, &res);
	if (ret)
		settle_pages(c, p, n, data, "a failed device write");
	else
		memcpy(c->model + p * WORDS, data, n * PG_SIZE);
	return ret;
}

static int op_device_read(struct client *c, struct zdev *dev)
{
	struct zdev_result res;
	uint64_t *data = c->scratch;
	size_t p, n;
	int ret;

	random_run(&p, &n);
	ret = zdev_read(dev, c->mem + p * WORDS, n, data, &res);
	if (!ret) {
		for (size_t i = 0; i < n; i++)
			if (memcmp(data + i * WORDS, c->model + (p + i) * WORDS, PG_SIZE))
				lost(c, p + i, "a device read");
		c->r.bytes_checked += n * PG_SIZE;
	}
	return ret;
}

static int op_atomic_add(struct client *c, struct zdev *dev)
{
	size_t p = rng() % CLIENT_PAGES, w = rng() % WORDS;
	uint64_t *word = c->mem + p * WORDS + w, delta = 1 + rng() % 1000, old = 0;
	int ret = zdev_atomic_add(dev, word, delta, &old);

	if (!ret) {
		if (old != c->model[p * WORDS + w])
			lost(c, p, "a device atomic");
		c->model[p * WORDS + w] += delta;
	} else if (*word == c->model[p * WORDS + w] + delta) {
		c->model[p * WORDS + w] += delta;	/* done, then the reply lost */
	}
	return ret;
}

/* A child checks its copy of everything, writes its own pages, and goes. */
static int op_fork(struct client *c)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		for (size_t i = 0; i < CLIENT_PAGES; i++)
			if (memcmp(c->mem + i * WORDS, c->model + i * WORDS, PG_SIZE))
				_exit(1);
		for (size_t i = 0; i < CLIENT_PAGES; i += 97)
			c->mem[i * WORDS] = ~c->model[i * WORDS];
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	c->r.forks++;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		lost(c, 0, "a fork (the child saw other memory)");
	c->r.bytes_checked += CLIENT_PAGES * PG_SIZE;
	/* The child's writes were its own. */
	for (size_t i = 0; i < CLIENT_PAGES; i += 97)
		check_pages(c, i, 1, "a fork child's writes");
	return 0;
}

static int one_op(struct client *c)
{
	struct zdev *dev = c->dev[rng() % DEVICES];
	struct zdev_result res;
	uint8_t prot[MAX_RUN];
	size_t p, n;

	switch (rng() % 12) {
	case 0: case 1: case 2:
		op_cpu_write(c);
		return 0;
	case 3: case 4:
		random_run(&p, &n);
		return zdev_migrate_to_device(dev, c->mem + p * WORDS, n, &res);
	case 5:
		random_run(&p, &n);
		return zdev_migrate_to_system(dev, c->mem + p * WORDS, n, &res);
	case 6:
		return op_device_write(c, dev);
	case 7:
		return op_device_read(c, dev);
	case 8:
		random_run(&p, &n);
		return zdev_make_exclusive(dev, c->mem + p * WORDS, n, &res);
	case 9:
		return op_atomic_add(c, dev);
	case 10:
		random_run(&p, &n);
		return zdev_snapshot(dev, c->mem + p * WORDS, n, prot, &res);
	default:
		/* Forks are dear: one op in a hundred or so. */
		if (rng() % 8)
			return 0;
		return op_fork(c);
	}
}

static int client_main(uint64_t seed, uint64_t until_ms, int report_fd)
{
	struct client c = { 0 };
	size_t bytes = (size_t)CLIENT_PAGES * PG_SIZE;

	rng_state = seed | 1;
	c.mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c.model = malloc(bytes);
	c.scratch = malloc((size_t)MAX_RUN * PG_SIZE);
	if (c.mem == MAP_FAILED || !c.model || !c.scratch)
		return 2;
	for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
		c.mem[i] = c.model[i] = rng();
	/* zdevd may be between a stop and the next start: a few tries. */
	for (unsigned int d = 0; d < DEVICES; d++) {
		int ret = -ENODEV;

		for (int tries = 0; tries < 100 && ret; tries++) {
			ret = zdev_open(NULL, d, &c.dev[d]);
			if (ret)
				usleep(50000);
		}
		if (ret)
			return 3;
	}
	while (now_ms() < until_ms) {
		if (one_op(&c))
			c.r.failed_ops++;
		c.r.ops++;
		if (c.r.ops % FULL_CHECK_EVERY == 0)
			check_pages(&c, 0, CLIENT_PAGES, "the periodic check");
	}
	check_pages(&c, 0, CLIENT_PAGES, "the last check");
	for (unsigned int d = 0; d < DEVICES; d++)
		zdev_close(c.dev[d]);
	if (write(report_fd, &c.r, sizeof(c.r)) != (ssize_t)sizeof(c.r))
		return 4;
	return c.r.lost ? 1 : 0;
}

/* ---- the soak ---- */

struct running {
	pid_t pid;
	int report_fd;
};

struct totals {
	struct client_report sum;
	unsigned int started, finished, killed, zdevd_killed, zdevd_stopped, failures;
	unsigned int unplugs;
	unsigned long long unplug_moved;	/* pages the unplugs brought home */
};

/* When each unplugged device is plugged again (0: plugged). */
static uint64_t plug_at_ms[DEVICES];

static struct running start_client(uint64_t seed, uint64_t until_ms, struct totals *t)
{
	struct running r = { -1, -1 };
	int fds[2];

	if (pipe(fds))
		return r;
	r.pid = fork();
	if (r.pid == 0) {
		close(fds[0]);
		_exit(client_main(seed, until_ms, fds[1]));
	}
	close(fds[1]);
	if (r.pid < 0) {
		close(fds[0]);
		return r;
	}
	r.report_fd = fds[0];
	t->started++;
	return r;
}

/* Waits for a client that ran to its end and adds up its report. */
static void collect(struct running *r, struct totals *t)
{
	struct client_report rep;
	int status;

	if (waitpid(r->pid, &status, 0) != r->pid)
		status = -1;
	if (read(r->report_fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep)) {
		fprintf(stderr, "soak: client %d ended with no report (status %#x)\n", (int)r->pid,
			status);
		t->failures++;
	} else {
		t->sum.ops += rep.ops;
		t->sum.failed_ops += rep.failed_ops;
		t->sum.bytes_checked += rep.bytes_checked;
		t->sum.forks += rep.forks;
		t->sum.lost += rep.lost;
		if (rep.lost) {
			fprintf(stderr, "soak: client %d lost %u pages, the first: %s\n", (int)r->pid,
				rep.lost, rep.what);
			t->failures++;
		}
	}
	t->finished++;
	close(r->report_fd);
	r->pid = -1;
}

static void kill_client(struct running *r, struct totals *t)
{
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	close(r->report_fd);
	r->pid = -1;
	t->killed++;
}

/* What choice c of the soak's six does, given $ZDEV_SOAK_DISRUPT: 0 or 1
 * kill a client, 2 kills zdevd, 3 stops it, 4 unplugs a device, 5 (or one
 * not chosen) nothing. */
static int disruption(uint64_t c)
{
	static const char *const names[] = { "client-kills", "client-kills", "zdevd-kills",
					     "zdevd-stops", "unplugs" };
	const char *chosen = getenv("ZDEV_SOAK_DISRUPT");

	if (c >= 5 || (chosen && !strstr(chosen, names[c])))
		return 5;
	return (int)c;
}

/* Device d comes home whole (zdevd does it), then stays away for a while. */
static void unplug_for_a_while(struct zdevd_instance *zd, unsigned int d, struct totals *t)
{
	unsigned long long moved = 0;
	int ret;

	if (plug_at_ms[d])
		return;
	ret = zdevd_unplug(zd, d, &moved);
	if (ret) {
		fprintf(stderr, "soak: unplug of device %u: %s\n", d, strerror(-ret));
		t->failures++;
		return;
	}
	t->unplugs++;
	t->unplug_moved += moved;
	plug_at_ms[d] = now_ms() + 100 + rng() % 700;
}

static void plug_due(struct zdevd_instance *zd, uint64_t now, struct totals *t)
{
	for (unsigned int d = 0; d < DEVICES; d++) {
		int ret;

		if (!plug_at_ms[d] || plug_at_ms[d] > now)
			continue;
		plug_at_ms[d] = 0;
		ret = zdevd_plug(zd, d);
		if (ret) {
			fprintf(stderr, "soak: plug of device %u: %s\n", d, strerror(-ret));
			t->failures++;
		}
	}
}

/* A new zdevd has every device. */
static void all_plugged(void)
{
	memset(plug_at_ms, 0, sizeof(plug_at_ms));
}

int main(int argc, char **argv)
{
	static const char *const args[] = { "--devices", "2", "--memory", "64M", NULL };
	const char *why = zdevd_unavailable(), *env = getenv("ZDEV_SOAK_SECONDS");
	long seconds = argc > 1 ? atol(argv[1]) : env ? atol(env) : 15;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), end_ms;
	struct running clients[CLIENTS];
	struct zdevd_instance zd;
	struct totals t = { 0 };

	if (why) {
		printf("1..0 # SKIP %s\n", why);
		return 0;
	}
	if (getenv("ZDEV_SOAK_SEED"))
		seed = strtoull(getenv("ZDEV_SOAK_SEED"), NULL, 0);
	if (seconds < 2)
		seconds = 2;
	printf("1..1\n# soak: %ld s, %d clients at once, seed %#llx (ZDEV_SOAK_SEED replays "
	       "the soak's own choices)\n", seconds, CLIENTS, (unsigned long long)seed);
	fflush(stdout);
	rng_state = seed | 1;
	/* A soak that has not ended well after its time is stuck: where, is
	 * printed, and it is killed, so that the run fails instead of hanging. */
	hang_watch((unsigned int)seconds + SOAK_GRACE_S, "soak", true);
	zdevd_start(&zd, args);
	end_ms = now_ms() + (uint64_t)seconds * 1000;
	/* Clients end a little before the soak, so none is killed at its end. */
	for (int k = 0; k < CLIENTS; k++)
		clients[k] = start_client(rng(), end_ms - 1000, &t);

	while (now_ms() + 1500 < end_ms) {
		uint64_t r = rng();
		int k = (int)(r % CLIENTS);

		usleep(200000 + (useconds_t)(rng() % 600000));
		plug_due(&zd, now_ms(), &t);
		switch (disruption(r / CLIENTS % 6)) {
		case 0: case 1:
			/* A client killed at any point, and a new one. */
			if (clients[k].pid > 0) {
				kill_client(&clients[k], &t);
				clients[k] = start_client(rng(), end_ms - 1000, &t);
			}
			break;
		case 2:
			/* zdevd killed: the clients rescue their pages and
			 * go on with the next zdevd. */
			kill(zd.pid, SIGKILL);
			waitpid(zd.pid, NULL, 0);
			zd.pid = 0;
			t.zdevd_killed++;
			zdevd_restart(&zd, args);
			all_plugged();
			break;
		case 3:
			/* zdevd stopped: it brings every page home first. */
			if (zdevd_stop(&zd)) {
				fprintf(stderr, "soak: zdevd did not stop cleanly\n");
				t.failures++;
			}
			t.zdevd_stopped++;
			zdevd_restart(&zd, args);
			all_plugged();
			break;
		case 4:
			/* A device unplugged under its clients: every page
			 * comes home, and their requests on it fail with
			 * ENODEV until it is plugged again. */
			unplug_for_a_while(&zd, (unsigned int)(rng() % DEVICES), &t);
			break;
		default:
			break;
		}
	}
	plug_due(&zd, UINT64_MAX, &t);
	for (int k = 0; k < CLIENTS; k++)
		if (clients[k].pid > 0)
			collect(&clients[k], &t);
	/* Every client has gone: the pools hold nothing once zdevd has seen
	 * them go (their exits reach it on their own). */
	for (unsigned int d = 0; d < DEVICES; d++) {
		struct zdevd_pool_status st = { 0 };
		int waited = 0, ret;

		while ((ret = zdevd_pool_status(&zd, d, &st)) == 0 && st.used && waited++ < 200)
			usleep(50000);
		if (ret || st.used) {
			fprintf(stderr, "soak: device %u still has %llu pages in use\n", d, st.used);
			t.failures++;
		}
	}
	if (zdevd_stop(&zd)) {
		fprintf(stderr, "soak: zdevd did not stop cleanly at the end\n");
		t.failures++;
	}
	printf("%s 1 - soak: %llu operations (%llu refused or failed, as while zdevd was "
	       "away), %llu forks; clients started %u, killed %u, ran to the end %u; zdevd "
	       "killed %u times and stopped %u times; devices unplugged %u times (%llu pages brought "
	       "home); %.1f MiB checked, %u pages lost\n",
	       t.failures ? "not ok" : "ok", (unsigned long long)t.sum.ops,
	       (unsigned long long)t.sum.failed_ops, (unsigned long long)t.sum.forks, t.started,
	       t.killed, t.finished, t.zdevd_killed, t.zdevd_stopped, t.unplugs, t.unplug_moved,
	       (double)t.sum.bytes_checked / (1 << 20), t.sum.lost);
	return t.failures ? 1 : 0;
}
