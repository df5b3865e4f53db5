/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LOG_H
#define ZDEV_LOG_H

enum zdev_log_level {
	ZDEV_LOG_ERROR = 0,
	ZDEV_LOG_WARN,
	ZDEV_LOG_INFO,
	ZDEV_LOG_DEBUG,
};

/* Messages above the threshold are dropped; the default is ZDEV_LOG_WARN. */
void zdev_log_set_level(enum zdev_log_level level);
enum zdev_log_level zdev_log_get_level(void);

/* Writes one line to stderr, prefixed with the program name and the level. */
void zdev_log(enum zdev_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define zdev_err(...)   zdev_log(ZDEV_LOG_ERROR, __VA_ARGS__)
#define zdev_warn(...)  zdev_log(ZDEV_LOG_WARN, __VA_ARGS__)
#define zdev_info(...)  zdev_log(ZDEV_LOG_INFO, __VA_ARGS__)
#define zdev_dbg(...)   zdev_log(ZDEV_LOG_DEBUG, __VA_ARGS__)

#endif
