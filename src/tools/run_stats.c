/* SPDX-License-Identifier: MIT */
/*
 * The statistics files the shim leaves for zdev-run (format in
 * tools/run_stats.h): read, checked and merged. The parser knows exactly
 * this shape, one flat object of integers, strings and one array of
 * integers, and steps over any other JSON value an unknown key may hold, so
 * that a newer shim can add keys.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tools/run_stats.h"

/* Nesting an unknown value may have before the file is called malformed. */
#define MAX_DEPTH 64

struct cursor {
	const char *p;
	const char *end;
};

static const struct {
	const char *key;
	size_t off;
} counters[] = {
	{ "pid", offsetof(struct run_stats_proc, pid) },
	{ "seed", offsetof(struct run_stats_proc, seed) },
	{ "cpu_faults", offsetof(struct run_stats_proc, cpu_faults) },
	{ "device_faults", offsetof(struct run_stats_proc, device_faults) },
	{ "pages_to_device", offsetof(struct run_stats_proc, pages_to_device) },
	{ "pages_to_system", offsetof(struct run_stats_proc, pages_to_system) },
	{ "exclusive_grants", offsetof(struct run_stats_proc, exclusive_grants) },
	{ "exclusive_revokes", offsetof(struct run_stats_proc, exclusive_revokes) },
	{ "peak_device_pages", offsetof(struct run_stats_proc, peak_device_pages) },
	{ "fault_max_ns", offsetof(struct run_stats_proc, fault_max_ns) },
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t run_stats_bytes(uint64_t pages)
{
	return pages > UINT64_MAX / RUN_STATS_PAGE_SIZE ? UINT64_MAX : pages * RUN_STATS_PAGE_SIZE;
}

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Consumes ch, after any white space: whether it was there. */
static bool eat(struct cursor *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* One escape after the backslash: the character it stands for (a character
 * outside ASCII as '?'), or -EINVAL. */
static int parse_escape(struct cursor *c)
{
	unsigned int code = 0;

	if (c->p >= c->end)
		return -EINVAL;
	switch (*c->p++) {
	case '"': return '"';
	case '\\': return '\\';
	case '/': return '/';
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u':
		if (c->end - c->p < 4)
			return -EINVAL;
		for (int i = 0; i < 4; i++) {
			int d = hex_digit(*c->p++);

			if (d < 0)
				return -EINVAL;
			code = code << 4 | (unsigned int)d;
		}
		return code && code < 0x80 ? (int)code : '?';
	default:
		return -EINVAL;
	}
}

/*
 * A string into buf, NUL-terminated (buf may be NULL with len 0 to step
 * over it). 0; 1 if it did not fit and buf holds its beginning; -EINVAL if
 * there is no well-formed string.
 */
static int parse_string(struct cursor *c, char *buf, size_t len)
{
	size_t n = 0;
	bool cut = false;

	if (!eat(c, '"'))
		return -EINVAL;
	while (c->p < c->end) {
		int ch = (unsigned char)*c->p++;

		if (ch == '"') {
			if (len)
				buf[n] = '\0';
			return cut;
		}
		if (ch < 0x20)
			return -EINVAL;
		if (ch == '\\' && (ch = parse_escape(c)) < 0)
			return -EINVAL;
		if (n + 1 < len)
			buf[n++] = (char)ch;
		else
			cut = true;
	}
	return -EINVAL;
}

/* A non-negative integer below 2^64. 0; -EINVAL if there is none, or
 * another kind of number; -ERANGE if it is too large. */
static int parse_u64(struct cursor *c, uint64_t *out)
{
	const char *start;
	uint64_t v = 0;

	skip_ws(c);
	start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned int d = (unsigned int)(*c->p++ - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (c->p == start)
		return -EINVAL;
	if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
		return -EINVAL;
	*out = v;
	return 0;
}

static int skip_digits(struct cursor *c)
{
	const char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start ? 0 : -EINVAL;
}

/* Any JSON number. */
static int skip_number(struct cursor *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (skip_digits(c))
		return -EINVAL;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (skip_digits(c))
			return -EINVAL;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (skip_digits(c))
			return -EINVAL;
	}
	return 0;
}

static int skip_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n))
		return -EINVAL;
	c->p += n;
	return 0;
}

static int skip_value(struct cursor *c, int depth);

/* An object or an array, its opening bracket next. */
static int skip_container(struct cursor *c, char close, int depth)
{
	bool object = close == '}';

	c->p++;
	if (eat(c, close))
		return 0;
	do {
		if (object && (parse_string(c, NULL, 0) < 0 || !eat(c, ':')))
			return -EINVAL;
		if (skip_value(c, depth + 1))
			return -EINVAL;
	} while (eat(c, ','));
	return eat(c, close) ? 0 : -EINVAL;
}

/* Any JSON value, well-formed. 0 or -EINVAL. */
static int skip_value(struct cursor *c, int depth)
{
	skip_ws(c);
	if (c->p >= c->end || depth > MAX_DEPTH)
		return -EINVAL;
	switch (*c->p) {
	case '"': return parse_string(c, NULL, 0) < 0 ? -EINVAL : 0;
	case '{': return skip_container(c, '}', depth);
	case '[': return skip_container(c, ']', depth);
	case 't': return skip_word(c, "true");
	case 'f': return skip_word(c, "false");
	case 'n': return skip_word(c, "null");
	default: return skip_number(c);
	}
}

static int parse_hist(struct cursor *c, uint64_t *hist)
{
	unsigned int i = 0;
	uint64_t v;
	int ret;

	memset(hist, 0, RUN_STATS_HIST_BUCKETS * sizeof(*hist));
	if (!eat(c, '['))
		return -EINVAL;
	if (eat(c, ']'))
		return 0;
	do {
		ret = parse_u64(c, &v);
		if (ret)
			return ret;
		/* Buckets past the last hold slower faults still: they are
		 * counted in the last rather than lost. */
		if (i < RUN_STATS_HIST_BUCKETS)
			hist[i++] = v;
		else
			hist[i - 1] = sat_add(hist[i - 1], v);
	} while (eat(c, ','));
	return eat(c, ']') ? 0 : -EINVAL;
}

/* The value of one member whose key is known (or "" for one to skip). */
static int parse_member(struct cursor *c, const char *key, struct run_stats_proc *out)
{
	if (!strcmp(key, "fault_hist"))
		return parse_hist(c, out->fault_hist);
	if (!strcmp(key, "policy"))
		return parse_string(c, out->policy, sizeof(out->policy)) < 0 ? -EINVAL : 0;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		if (!strcmp(key, counters[i].key))
			return parse_u64(c, (uint64_t *)((char *)out + counters[i].off));
	}
	return skip_value(c, 0);
}

int run_stats_parse(const char *text, size_t len, struct run_stats_proc *out)
{
	struct cursor c = { text, text + len };
	char key[32];
	int ret;

	memset(out, 0, sizeof(*out));
	if (!eat(&c, '{'))
		return -EINVAL;
	if (!eat(&c, '}')) {
		do {
			ret = parse_string(&c, key, sizeof(key));
			if (ret < 0 || !eat(&c, ':'))
				return -EINVAL;
			/* A key too long for key[] is no key we know. */
			ret = parse_member(&c, ret ? "" : key, out);
			if (ret)
				return ret;
		} while (eat(&c, ','));
		if (!eat(&c, '}'))
			return -EINVAL;
	}
	skip_ws(&c);
	return c.p == c.end ? 0 : -EINVAL;
}

/* Adds pid to the sorted set of pids seen. 0 or -ENOMEM. */
static int note_pid(struct run_stats *s, uint64_t pid)
{
	size_t lo = 0, hi = s->processes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->pids[mid] == pid)
			return 0;
		if (s->pids[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (s->processes == s->pids_cap) {
		size_t cap = s->pids_cap ? 2 * s->pids_cap : 64;
		uint64_t *pids = realloc(s->pids, cap * sizeof(*pids));

		if (!pids)
			return -ENOMEM;
		s->pids = pids;
		s->pids_cap = cap;
	}
	memmove(&s->pids[lo + 1], &s->pids[lo], (s->processes - lo) * sizeof(*s->pids));
	s->pids[lo] = pid;
	s->processes++;
	return 0;
}

int run_stats_add(struct run_stats *s, const struct run_stats_proc *p)
{
	uint64_t max = p->fault_max_ns;
	int ret;

	ret = note_pid(s, p->pid);
	if (ret)
		return ret;
	s->files++;
	s->cpu_faults = sat_add(s->cpu_faults, p->cpu_faults);
	s->device_faults = sat_add(s->device_faults, p->device_faults);
	s->pages_to_device = sat_add(s->pages_to_device, p->pages_to_device);
	s->pages_to_system = sat_add(s->pages_to_system, p->pages_to_system);
	s->exclusive_grants = sat_add(s->exclusive_grants, p->exclusive_grants);
	s->exclusive_revokes = sat_add(s->exclusive_revokes, p->exclusive_revokes);
	s->peak_device_pages = sat_add(s->peak_device_pages, p->peak_device_pages);
	for (unsigned int i = 0; i < RUN_STATS_HIST_BUCKETS; i++) {
		s->fault_hist[i] = sat_add(s->fault_hist[i], p->fault_hist[i]);
		if (p->fault_hist[i] && max < 1ull << i)
			max = 1ull << i;
	}
	if (max > s->fault_max_ns)
		s->fault_max_ns = max;
	return 0;
}

uint64_t run_stats_percentile_ns(const struct run_stats *s, unsigned int percent)
{
	uint64_t total = 0, seen = 0, need;

	if (percent > 100)
		percent = 100;
	for (unsigned int i = 0; i < RUN_STATS_HIST_BUCKETS; i++)
		total = sat_add(total, s->fault_hist[i]);
	if (!total)
		return 0;
	/* ceil(total * percent / 100), without overflow */
	need = total / 100 * percent + ((total % 100) * percent + 99) / 100;
	if (!need)
		need = 1;
	for (unsigned int i = 0; i < RUN_STATS_HIST_BUCKETS; i++) {
		uint64_t mid = (3ull << i) / 2;

		seen = sat_add(seen, s->fault_hist[i]);
		if (seen >= need)
			return mid < s->fault_max_ns ? mid : s->fault_max_ns;
	}
	return s->fault_max_ns;
}

/* The pid a file's name starts with if it is <pid>.<anything>.json, else 0. */
static uint64_t name_pid(const char *name)
{
	size_t digits = strspn(name, "0123456789"), len = strlen(name);
	uint64_t pid = 0;

	if (!digits || digits > 18 || name[digits] != '.' || len < digits + 5 ||
	    strcmp(name + len - 5, ".json"))
		return 0;
	for (size_t i = 0; i < digits; i++)
		pid = pid * 10 + (uint64_t)(name[i] - '0');
	return pid;
}

/* Reads and parses one file of the directory at dfd. 0 or -errno
 * (-EINVAL, -ERANGE: not a statistics file). */
static int load_file(int dfd, const char *name, struct run_stats_proc *p)
{
	char *buf;
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, ret;

	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out_close;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode) || st.st_size > RUN_STATS_MAX_FILE)
		goto out_close;
	ret = -ENOMEM;
	buf = malloc(RUN_STATS_MAX_FILE + 1);
	if (!buf)
		goto out_close;
	while ((n = read(fd, buf + got, RUN_STATS_MAX_FILE + 1 - got)) > 0)
		got += (size_t)n;
	if (n < 0)
		ret = -errno;
	else if (got > RUN_STATS_MAX_FILE)
		ret = -EINVAL;
	else
		ret = run_stats_parse(buf, got, p);
	free(buf);
out_close:
	close(fd);
	return ret;
}

int run_stats_load_dir(struct run_stats *s, const char *dir)
{
	struct run_stats_proc p;
	struct dirent *e;
	uint64_t pid;
	DIR *d;
	int ret = 0;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		pid = name_pid(e->d_name);
		if (!pid)
			continue;
		ret = load_file(dirfd(d), e->d_name, &p);
		if (ret == -ENOMEM)
			break;
		if (ret) {
			log_warn("%s/%s: not a statistics file (%s): skipped", dir, e->d_name,
				 ret == -EINVAL	  ? "malformed"
				 : ret == -ERANGE ? "a counter of 2^64 or more"
						  : strerror(-ret));
			s->skipped++;
			ret = 0;
			continue;
		}
		if (!p.pid)
			p.pid = pid;
		ret = run_stats_add(s, &p);
		if (ret)
			break;
	}
	closedir(d);
	return ret;
}

void run_stats_free(struct run_stats *s)
{
	free(s->pids);
	s->pids = NULL;
	s->pids_cap = 0;
	s->processes = 0;
}
