/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the protocol's decoder (src/proto.c). The input is one
 * datagram as a client would send it. zmsg_check() must accept exactly the
 * messages of a known type and its exact size, and zmsg_recv() must agree
 * with it for the same bytes received from a SOCK_SEQPACKET socket, whatever
 * their length.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int pair[2] = { -1, -1 };

static void fail(const char *what, int got, int want)
{
	fprintf(stderr, "fuzz-proto: %s: got %d, want %d\n", what, got, want);
	abort();
}

static void check_accepted(const uint8_t *data, size_t size, int type)
{
	struct zmsg_hdr h;
	union zmsg m;

	if (size < sizeof(h))
		fail("accepted less than a header", (int)size, (int)sizeof(h));
	memcpy(&h, data, sizeof(h));
	if (h.magic != ZDEV_PROTO_MAGIC || h.type != type || type <= 0 || type >= ZMSG_TYPE_END)
		fail("accepted a bad header", type, h.type);
	zmsg_init(&m, (enum zmsg_type)type, 0);
	if (m.hdr.size != size || h.size != size)
		fail("accepted the wrong size", (int)size, m.hdr.size);
	if (!strcmp(zmsg_type_name(type), "unknown"))
		fail("accepted a type without a name", type, 0);
}

/* The same bytes through a socket, as zdevd receives them. */
static void check_received(const uint8_t *data, size_t size, int decoded)
{
	union zmsg m;
	int fd, got;

	if (pair[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair))
		abort();
	/* An empty datagram reads as the end of the connection. */
	if (size == 0)
		return;
	if (send(pair[1], data, size, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)size)
		return;	/* too long for the socket: nobody could send it */
	got = zmsg_recv_flags(pair[0], &m, &fd, MSG_DONTWAIT);
	if (fd >= 0)
		fail("an fd from nowhere", fd, -1);
	if (size > sizeof(m)) {
		if (got != -EMSGSIZE)
			fail("a datagram longer than any message", got, -EMSGSIZE);
		return;
	}
	if (got != decoded)
		fail("zmsg_recv and zmsg_check disagree", got, decoded);
	if (got > 0 && memcmp(&m, data, size))
		fail("the message received is not the one sent", got, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int type = zmsg_check(data, size);

	if (type > 0)
		check_accepted(data, size, type);
	else if (type != -EBADMSG && type != -EPROTO && type != -EMSGSIZE)
		fail("an error zmsg_check may not return", type, -EPROTO);
	check_received(data, size, type);
	return 0;
}
