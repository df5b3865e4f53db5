/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LOG_H
#define ZDEV_LOG_H

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Messages above the threshold are dropped; the default is LOGL_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* From now on, messages go to syslog (facility LOG_DAEMON, tagged with
 * ident and the pid) instead of stderr: for a daemon that has detached. */
void log_to_syslog(const char *ident);

/* Writes one line to stderr, prefixed with the program name and the level,
 * or to syslog after log_to_syslog(). */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * For what a client can make zdevd say at will, a line per connection it
 * opens (a malformed message, a refusal): at most LOG_CLIENT_BURST such
 * lines every LOG_CLIENT_INTERVAL_S seconds; the next line after a silent
 * stretch first says how many were left out.
 */
#define LOG_CLIENT_BURST 20
#define LOG_CLIENT_INTERVAL_S 5
void log_client(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_dbg(...)   log_msg(LOGL_DEBUG, __VA_ARGS__)
#define log_client_warn(...) log_client(LOGL_WARN, __VA_ARGS__)

#endif
