/* SPDX-License-Identifier: MIT */
/*
 * Reading back the trace zdevd writes (src/trace.c): one event a line, each
 * an object with its keys in zdevd's order. Only zdevd's own lines are
 * read; anything else is refused with the line it is on, rather than
 * guessed at.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/plot.h"
#include "trace_format.h"

/* The events zdevd writes (trace.c), and the metadata around them. */
static const char *const known[] = {
	"cpu_fault", "exclusive_revoke", "exclusive_grant", "migrate_to_device",
	"migrate_to_system", "evict", "device_access_back", "client_connect", "client_exit",
	"device_memory", "process_name", "thread_name", "process_sort_index", "trace_end",
};

static bool is_known(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == len && !strncmp(known[i], name, len))
			return true;
	return false;
}

/* The value after "key": in line, or NULL. */
static const char *value_of(const char *line, const char *key)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? p + strlen(pat) : NULL;
}

static bool parse_u64(const char *p, uint64_t *out)
{
	char *end;

	if (!p || *p < '0' || *p > '9')
		return false;
	errno = 0;
	*out = strtoull(p, &end, 10);
	return !errno && end != p;
}

/* Microseconds with up to three decimals, as trace.c writes them, in ns. */
static bool parse_us(const char *p, uint64_t *ns)
{
	uint64_t us, frac = 0;
	int digits = 0;

	if (!parse_u64(p, &us) || us > UINT64_MAX / 1000)
		return false;
	p += strspn(p, "0123456789");
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (uint64_t)(*p - '0');
		if (!digits)
			return false;
		for (; digits < 3; digits++)
			frac *= 10;
	}
	*ns = us * 1000 + frac;
	return true;
}

static unsigned int lat_bucket(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = 0;

	while (us >= 2 && b < PLOT_LAT_BUCKETS - 1) {
		us >>= 1;
		b++;
	}
	return b;
}

static int add_sample(struct plot_data *pd, unsigned int dev, uint64_t ts, uint64_t bytes)
{
	if (pd->nmem[dev] == pd->capmem[dev]) {
		size_t cap = pd->capmem[dev] ? 2 * pd->capmem[dev] : 256;
		struct plot_point *p = realloc(pd->mem[dev], cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		pd->mem[dev] = p;
		pd->capmem[dev] = cap;
	}
	pd->mem[dev][pd->nmem[dev]++] = (struct plot_point){ ts, bytes };
	if (dev >= pd->ndevices)
		pd->ndevices = dev + 1;
	return 0;
}

/* One event line, its trailing comma and newline gone. 0, -EBADMSG with
 * *why, or -ENOMEM. */
static int read_event(struct plot_data *pd, const char *line, const char **why)
{
	const char *name = value_of(line, "name"), *ph = value_of(line, "ph");
	uint64_t ts, dur, bytes, pid;
	size_t len;

	*why = "not an event of zdevd's trace";
	if (line[0] != '{' || line[strlen(line) - 1] != '}' || !name || *name != '"' || !ph ||
	    ph[0] != '"' || !ph[1] || ph[2] != '"')
		return -EBADMSG;
	name++;
	len = strcspn(name, "\"");
	if (!is_known(name, len)) {
		*why = "an event zdev does not know (a trace of another zdev, or not zdevd's)";
		return -EBADMSG;
	}
	*why = "an event without a number for ts or pid";
	if (!parse_us(value_of(line, "ts"), &ts) || !parse_u64(value_of(line, "pid"), &pid))
		return -EBADMSG;
	if (ts > pd->end_ns)
		pd->end_ns = ts;
	if (!strncmp(name, "device_memory\"", len + 1)) {
		*why = "a device_memory counter without bytes, or not on a device's track";
		if (ph[1] != 'C' || !parse_u64(value_of(line, "bytes"), &bytes) ||
		    pid < (uint64_t)TRACE_DEVICE_PID(0) ||
		    pid >= (uint64_t)TRACE_DEVICE_PID(ZDEV_MAX_DEVICES))
			return -EBADMSG;
		return add_sample(pd, (unsigned int)(pid - (uint64_t)TRACE_DEVICE_PID(0)), ts, bytes);
	}
	if (!strncmp(name, "cpu_fault\"", len + 1)) {
		*why = "a cpu_fault without its duration";
		if (ph[1] != 'X' || !parse_us(value_of(line, "dur"), &dur))
			return -EBADMSG;
		pd->lat[lat_bucket(dur)]++;
		pd->faults++;
		if (ts + dur > pd->end_ns)
			pd->end_ns = ts + dur;
	}
	return 0;
}

int plot_read_trace(const char *prog, const char *path, struct plot_data *pd)
{
	const char *why = NULL;
	size_t cap = 0, lineno = 0;
	char *line = NULL;
	ssize_t n;
	int ret = 0;
	FILE *f;

	memset(pd, 0, sizeof(*pd));
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(-ret));
		return ret;
	}
	while (!ret && (n = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == ','))
			line[--n] = '\0';
		if (!strcmp(line, "[") || !strcmp(line, "]"))
			continue;
		if (!n) {
			ret = -EBADMSG;
			why = "an empty line";
			break;
		}
		ret = read_event(pd, line, &why);
	}
	if (!ret && ferror(f))
		ret = -EIO;
	if (!ret && !lineno) {
		ret = -EBADMSG;
		why = "empty: not a trace zdevd wrote";
	}
	if (ret == -EBADMSG)
		fprintf(stderr, "%s: %s:%zu: %s\n", prog, path, lineno, why);
	else if (ret)
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(-ret));
	free(line);
	fclose(f);
	if (ret)
		plot_data_free(pd);
	return ret;
}

void plot_data_free(struct plot_data *pd)
{
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++) {
		free(pd->mem[i]);
		pd->mem[i] = NULL;
		pd->nmem[i] = pd->capmem[i] = 0;
	}
}

int plot_trace(const char *prog, const char *trace, const char *out)
{
	struct plot_data pd;
	const char *base = strrchr(trace, '/');
	int ret;

	ret = plot_read_trace(prog, trace, &pd);
	if (ret)
		return ret;
	ret = plot_write_svg(prog, &pd, base ? base + 1 : trace, out);
	plot_data_free(&pd);
	return ret;
}
