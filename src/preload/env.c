/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preload/env.h"

extern char **environ;

/* The value of name in environ, or NULL. */
static const char *env_get(const char *name)
{
	const size_t n = strlen(name);

	for (char **p = environ; p && *p; p++)
		if (!strncmp(*p, name, n) && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

/* A decimal number with an optional K, M or G: true when it parsed. */
static bool parse_u64(const char *s, uint64_t *out, bool sizes)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (sizes && *s) {
		unsigned int shift = *s == 'K' || *s == 'k' ? 10 : *s == 'M' || *s == 'm' ? 20
				   : *s == 'G' || *s == 'g' ? 30 : 0;

		if (!shift || v > UINT64_MAX >> shift)
			return false;
		v <<= shift;
		s++;
	}
	if (*s)
		return false;
	*out = v;
	return true;
}

static void copy_value(char *dst, size_t len, const char *v)
{
	size_t n = strlen(v);

	if (n >= len)
		n = len - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static bool read_policy(struct env *e, const char *v)
{
	if (!strcmp(v, "none"))
		e->policy = POLICY_NONE;
	else if (!strcmp(v, "evict"))
		e->policy = POLICY_EVICT;
	else if (!strcmp(v, "stress"))
		e->policy = POLICY_STRESS;
	else
		return false;
	return true;
}

/* Reads one numeric variable: false when set but not a number. */
static bool read_number(const char *name, uint64_t *out, bool sizes, uint64_t max)
{
	const char *v = env_get(name);
	uint64_t n;

	if (!v)
		return true;
	if (!parse_u64(v, &n, sizes) || n > max)
		return false;
	*out = n;
	return true;
}

static uint64_t made_up_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40)) | 1;
}

void env_read(struct env *e, const char **bad)
{
	uint64_t idle = 1000, rate = 200, device = 0, excl = 1;
	const char *v;

	*e = (struct env){ .policy = POLICY_NONE, .min_bytes = 1ul << 20 };
	*bad = NULL;
	if ((v = env_get("ZDEV_SOCKET")))
		copy_value(e->socket, sizeof(e->socket), v);
	if ((v = env_get("ZDEV_POLICY")) && !read_policy(e, v))
		*bad = "ZDEV_POLICY";
	if (!read_number("ZDEV_MIN_BYTES", &e->min_bytes, true, UINT64_MAX))
		*bad = "ZDEV_MIN_BYTES";
	if (!read_number("ZDEV_IDLE_MS", &idle, false, 3600000))
		*bad = "ZDEV_IDLE_MS";
	if (!read_number("ZDEV_RATE", &rate, false, 100000) || !rate)
		*bad = "ZDEV_RATE";
	if (!read_number("ZDEV_STRESS_EXCLUSIVE", &excl, false, 1))
		*bad = "ZDEV_STRESS_EXCLUSIVE";
	if (!read_number("ZDEV_DEVICE", &device, false, 7))
		*bad = "ZDEV_DEVICE";
	if ((v = env_get("ZDEV_SEED"))) {
		e->seed_given = parse_u64(v, &e->seed, false);
		if (!e->seed_given)
			*bad = "ZDEV_SEED";
	}
	if (!e->seed_given)
		e->seed = made_up_seed();
	e->idle_ms = (unsigned int)idle;
	e->rate = rate ? (unsigned int)rate : 200;
	e->exclusive = excl;
	e->device = (unsigned int)device;
	e->require = (v = env_get("ZDEV_REQUIRE")) && !strcmp(v, "1");
	if ((v = env_get("ZDEV_STATS")) && *v && strcmp(v, "0"))
		copy_value(e->stats, sizeof(e->stats), v);
	e->stats_json = (v = env_get("ZDEV_STATS_FORMAT")) && !strcmp(v, "json");
	e->dmirror = true;
	if ((v = env_get("ZDEV_DMIRROR"))) {
		if (strcmp(v, "0") && strcmp(v, "1"))
			*bad = "ZDEV_DMIRROR";
		else
			e->dmirror = !strcmp(v, "1");
	}
	if ((v = env_get("ZDEV_STATS_DIR")))
		copy_value(e->stats_dir, sizeof(e->stats_dir), v);
}

const char *env_policy_name(enum env_policy p)
{
	return p == POLICY_STRESS ? "stress" : p == POLICY_EVICT ? "evict" : "none";
}
