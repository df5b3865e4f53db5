/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_CLIENT_H
#define ZDEV_LIB_CLIENT_H

/* The process's connection to zdevd and its request/reply exchanges. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct session_handle;

/*
 * The process's connection to zdevd; device handles share it. It outlives
 * the zdevd it was made with: after zdevd is lost, a new session (a new
 * socket, handshake and uffd) starts on the same struct (session.h).
 */
struct client {
	pthread_mutex_t lock;	/* one exchange at a time; guards the session */
	int sock;		/* -1 between sessions */
	pid_t pid;		/* the process that connected */
	int refs;		/* under the library's sessions lock */
	uint64_t seq;
	uint32_t ndevices;
	uint8_t memory_type[ZDEV_MAX_DEVICES];	/* ZDEV_MEMORY_DEVICE_* */
	/* Read without the lock by the fork handlers. */
	_Atomic uint32_t features;
	pid_t daemon_pid;
	uint64_t session;	/* 1 for the first handshake, one more each later one */
	bool broken;		/* the session is over: its zdevd or connection is gone */
	uint64_t next_try_ns;	/* no new session before (CLOCK_MONOTONIC) */
	struct session_handle *handles;	/* the open ones, which a new session reopens */
	char path[108];
};

/*
 * The connection, made on first use (path NULL: the default socket), one
 * more reference to it in *out (its session may be over: session_lock
 * renews it). 0; -ENOMEM; else the -errno of the connect or the handshake,
 * or the error status zdevd answered the handshake with (-EPROTO: an answer
 * of the wrong type).
 */
int client_get(const char *path, struct client **out);
/*
 * A new session on c, whose last one is over (caller holds c->lock, or has
 * c to itself): connects to c->path, the handshake (forked: that of a fork
 * child), crash survival. 0, or the -errno of client_get; c->broken on
 * failure.
 */
int client_connect(struct client *c, bool forked);
/* Drops a reference from client_get; the last closes the connection. */
void client_put(struct client *c);

/*
 * One request and its reply (caller holds c->lock), serving what zdevd asks
 * of us in between. The type of the message that ended the exchange
 * (ZMSG_REPLY, or a request's own answer such as ZMSG_STATS_OK), or -errno:
 * -ENODEV when the session is over (zdevd died, or the connection broke
 * after the request left: whatever zdevd did of it, the rescue has undone
 * or will), -ENOTCONN when the connection had broken before the request
 * could leave (zdevd never saw it), -EPROTO when the answer is not to this
 * request, else the send's or receive's. Both of the first set c->broken.
 */
int client_call(struct client *c, union zmsg *req, union zmsg *rep, int fd);
/* The same; *rep_fd is the fd the REPLY carried (the caller's to close), or
 * -1, also on every error. */
int client_call_fd(struct client *c, union zmsg *req, union zmsg *rep, int fd, int *rep_fd);

/* pthread_atfork prepare: notes the parent's pid for the child's handshake;
 * without fork events, brings every device page home and keeps pages from
 * going out until client_atfork_parent (or the child's handler). */
void client_atfork_prepare(void);
void client_atfork_parent(void);
/* pthread_atfork child: drops the parent's connection and claims the uffd
 * the fork brought, starting the child's own rescue agent. */
void client_atfork_child(void);

/* The process's uffd serves kernel-mode faults (false before it has one). */
bool client_kernel_faults(void);

#endif
