/* SPDX-License-Identifier: MIT */
/*
 * zdevd's timeline trace: events recorded by any thread into one buffer,
 * written as Chrome Trace Event JSON by a thread of its own. See trace.h and
 * zdevd(8), TRACE.
 *
 * The file is a JSON array with one event a line, each line ending in a
 * comma; trace_close() ends it with a last event and the closing bracket,
 * so that it is valid JSON once zdevd exited on SIGTERM. A zdevd killed
 * outright leaves the array open, which the trace viewers accept.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "lathist.h"
#include "log.h"
#include "page.h"
#include "refpool.h"
#include "trace.h"

bool trace_on;

struct trace_event {
	uint64_t t0, t1, addr, pages, count;
	int32_t pid, tid;
	int16_t dev;		/* -1: every device */
	uint8_t kind;
};

/* Events held between two writes: at a fault every few microseconds, the
 * writer's pauses of WRITE_PAUSE_NS fill a few thousand. Past it, events
 * are dropped and counted. */
#define TRACE_BUF_EVENTS 65536
/* How long the writer lets events gather once some came. */
#define WRITE_PAUSE_NS 10000000l
/* The stdio buffer of the file. */
#define FILE_BUF_BYTES (1 << 20)

static struct {
	pthread_mutex_t lock;	/* fill, n, sleeping, stop, closed, dropped */
	pthread_cond_t wake;
	struct trace_event *fill, *spare;
	size_t n;
	bool sleeping;		/* the writer waits for a first event */
	bool urgent;		/* a migration ended: the pools are sampled now */
	bool stop, closed, started;
	uint64_t dropped;
	pthread_t writer;

	/* the writer's own (or trace_open's and trace_close's, while no
	 * writer runs) */
	FILE *f;
	char *fbuf;
	struct devset *devs;
	uint64_t start_ns;
	uint64_t used_bytes[ZDEV_MAX_DEVICES];
	uint64_t *seen;		/* pid << 32 | tid of the tracks named, 0: empty */
	size_t seen_cap, seen_n;
} tr = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static const struct {
	const char *name, *cat;
	char ph;
} kinds[TRACE_KINDS] = {
	[TRACE_CPU_FAULT] = { "cpu_fault", "fault", 'X' },
	[TRACE_REVOKE_FAULT] = { "exclusive_revoke", "exclusive", 'X' },
	[TRACE_REVOKE] = { "exclusive_revoke", "exclusive", 'i' },
	[TRACE_GRANT] = { "exclusive_grant", "exclusive", 'i' },
	[TRACE_GRANT_HELD] = { "exclusive_grant", "exclusive", 'X' },
	[TRACE_TO_DEVICE] = { "migrate_to_device", "migrate", 'X' },
	[TRACE_TO_SYSTEM] = { "migrate_to_system", "migrate", 'X' },
	[TRACE_EVICT] = { "evict", "migrate", 'X' },
	[TRACE_ACCESS_BACK] = { "device_access_back", "migrate", 'i' },
	[TRACE_CONNECT] = { "client_connect", "client", 'i' },
	[TRACE_EXIT] = { "client_exit", "client", 'i' },
};

/* ---- recording: any thread ---- */

static bool moves_many(uint8_t kind)
{
	return kind == TRACE_TO_DEVICE || kind == TRACE_TO_SYSTEM || kind == TRACE_EVICT ||
	       kind == TRACE_GRANT_HELD;
}

static void record(const struct trace_event *ev)
{
	bool wake;

	pthread_mutex_lock(&tr.lock);
	if (tr.closed || tr.n == TRACE_BUF_EVENTS) {
		tr.dropped += !tr.closed;
		pthread_mutex_unlock(&tr.lock);
		return;
	}
	tr.fill[tr.n++] = *ev;
	/* The writer is told only when it sleeps for want of events, or when
	 * the buffer is filling up: one wake-up a burst, not one an event.
	 * After a migration, it samples the devices' memory at once, while
	 * it is at its peak: a migration takes far longer than a wake-up. */
	wake = (tr.sleeping && tr.n == 1) || tr.n == TRACE_BUF_EVENTS * 3 / 4 ||
	       (moves_many(ev->kind) && !tr.urgent);
	tr.urgent |= moves_many(ev->kind);
	if (wake)
		tr.sleeping = false;
	pthread_mutex_unlock(&tr.lock);
	if (wake)
		pthread_cond_signal(&tr.wake);
}

void trace_fault(enum trace_kind kind, pid_t pid, pid_t tid, unsigned int dev, uint64_t addr,
		 uint64_t pages, uint64_t t0, uint64_t t1)
{
	const struct trace_event ev = { .kind = (uint8_t)kind, .pid = pid, .tid = tid ? tid : pid,
					.dev = (int16_t)dev, .addr = addr, .pages = pages,
					.count = 1, .t0 = t0, .t1 = t1 };

	record(&ev);
}

void trace_span(enum trace_kind kind, pid_t pid, int dev, uint64_t addr, uint64_t pages,
		uint64_t count, uint64_t t0, uint64_t t1)
{
	const struct trace_event ev = { .kind = (uint8_t)kind, .pid = pid, .tid = pid,
					.dev = (int16_t)dev, .addr = addr, .pages = pages,
					.count = count, .t0 = t0, .t1 = t1 };

	record(&ev);
}

void trace_mark(enum trace_kind kind, pid_t pid, int dev, uint64_t addr, uint64_t pages,
		uint64_t count)
{
	const uint64_t now = lathist_now_ns();

	trace_span(kind, pid, dev, addr, pages, count, now, now);
}

/* ---- writing: the writer thread ---- */

/* Microseconds since the trace began, with three decimals. */
static void put_us(FILE *f, const char *key, uint64_t ns)
{
	fprintf(f, ",\"%s\":%llu.%03llu", key, (unsigned long long)(ns / 1000),
		(unsigned long long)(ns % 1000));
}

static uint64_t since_start(uint64_t t)
{
	return t > tr.start_ns ? t - tr.start_ns : 0;
}

/* A name read from /proc, its newline cut, quotes and backslashes made
 * harmless; fallback when the process is gone. */
static void read_name(const char *path, char *buf, size_t len, const char *fallback)
{
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	if (n <= 0) {
		snprintf(buf, len, "%s", fallback);
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '_';
}

static void put_meta(const char *what, int pid, int tid, const char *name)
{
	fprintf(tr.f,
		"{\"name\":\"%s\",\"ph\":\"M\",\"ts\":0,\"pid\":%d,\"tid\":%d,"
		"\"args\":{\"name\":\"%s\"}},\n",
		what, pid, tid, name);
}

/* Whether the track (pid, tid) was named already; names it if not. */
static bool seen(int pid, int tid)
{
	const uint64_t key = (uint64_t)(uint32_t)pid << 32 | (uint32_t)tid;
	size_t i;

	if (2 * (tr.seen_n + 1) > tr.seen_cap) {
		size_t cap = tr.seen_cap ? 2 * tr.seen_cap : 256;
		uint64_t *s = calloc(cap, sizeof(*s)), *old = tr.seen;
		size_t oldcap = tr.seen_cap;

		if (!s)
			return true;	/* unnamed, then */
		tr.seen = s;
		tr.seen_cap = cap;
		for (size_t k = 0; k < oldcap; k++) {
			if (!old[k])
				continue;
			for (i = (size_t)(old[k] * 0x9e3779b97f4a7c15ull) & (cap - 1); s[i];
			     i = (i + 1) & (cap - 1))
				;
			s[i] = old[k];
		}
		free(old);
	}
	for (i = (size_t)(key * 0x9e3779b97f4a7c15ull) & (tr.seen_cap - 1); tr.seen[i];
	     i = (i + 1) & (tr.seen_cap - 1))
		if (tr.seen[i] == key)
			return true;
	tr.seen[i] = key;
	tr.seen_n++;
	return false;
}

/* The process_name and thread_name of a client's track, once each. */
static void name_track(int pid, int tid)
{
	char path[64], name[64], fallback[32];

	if (!seen(pid, 0)) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		snprintf(fallback, sizeof(fallback), "pid %d", pid);
		read_name(path, name, sizeof(name), fallback);
		put_meta("process_name", pid, pid, name);
	}
	if (!seen(pid, tid)) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
		snprintf(fallback, sizeof(fallback), "tid %d", tid);
		read_name(path, name, sizeof(name), fallback);
		put_meta("thread_name", pid, tid, name);
	}
}

static void put_event(const struct trace_event *ev)
{
	const bool on_device = ev->kind == TRACE_TO_DEVICE || ev->kind == TRACE_TO_SYSTEM ||
			       ev->kind == TRACE_EVICT || ev->kind == TRACE_GRANT_HELD;
	const int pid = on_device && ev->dev >= 0 ? TRACE_DEVICE_PID(ev->dev) : ev->pid;
	const int tid = on_device && ev->dev >= 0 ? pid : ev->tid;

	if (!on_device || ev->dev < 0)
		name_track(ev->pid, ev->tid);
	fprintf(tr.f, "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"%c\"", kinds[ev->kind].name,
		kinds[ev->kind].cat, kinds[ev->kind].ph);
	if (kinds[ev->kind].ph == 'i')
		fputs(",\"s\":\"t\"", tr.f);
	put_us(tr.f, "ts", since_start(ev->t0));
	if (kinds[ev->kind].ph == 'X')
		put_us(tr.f, "dur", ev->t1 > ev->t0 ? ev->t1 - ev->t0 : 0);
	fprintf(tr.f, ",\"pid\":%d,\"tid\":%d,\"args\":{\"pid\":%d,\"dev\":%d", pid, tid,
		(int)ev->pid, (int)ev->dev);
	if (ev->addr)
		fprintf(tr.f, ",\"addr\":\"%#llx\"", (unsigned long long)ev->addr);
	fprintf(tr.f, ",\"pages\":%llu,\"bytes\":%llu,\"count\":%llu}},\n",
		(unsigned long long)ev->pages, (unsigned long long)(ev->pages * PG_SIZE),
		(unsigned long long)ev->count);
}

/* A counter event for each device whose memory in use changed since the
 * last (all of them when force). */
static void sample_devices(bool force)
{
	const uint64_t ts = since_start(lathist_now_ns());

	for (unsigned int i = 0; i < tr.devs->ndevices; i++) {
		struct device *dev = &tr.devs->dev[i];
		struct refpool_stats st = { 0 };

		/* The pool is only there while the device is plugged. */
		pthread_rwlock_rdlock(&dev->plug_lock);
		if (!dev->unplugged && dev->pool)
			refpool_get_stats(dev->pool, &st);
		pthread_rwlock_unlock(&dev->plug_lock);
		if (!force && st.pages_used * PG_SIZE == tr.used_bytes[i])
			continue;
		tr.used_bytes[i] = st.pages_used * PG_SIZE;
		fprintf(tr.f, "{\"name\":\"device_memory\",\"cat\":\"memory\",\"ph\":\"C\"");
		put_us(tr.f, "ts", ts);
		fprintf(tr.f, ",\"pid\":%d,\"tid\":%d,\"args\":{\"bytes\":%llu}},\n",
			TRACE_DEVICE_PID(i), TRACE_DEVICE_PID(i), (unsigned long long)tr.used_bytes[i]);
	}
}

static void write_batch(const struct trace_event *evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_event(&evs[i]);
	sample_devices(false);
	/* Each batch reaches the file: a zdevd killed outright loses only
	 * the last few milliseconds. */
	fflush(tr.f);
}

static void *writer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&tr.lock);
	for (;;) {
		struct trace_event *batch;
		struct timespec until;
		size_t n;
		bool stop;

		/* No CPU at all while nothing happens. */
		while (!tr.n && !tr.stop) {
			tr.sleeping = true;
			pthread_cond_wait(&tr.wake, &tr.lock);
		}
		tr.sleeping = false;
		if (!tr.stop && !tr.urgent && tr.n < TRACE_BUF_EVENTS * 3 / 4) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += WRITE_PAUSE_NS;
			if (until.tv_nsec >= 1000000000l) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000l;
			}
			pthread_cond_timedwait(&tr.wake, &tr.lock, &until);
		}
		batch = tr.fill;
		n = tr.n;
		tr.fill = tr.spare;
		tr.spare = batch;
		tr.n = 0;
		tr.urgent = false;
		stop = tr.stop;
		pthread_mutex_unlock(&tr.lock);
		write_batch(batch, n);
		pthread_mutex_lock(&tr.lock);
		if (stop && !tr.n)
			break;
	}
	pthread_mutex_unlock(&tr.lock);
	return NULL;
}

/* ---- the file ---- */

static void put_heads(void)
{
	char name[64];
	int pid = (int)getpid();

	fputs("[\n", tr.f);
	put_meta("process_name", pid, pid, "zdevd");
	for (unsigned int i = 0; i < tr.devs->ndevices; i++) {
		snprintf(name, sizeof(name), "device %u (%s)", i,
			 tr.devs->dev[i].memtype == REFPOOL_MEMTYPE_COHERENT ? "coherent" : "private");
		put_meta("process_name", TRACE_DEVICE_PID(i), TRACE_DEVICE_PID(i), name);
		put_meta("thread_name", TRACE_DEVICE_PID(i), TRACE_DEVICE_PID(i), "migrations");
		fprintf(tr.f,
			"{\"name\":\"process_sort_index\",\"ph\":\"M\",\"ts\":0,\"pid\":%d,\"tid\":%d,"
			"\"args\":{\"sort_index\":%u}},\n",
			TRACE_DEVICE_PID(i), TRACE_DEVICE_PID(i), i);
	}
}

int trace_open(const char *path, struct devset *devs)
{
	int fd, ret;

	tr.fill = calloc(TRACE_BUF_EVENTS, sizeof(*tr.fill));
	tr.spare = calloc(TRACE_BUF_EVENTS, sizeof(*tr.spare));
	tr.fbuf = malloc(FILE_BUF_BYTES);
	if (!tr.fill || !tr.spare || !tr.fbuf) {
		ret = -ENOMEM;
		goto err_free;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		goto err_free;
	}
	tr.f = fdopen(fd, "w");
	if (!tr.f) {
		ret = -errno;
		close(fd);
		goto err_free;
	}
	setvbuf(tr.f, tr.fbuf, _IOFBF, FILE_BUF_BYTES);
	tr.devs = devs;
	tr.start_ns = lathist_now_ns();
	put_heads();
	sample_devices(true);
	fflush(tr.f);
	trace_on = true;
	return 0;

err_free:
	free(tr.fbuf);
	free(tr.spare);
	free(tr.fill);
	tr.fill = tr.spare = NULL;
	tr.fbuf = NULL;
	return ret;
}

int trace_start(void)
{
	int ret;

	if (!tr.f)
		return 0;
	ret = -pthread_create(&tr.writer, NULL, writer_main, NULL);
	tr.started = !ret;
	return ret;
}

void trace_close(void)
{
	uint64_t dropped;
	int pid = (int)getpid();

	if (!tr.f)
		return;
	pthread_mutex_lock(&tr.lock);
	tr.stop = true;
	pthread_mutex_unlock(&tr.lock);
	pthread_cond_signal(&tr.wake);
	if (tr.started)
		pthread_join(tr.writer, NULL);
	pthread_mutex_lock(&tr.lock);
	tr.closed = true;
	dropped = tr.dropped;
	pthread_mutex_unlock(&tr.lock);
	/* Without a writer (it could not start), what was recorded goes now. */
	write_batch(tr.fill, tr.n);
	tr.n = 0;
	sample_devices(true);
	if (dropped)
		log_warn("trace: %llu events dropped: the writer fell behind",
			 (unsigned long long)dropped);
	fprintf(tr.f, "{\"name\":\"trace_end\",\"cat\":\"zdevd\",\"ph\":\"i\",\"s\":\"g\"");
	put_us(tr.f, "ts", since_start(lathist_now_ns()));
	fprintf(tr.f, ",\"pid\":%d,\"tid\":%d,\"args\":{\"dropped\":%llu}}\n]\n", pid, pid,
		(unsigned long long)dropped);
	if (fclose(tr.f))
		log_warn("trace: %m");
	tr.f = NULL;
	free(tr.fbuf);
	free(tr.seen);
	free(tr.fill);
	free(tr.spare);
}
