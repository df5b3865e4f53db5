/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_KERNEL_THP_H
#define ZDEV_TEST_KERNEL_THP_H

/*
 * The kernel's own word on transparent huge pages in this process, apart
 * from anything zdev reports: a test that needs a THP skips on it, and only
 * on it, so that zdev cannot turn its own mistake into a skip.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

/* smaps' field (in its unit) for the mapping holding p; -1 without it. */
static inline long kernel_smaps_value(const void *p, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	unsigned long start, end;
	size_t flen = strlen(field);
	bool inside = false;
	long v = -1;
	char line[4096];

	if (!f)
		return -1;
	while (v < 0 && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			inside = start <= (uintptr_t)p && (uintptr_t)p < end;
		else if (inside && !strncmp(line, field, flen) && line[flen] == ':')
			sscanf(line + flen + 1, "%ld", &v);
	}
	fclose(f);
	return v;
}

/* Whether the mapping holding p has a THP of size bytes now. */
static inline bool kernel_thp_present(const void *p, unsigned long size)
{
	return kernel_smaps_value(p, "AnonHugePages") >= (long)(size >> 10);
}

/* Whether a fault in the mapping holding p would get a THP (yes on a kernel
 * too old to say). */
static inline bool kernel_thp_eligible(const void *p)
{
	return kernel_smaps_value(p, "THPeligible") != 0;
}

/* The machine's THP settings, for a skip's reason. */
static inline const char *kernel_thp_settings(void)
{
	static char buf[160];
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf), "transparent_hugepage/enabled: ");
	if (!f || !fgets(buf + n, (int)(sizeof(buf) - n), f))
		snprintf(buf + n, sizeof(buf) - n, "unknown");
	if (f)
		fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) > 0) {
		n = strlen(buf);
		snprintf(buf + n, sizeof(buf) - n, "; disabled for this process (PR_SET_THP_DISABLE)");
	}
	return buf;
}

#endif
