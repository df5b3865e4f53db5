/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lathist.h"
#include "lib/zdevpriv.h"
#include "page.h"
#include "preload/ranges.h"
#include "preload/state.h"
#include "preload/stats.h"
#include "zdev.h"

struct summary {
	struct zdev_stats st;
	struct lathist_snap lat;
	uint64_t p50_ns, p99_ns;
};

/*
 * The report is formatted into a buffer on the stack and written with
 * write(2), never through stdio: fopen and a FILE's buffer are mallocs, and
 * at exit a program's heap can be full of freed small chunks that malloc
 * merges all at once before it serves a request of a kilobyte or more. For
 * a program that freed a large hash on its way out that took a tenth of a
 * second, all of it zdev's.
 */
struct report {
	int fd;
	size_t len;
	char buf[4096];
};

static void report_flush(struct report *r)
{
	size_t done = 0;
	ssize_t n;

	while (done < r->len) {
		n = write(r->fd, r->buf + done, r->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	r->len = 0;
}

__attribute__((format(printf, 2, 3)))
static void report_add(struct report *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (int tries = 0; tries < 2; tries++) {
		va_start(ap, fmt);
		n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < sizeof(r->buf) - r->len) {
			r->len += (size_t)n;
			return;
		}
		/* Did not fit: what came before goes out first. A single
		 * piece longer than the buffer is cut short. */
		if (!r->len) {
			r->len = sizeof(r->buf) - 1;
			return;
		}
		report_flush(r);
	}
}

static void gather(struct zdev *dev, struct summary *s)
{
	memset(s, 0, sizeof(*s));
	s->st.version = ZDEV_STATS_VERSION;
	s->st.size = sizeof(s->st);
	if (!dev || zdev_get_stats(dev, &s->st))
		memset(&s->st, 0, sizeof(s->st));
	if (dev && zdevpriv_fault_hist(dev, s->lat.bucket, LATHIST_BUCKETS, &s->lat.max_ns) < 0)
		memset(&s->lat, 0, sizeof(s->lat));
	s->p50_ns = lathist_percentile(&s->lat, 0.50);
	s->p99_ns = lathist_percentile(&s->lat, 0.99);
}

static void write_json(struct report *f, const struct env *e, const struct summary *s)
{
	report_add(f, "{\"pid\":%d,\"policy\":\"%s\",\"seed\":%llu,\"cpu_faults\":%llu,"
		   "\"device_faults\":%llu,\"pages_to_device\":%llu,\"pages_to_system\":%llu,"
		   "\"exclusive_grants\":%llu,\"exclusive_revokes\":%llu,\"peak_device_pages\":%llu,"
		   "\"managed_peak_bytes\":%llu,\"fault_max_ns\":%llu,\"fault_p50_ns\":%llu,"
		   "\"fault_p99_ns\":%llu,\"fault_hist\":[",
		(int)getpid(), env_policy_name(e->policy), (unsigned long long)e->seed,
		(unsigned long long)s->st.cpu_faults, (unsigned long long)s->st.device_faults,
		(unsigned long long)s->st.pages_to_device, (unsigned long long)s->st.pages_to_system,
		(unsigned long long)s->st.exclusive_grants,
		(unsigned long long)s->st.exclusive_revokes, (unsigned long long)s->st.peak_device_pages,
		(unsigned long long)ranges_peak_bytes(), (unsigned long long)s->lat.max_ns,
		(unsigned long long)s->p50_ns, (unsigned long long)s->p99_ns);
	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++)
		report_add(f, "%s%llu", i ? "," : "", (unsigned long long)s->lat.bucket[i]);
	report_add(f, "]}\n");
}

static double mib(uint64_t pages)
{
	return (double)(pages * PG_SIZE) / (1 << 20);
}

static void write_text(struct report *f, const struct env *e, const struct summary *s)
{
	report_add(f, "zdev: pid %d, policy %s", (int)getpid(), env_policy_name(e->policy));
	if (e->policy == POLICY_STRESS)
		report_add(f, ", seed %llu (ZDEV_SEED replays it)", (unsigned long long)e->seed);
	report_add(f, "\nzdev:   %llu CPU faults served, %llu device fault rounds\n"
		   "zdev:   %llu pages to the device (%.1f MiB), %llu back (%.1f MiB)\n"
		   "zdev:   %llu exclusive grants, %llu revokes\n"
		   "zdev:   fault latency p50 %.1f us, p99 %.1f us, max %.1f us\n"
		   "zdev:   managed memory at most %.1f MiB\n",
		(unsigned long long)s->st.cpu_faults, (unsigned long long)s->st.device_faults,
		(unsigned long long)s->st.pages_to_device, mib(s->st.pages_to_device),
		(unsigned long long)s->st.pages_to_system, mib(s->st.pages_to_system),
		(unsigned long long)s->st.exclusive_grants,
		(unsigned long long)s->st.exclusive_revokes, (double)s->p50_ns / 1e3,
		(double)s->p99_ns / 1e3, (double)s->lat.max_ns / 1e3,
		(double)ranges_peak_bytes() / (1 << 20));
}

/* One file a process image in the directory zdev-run reads. */
static void write_dir_file(const struct env *e, const struct summary *s)
{
	struct report r = { .len = 0 };
	char path[400];

	snprintf(path, sizeof(path), "%s/%d.%llu.json", e->stats_dir, (int)getpid(),
		 (unsigned long long)shim.start_ns);
	r.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r.fd < 0)
		return;
	write_json(&r, e, s);
	report_flush(&r);
	close(r.fd);
}

void stats_write(const struct env *e, struct zdev *dev)
{
	struct report r = { .len = 0 };
	struct summary s;

	if (!e->stats[0] && !e->stats_dir[0])
		return;
	gather(dev, &s);
	if (e->stats_dir[0])
		write_dir_file(e, &s);
	if (!e->stats[0])
		return;
	if (strcmp(e->stats, "1"))
		r.fd = open(e->stats, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	else
		r.fd = shim_stderr;
	if (r.fd < 0)
		return;
	if (e->stats_json)
		write_json(&r, e, &s);
	else
		write_text(&r, e, &s);
	report_flush(&r);
	if (r.fd != shim_stderr)
		close(r.fd);
}
