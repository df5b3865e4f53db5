/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>

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

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[512];
	int saved_errno = errno;
	va_list ap;
	int n;

	if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&log_syslog, memory_order_acquire)) {
		va_start(ap, fmt);
		vsyslog(syslog_priorities[level], fmt, ap);
		va_end(ap);
		errno = saved_errno;
		return;
	}
	n = snprintf(line, sizeof(line), "%s: %s: ", program_invocation_short_name,
		     level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One fputs per line keeps lines from concurrent threads whole. */
	fprintf(stderr, "%s\n", line);
	errno = saved_errno;
}
