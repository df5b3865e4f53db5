/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static _Atomic int log_threshold = LOGL_WARN;
static _Atomic bool log_syslog;

static const char *const level_names[] = {
	[LOGL_ERROR] = "error",
	[LOGL_WARN] = "warning",
	[LOGL_INFO] = "info",
	[LOGL_DEBUG] = "debug",
};

static const int syslog_priorities[] = {
	[LOGL_ERROR] = LOG_ERR,
	[LOGL_WARN] = LOG_WARNING,
	[LOGL_INFO] = LOG_INFO,
	[LOGL_DEBUG] = LOG_DEBUG,
};

void log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	atomic_store_explicit(&log_syslog, true, memory_order_release);
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_threshold, level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	if (atomic_load_explicit(&log_syslog, memory_order_acquire)) {
		vsyslog(syslog_priorities[level], fmt, ap);
		return;
	}
	n = snprintf(line, sizeof(line), "%s: %s: ", program_invocation_short_name,
		     level_names[level]);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* One fputs per line keeps lines from concurrent threads whole. */
	fprintf(stderr, "%s\n", line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

/* The client lines' budget: the second its interval began, the lines said
 * in it, and those left out since the last said. */
static struct {
	_Atomic uint64_t since_s;
	atomic_uint said, left_out;
} client_budget;

static uint64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

void log_client(enum log_level level, const char *fmt, ...)
{
	uint64_t now = now_s(), since;
	int saved_errno = errno;
	unsigned int left_out;
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
		return;
	/* Relaxed throughout: a line more or less at an interval's edge is
	 * of no consequence, and the counts themselves stay exact. */
	since = atomic_load_explicit(&client_budget.since_s, memory_order_relaxed);
	if (now - since >= LOG_CLIENT_INTERVAL_S &&
	    atomic_compare_exchange_strong_explicit(&client_budget.since_s, &since, now,
						    memory_order_relaxed, memory_order_relaxed))
		atomic_store_explicit(&client_budget.said, 0, memory_order_relaxed);
	if (atomic_fetch_add_explicit(&client_budget.said, 1, memory_order_relaxed) >=
	    LOG_CLIENT_BURST) {
		atomic_fetch_add_explicit(&client_budget.left_out, 1, memory_order_relaxed);
		errno = saved_errno;
		return;
	}
	left_out = atomic_exchange_explicit(&client_budget.left_out, 0, memory_order_relaxed);
	if (left_out)
		log_msg(level, "%u more lines about clients were left out (at most %d every %d s)",
			left_out, LOG_CLIENT_BURST, LOG_CLIENT_INTERVAL_S);
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	errno = saved_errno;
}
