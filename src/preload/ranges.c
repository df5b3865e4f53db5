/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "page.h"
#include "preload/ranges.h"
#include "spinlock.h"

#define MANAGED_MAX	1024
#define EXCLUDED_MAX	512

struct range {
	uint64_t start, end;
};

struct table {
	struct range r[MANAGED_MAX];
	unsigned int n;
};

static struct spinlock lock = SPINLOCK_INIT;
static struct table managed;
static struct range excluded[EXCLUDED_MAX];
static unsigned int nexcluded;
static uint64_t managed_peak;

/* Appends [start, end) to t, or grows the range it continues. */
static void table_add(struct table *t, unsigned int cap, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < t->n; i++) {
		if (start <= t->r[i].end && end >= t->r[i].start) {
			t->r[i].start = start < t->r[i].start ? start : t->r[i].start;
			t->r[i].end = end > t->r[i].end ? end : t->r[i].end;
			return;
		}
	}
	if (t->n < cap)
		t->r[t->n++] = (struct range){ start, end };
}

/* Cuts [start, end) out of the n ranges of r: the new count. */
static unsigned int cut(struct range *r, unsigned int n, unsigned int cap, uint64_t start,
			uint64_t end)
{
	for (unsigned int i = 0; i < n; i++) {
		struct range x = r[i];

		if (start >= x.end || end <= x.start)
			continue;
		if (start > x.start && end < x.end && n < cap) {
			/* A hole in the middle: the range splits in two. */
			r[i].end = start;
			r[n++] = (struct range){ end, x.end };
		} else if (start > x.start) {
			r[i].end = start;
		} else if (end < x.end) {
			r[i].start = end;
		} else {
			r[i--] = r[--n];
		}
	}
	return n;
}

static uint64_t table_bytes(const struct table *t)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < t->n; i++)
		sum += t->r[i].end - t->r[i].start;
	return sum;
}

/* Caller holds the lock. */
static void add_locked(uint64_t start, uint64_t end)
{
	uint64_t bytes;

	table_add(&managed, MANAGED_MAX, start, end);
	for (unsigned int i = 0; i < nexcluded; i++)
		managed.n = cut(managed.r, managed.n, MANAGED_MAX, excluded[i].start,
				excluded[i].end);
	bytes = table_bytes(&managed);
	if (bytes > managed_peak)
		managed_peak = bytes;
}

void ranges_add(uint64_t start, uint64_t end, uint64_t min_bytes)
{
	if (end - start < min_bytes)
		return;
	spin_lock(&lock);
	add_locked(start, end);
	spin_unlock(&lock);
}

void ranges_remove(uint64_t start, uint64_t end)
{
	spin_lock(&lock);
	managed.n = cut(managed.r, managed.n, MANAGED_MAX, start, end);
	nexcluded = cut(excluded, nexcluded, EXCLUDED_MAX, start, end);
	spin_unlock(&lock);
}

void ranges_move(uint64_t from, uint64_t old_len, uint64_t to, uint64_t new_len,
		 uint64_t min_bytes)
{
	bool was_managed = false, was_excluded = false;

	spin_lock(&lock);
	for (unsigned int i = 0; i < managed.n && !was_managed; i++)
		was_managed = from < managed.r[i].end && from + old_len > managed.r[i].start;
	for (unsigned int i = 0; i < nexcluded && !was_excluded; i++)
		was_excluded = from < excluded[i].end && from + old_len > excluded[i].start;
	managed.n = cut(managed.r, managed.n, MANAGED_MAX, from, from + old_len);
	nexcluded = cut(excluded, nexcluded, EXCLUDED_MAX, from, from + old_len);
	if (was_excluded && nexcluded < EXCLUDED_MAX)
		excluded[nexcluded++] = (struct range){ to, to + new_len };
	if (!was_excluded && (was_managed || new_len >= min_bytes))
		add_locked(to, to + new_len);
	spin_unlock(&lock);
}

void ranges_exclude(uint64_t start, uint64_t end)
{
	spin_lock(&lock);
	if (nexcluded < EXCLUDED_MAX)
		excluded[nexcluded++] = (struct range){ start, end };
	managed.n = cut(managed.r, managed.n, MANAGED_MAX, start, end);
	spin_unlock(&lock);
}

bool ranges_excluded(uint64_t start, uint64_t end)
{
	bool hit = false;

	spin_lock(&lock);
	for (unsigned int i = 0; i < nexcluded && !hit; i++)
		hit = start < excluded[i].end && end > excluded[i].start;
	spin_unlock(&lock);
	return hit;
}

void ranges_fork_prepare(void)
{
	spin_lock(&lock);
}

void ranges_fork_parent(void)
{
	spin_unlock(&lock);
}

void ranges_fork_child(void)
{
	/* The forking thread, the child's only one, held it. */
	spin_unlock(&lock);
}

/* ---- the scan ---- */

/*
 * Whether a line of /proc/self/maps is memory the program may have on the
 * device: private, readable and writable, no file, not a stack or a
 * kernel-provided area, and not zdev's own (named [anon:zdev...]).
 */
static bool line_is_managed(const char *line, uint64_t *start, uint64_t *end)
{
	unsigned long s, e, inode;
	char perms[5];
	int name = 0;

	/* %n after the inode, not after a space: a space in a format also
	 * skips the newline of a line without a name. */
	if (sscanf(line, "%lx-%lx %4s %*x %*s %lu%n", &s, &e, perms, &inode, &name) < 4 ||
	    strcmp(perms, "rw-p") || inode)
		return false;
	*start = s;
	*end = e;
	for (line += name; *line == ' '; line++)
		;
	if (*line == '\n' || !*line || !strncmp(line, "[heap]", 6))
		return true;
	return !strncmp(line, "[anon:", 6) && strncmp(line, "[anon:zdev", 10);
}

static char maps_buf[1 << 18];
static struct table scanned;

int ranges_scan(uint64_t min_bytes)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while (len < sizeof(maps_buf) - 1 &&
	       (n = read(fd, maps_buf + len, sizeof(maps_buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	maps_buf[len] = '\0';
	scanned.n = 0;
	for (const char *line = maps_buf; *line;) {
		const char *nl = strchr(line, '\n');
		uint64_t start, end;

		if (!nl)
			break;	/* cut short by the buffer: the rest waits */
		if (line_is_managed(line, &start, &end) && end - start >= min_bytes)
			table_add(&scanned, MANAGED_MAX, start, end);
		line = nl + 1;
	}
	spin_lock(&lock);
	managed.n = 0;
	for (unsigned int i = 0; i < scanned.n; i++)
		add_locked(scanned.r[i].start, scanned.r[i].end);
	spin_unlock(&lock);
	return 0;
}

bool ranges_pick(uint64_t pick, uint64_t *start, uint64_t *end)
{
	bool found = false;
	uint64_t total;

	spin_lock(&lock);
	total = table_bytes(&managed);
	if (total) {
		pick %= total;
		for (unsigned int i = 0; i < managed.n && !found; i++) {
			uint64_t len = managed.r[i].end - managed.r[i].start;

			if (pick < len) {
				*start = managed.r[i].start;
				*end = managed.r[i].end;
				found = true;
			}
			pick -= len;
		}
	}
	spin_unlock(&lock);
	return found;
}

uint64_t ranges_bytes(void)
{
	uint64_t bytes;

	spin_lock(&lock);
	bytes = table_bytes(&managed);
	spin_unlock(&lock);
	return bytes;
}

uint64_t ranges_peak_bytes(void)
{
	uint64_t peak;

	spin_lock(&lock);
	peak = managed_peak;
	spin_unlock(&lock);
	return peak;
}
