/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_CLIENT_H
#define ZDEV_LIB_CLIENT_H

/* The process's connection to zdevd and its request/reply exchanges. */

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* The process's connection to zdevd; device handles share it. */
struct client {
	pthread_mutex_t lock;	/* one exchange at a time */
	int sock;
	pid_t pid;		/* the process that connected */
	int refs;		/* under the library's sessions lock */
	uint64_t seq;
	uint32_t ndevices;
	uint32_t features;
	pid_t daemon_pid;
	char path[108];
};

/* The connection, made on first use (path NULL: the default socket). */
int client_get(const char *path, struct client **out);
void client_put(struct client *c);

/* One request and its reply (caller holds c->lock); returns the reply type. */
int client_call(struct client *c, union zmsg *req, union zmsg *rep, int fd);
/* The same; *rep_fd is the fd the REPLY carried, or -1. */
int client_call_fd(struct client *c, union zmsg *req, union zmsg *rep, int fd, int *rep_fd);

void client_atfork_prepare(void);
void client_atfork_child(void);

#endif
