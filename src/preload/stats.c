/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <fcntl.h>
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

static void write_json(FILE *f, const struct env *e, const struct summary *s)
{
	fprintf(f, "{\"pid\":%d,\"policy\":\"%s\",\"seed\":%llu,\"cpu_faults\":%llu,"
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
		fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)s->lat.bucket[i]);
	fputs("]}\n", f);
}

static double mib(uint64_t pages)
{
	return (double)(pages * PG_SIZE) / (1 << 20);
}

static void write_text(FILE *f, const struct env *e, const struct summary *s)
{
	fprintf(f, "zdev: pid %d, policy %s", (int)getpid(), env_policy_name(e->policy));
	if (e->policy == POLICY_STRESS)
		fprintf(f, ", seed %llu (ZDEV_SEED replays it)", (unsigned long long)e->seed);
	fprintf(f, "\nzdev:   %llu CPU faults served, %llu device fault rounds\n"
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
	char path[400];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/%d.%llu.json", e->stats_dir, (int)getpid(),
		 (unsigned long long)shim.start_ns);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	write_json(f, e, s);
	fclose(f);
}

void stats_write(const struct env *e, struct zdev *dev)
{
	struct summary s;
	FILE *f;

	if (!e->stats[0] && !e->stats_dir[0])
		return;
	gather(dev, &s);
	if (e->stats_dir[0])
		write_dir_file(e, &s);
	if (!e->stats[0])
		return;
	if (strcmp(e->stats, "1"))
		f = fopen(e->stats, "ae");
	else
		f = shim_stderr >= 0 ? fdopen(dup(shim_stderr), "w") : NULL;
	if (!f)
		return;
	if (e->stats_json)
		write_json(f, e, &s);
	else
		write_text(f, e, &s);
	fclose(f);
}
