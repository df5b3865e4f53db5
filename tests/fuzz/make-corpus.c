/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzz targets' seed corpus (make fuzz-corpus) from the
 * protocol's own encoder, so that it follows the protocol when it changes:
 *
 *   DIR/proto/NAME    one datagram: every message type as zmsg_init() makes
 *                     it, and broken ones (truncated, too long, a bad magic,
 *                     type or size field)
 *   DIR/session/NAME  what a client sends over one connection, in
 *                     fuzz-session's framing (u16 length, u8 fd, bytes): the
 *                     handshake and every request, with the answers zdevd's
 *                     questions take, and broken ones (no handshake, a wrong
 *                     version or pid, a bad fd, bad ranges and counts,
 *                     answers out of turn, truncated and oversized messages)
 *
 * A zero where fuzz-session fills in what no input can know (a HELLO's pid,
 * an UFFD's proof address, the address and length of an answer to a ZAP or
 * an XMAP, a STORED's id) and addresses that are offsets in its arena.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "page.h"
#include "proto.h"

/* fuzz-session's table of fds to send */
enum { FD_NONE, FD_UFFD, FD_UFFD_USED, FD_FILE, FD_PIPE, FD_MEMFD };

#define MAX_INPUT 8192

struct input {
	uint8_t bytes[MAX_INPUT];
	size_t len;
};

static const char *dir;

static void die(const char *what)
{
	fprintf(stderr, "make-corpus: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_file(const char *sub, const char *name, const void *data, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		die(path);
}

/* ---- single datagrams ---- */

static void proto_seeds(void)
{
	union zmsg m;
	uint8_t buf[sizeof(m) + 16];
	char name[64];

	for (int t = 1; t < ZMSG_TYPE_END; t++) {
		zmsg_init(&m, (enum zmsg_type)t, (uint64_t)t);
		snprintf(name, sizeof(name), "%s", zmsg_type_name(t));
		write_file("proto", name, &m, m.hdr.size);
	}
	zmsg_init(&m, ZMSG_OPEN, 1);
	write_file("proto", "truncated-header", &m, sizeof(m.hdr) - 1);
	write_file("proto", "header-only", &m, sizeof(m.hdr));
	write_file("proto", "truncated-body", &m, m.hdr.size - 1);
	memset(buf, 0xa5, sizeof(buf));
	memcpy(buf, &m, m.hdr.size);
	write_file("proto", "too-long", buf, m.hdr.size + 8);
	write_file("proto", "longer-than-any", buf, sizeof(buf));
	m.hdr.size = 0xffff;
	write_file("proto", "huge-size-field", &m, sizeof(m.req));
	zmsg_init(&m, ZMSG_OPEN, 1);
	m.hdr.magic ^= 1;
	write_file("proto", "bad-magic", &m, sizeof(m.req));
	zmsg_init(&m, ZMSG_OPEN, 1);
	m.hdr.type = 0;
	write_file("proto", "type-zero", &m, sizeof(m.req));
	m.hdr.type = ZMSG_TYPE_END;
	write_file("proto", "type-past-end", &m, sizeof(m.req));
	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hdr.size = sizeof(m.req);
	write_file("proto", "size-of-another-type", &m, sizeof(m.req));
}

/* ---- sequences ---- */

static void put(struct input *in, const void *m, size_t len, unsigned int fd)
{
	if (in->len + 3 + len > sizeof(in->bytes)) {
		errno = E2BIG;
		die("a seed");
	}
	in->bytes[in->len++] = (uint8_t)(len & 0xff);
	in->bytes[in->len++] = (uint8_t)(len >> 8);
	in->bytes[in->len++] = (uint8_t)fd;
	memcpy(in->bytes + in->len, m, len);
	in->len += len;
}

static void put_msg(struct input *in, const union zmsg *m, unsigned int fd)
{
	put(in, m, m->hdr.size, fd);
}

static uint64_t seq;

static void hello(struct input *in, uint32_t version, uint32_t flags)
{
	union zmsg m;

	zmsg_init(&m, ZMSG_HELLO, ++seq);
	m.hello.version = version;
	m.hello.flags = flags;
	put_msg(in, &m, FD_NONE);
}

static void req(struct input *in, enum zmsg_type type, uint32_t device, uint64_t addr,
		uint64_t npages, uint64_t buf, uint64_t arg, unsigned int fd)
{
	union zmsg m;

	zmsg_init(&m, type, ++seq);
	m.req.device = device;
	m.req.addr = addr;
	m.req.npages = npages;
	m.req.buf = buf;
	m.req.arg = arg;
	put_msg(in, &m, fd);
}

/* The answer to whatever zdevd asked last (fuzz-session fills it in). */
static void answer(struct input *in, enum zmsg_type type, int32_t status)
{
	union zmsg m;

	zmsg_init(&m, type, 0);
	if (type == ZMSG_ZAPPED || type == ZMSG_ANONYMIZED)
		m.zap.status = status;
	else if (type == ZMSG_XMAP_DONE)
		m.xmap.status = status;
	else if (type == ZMSG_STORED)
		m.store.status = status;
	put_msg(in, &m, FD_NONE);
}

static void handshake(struct input *in)
{
	hello(in, ZDEV_PROTO_VERSION, 0);
	req(in, ZMSG_UFFD, 0, 0, 0, 0, 0, FD_UFFD);
}

/* Offsets in fuzz-session's 4 MiB arena. */
#define AT(page) ((uint64_t)(page) * PG_SIZE)
#define BUF AT(128)		/* device reads and writes go through here */
#define XDIR AT(256)		/* an exclusive-page map directory of zeros */
#define WINDOW AT(512)		/* the second 2 MiB window */

static void write_seq(const char *name, const struct input *in)
{
	write_file("session", name, in->bytes, in->len);
}

/* A migration of pages to dev, with the answers its questions take: on
 * device 0, device-private, a new store, then a zap of the range; device
 * 1's coherent pages stay where they are. */
static void migrate(struct input *in, uint32_t dev, uint64_t addr, uint64_t npages)
{
	req(in, ZMSG_MIGRATE_TO_DEV, dev, addr, npages, 0, 0, FD_NONE);
	if (dev == 0) {
		answer(in, ZMSG_STORED, 0);
		answer(in, ZMSG_ZAPPED, 0);
	}
}

static void session_seeds(void)
{
	static const struct {
		const char *name;
		enum zmsg_type type;
	} plain[] = {
		{ "stats", ZMSG_STATS }, { "status", ZMSG_STATUS },
		{ "device-status", ZMSG_DEVICE_STATUS }, { "clients", ZMSG_CLIENTS },
		{ "release", ZMSG_RELEASE }, { "set-flags", ZMSG_SET_FLAGS },
		{ "fork-prepare", ZMSG_FORK_PREPARE }, { "xmoved", ZMSG_XMOVED },
		{ "close", ZMSG_CLOSE },
	};
	static const unsigned int bad_fds[] = { FD_NONE, FD_UFFD_USED, FD_FILE, FD_PIPE, FD_MEMFD };
	struct input in;
	char name[64];

	/* Each request alone: zdevctl's need no handshake, the others do. */
	for (int t = 1; t < ZMSG_TYPE_END; t++) {
		union zmsg m;

		in.len = 0;
		zmsg_init(&m, (enum zmsg_type)t, 1);
		put_msg(&in, &m, FD_NONE);
		snprintf(name, sizeof(name), "alone-%s", zmsg_type_name(t));
		write_seq(name, &in);
	}

	in.len = 0;
	handshake(&in);
	write_seq("handshake", &in);

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		for (uint32_t dev = 0; dev < 2; dev++) {
			in.len = 0;
			handshake(&in);
			req(&in, ZMSG_OPEN, dev, 0, 0, 0, 0, FD_NONE);
			req(&in, plain[i].type, dev, AT(16), 4, 0,
			    plain[i].type == ZMSG_SET_FLAGS, FD_NONE);
			snprintf(name, sizeof(name), "%s-dev%u", plain[i].name, dev);
			write_seq(name, &in);
		}
	}

	for (uint32_t dev = 0; dev < 2; dev++) {
		in.len = 0;
		handshake(&in);
		req(&in, ZMSG_OPEN, dev, 0, 0, 0, 0, FD_NONE);
		migrate(&in, dev, AT(1), 16);
		req(&in, ZMSG_SNAPSHOT, dev, AT(1), 32, BUF, 0, FD_NONE);
		req(&in, ZMSG_READ, dev, AT(1), 16, BUF, 0, FD_NONE);
		req(&in, ZMSG_WRITE, dev, AT(4), 8, BUF, 0, FD_NONE);
		req(&in, ZMSG_MIGRATE_TO_SYS, dev, AT(1), 8, 0, 0, FD_NONE);
		req(&in, ZMSG_STATS, dev, 0, 0, 0, 0, FD_NONE);
		req(&in, ZMSG_CLOSE, dev, 0, 0, 0, 0, FD_NONE);
		snprintf(name, sizeof(name), "migrate-dev%u", dev);
		write_seq(name, &in);

		/* A whole 2 MiB window: a device THP. */
		in.len = 0;
		handshake(&in);
		req(&in, ZMSG_OPEN, dev, 0, 0, 0, 0, FD_NONE);
		migrate(&in, dev, WINDOW, 512);
		req(&in, ZMSG_MIGRATE_TO_SYS, dev, WINDOW + AT(100), 1, 0, 0, FD_NONE);
		req(&in, ZMSG_RESCUE, dev, 0, 0, 0, RESCUE_TABLE, FD_NONE);
		snprintf(name, sizeof(name), "thp-dev%u", dev);
		write_seq(name, &in);

		in.len = 0;
		handshake(&in);
		req(&in, ZMSG_OPEN, dev, 0, 0, 0, 0, FD_NONE);
		req(&in, ZMSG_EXCLUSIVE, dev, AT(32), 4, 0, XDIR, FD_NONE);
		answer(&in, ZMSG_XMAP_DONE, 0);
		req(&in, ZMSG_CHECK_EXCLUSIVE, dev, AT(32), 4, 0, XDIR, FD_NONE);
		req(&in, ZMSG_ATOMIC_ADD, dev, AT(33) + 8, 1, XDIR, 5, FD_NONE);
		answer(&in, ZMSG_XMAP_DONE, 0);
		req(&in, ZMSG_READ, dev, AT(32), 4, BUF, 0, FD_NONE);
		answer(&in, ZMSG_XMAP_DONE, 0);
		req(&in, ZMSG_EXCLUSIVE_HELD, dev, AT(40), 2, 0, 0, FD_NONE);
		answer(&in, ZMSG_STORED, 0);
		answer(&in, ZMSG_ZAPPED, 0);
		snprintf(name, sizeof(name), "exclusive-dev%u", dev);
		write_seq(name, &in);
	}

	/* Broken: the handshake. */
	in.len = 0;
	hello(&in, ZDEV_PROTO_VERSION - 1, 0);
	write_seq("hello-old-version", &in);
	in.len = 0;
	{
		union zmsg m;

		zmsg_init(&m, ZMSG_HELLO, 1);
		m.hello.version = ZDEV_PROTO_VERSION;
		m.hello.pid = 1;
		put_msg(&in, &m, FD_NONE);
	}
	write_seq("hello-another-pid", &in);
	in.len = 0;
	hello(&in, ZDEV_PROTO_VERSION, ZHELLO_AUX);
	write_seq("hello-aux-unknown", &in);
	in.len = 0;
	hello(&in, ZDEV_PROTO_VERSION, ZHELLO_FORKED);
	req(&in, ZMSG_UFFD, 0, 0, 0, 0, 0, FD_NONE);
	write_seq("hello-forked", &in);
	in.len = 0;
	hello(&in, ZDEV_PROTO_VERSION, 0);
	hello(&in, ZDEV_PROTO_VERSION, 0);
	write_seq("hello-twice", &in);
	in.len = 0;
	req(&in, ZMSG_UFFD, 0, 0, 0, 0, 0, FD_UFFD);
	write_seq("uffd-before-hello", &in);
	for (size_t i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
		in.len = 0;
		hello(&in, ZDEV_PROTO_VERSION, 0);
		req(&in, ZMSG_UFFD, 0, 0, 0, 0, 0, bad_fds[i]);
		req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
		snprintf(name, sizeof(name), "uffd-fd-%u", bad_fds[i]);
		write_seq(name, &in);
	}
	in.len = 0;
	hello(&in, ZDEV_PROTO_VERSION, 0);
	req(&in, ZMSG_UFFD, 0, AT(3), 0, 0, 0, FD_UFFD);
	req(&in, ZMSG_UFFD, 0, 0, 0, 0, 0, FD_UFFD);
	write_seq("uffd-wrong-proof", &in);

	/* Broken: requests. */
	{
		static const struct {
			const char *name;
			uint32_t dev;
			uint64_t addr, npages;
		} bad[] = {
			{ "no-pages", 0, AT(1), 0 },
			{ "unaligned", 0, AT(1) + 1, 1 },
			{ "huge-count", 0, AT(1), 1ull << 50 },
			{ "wrapping", 0, ~0ull & ~(PG_SIZE - 1), 2 },
			{ "kernel-address", 0, 0xffff800000000000ull, 1 },
			{ "past-57-bits", 0, 1ull << 57, 1 },
			{ "no-device", 7, AT(1), 1 },
			{ "device-out-of-range", 1000, AT(1), 1 },
		};
		static const enum zmsg_type types[] = {
			ZMSG_MIGRATE_TO_DEV, ZMSG_MIGRATE_TO_SYS, ZMSG_READ, ZMSG_WRITE,
			ZMSG_SNAPSHOT, ZMSG_EXCLUSIVE, ZMSG_CHECK_EXCLUSIVE, ZMSG_ATOMIC_ADD,
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			in.len = 0;
			handshake(&in);
			req(&in, ZMSG_OPEN, bad[i].dev, 0, 0, 0, 0, FD_NONE);
			for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
				req(&in, types[t], bad[i].dev, bad[i].addr, bad[i].npages, BUF, XDIR,
				    FD_NONE);
			snprintf(name, sizeof(name), "range-%s", bad[i].name);
			write_seq(name, &in);
		}
	}
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_MIGRATE_TO_DEV, 0, AT(1), 1, 0, 0, FD_NONE);
	write_seq("device-not-open", &in);
	in.len = 0;
	handshake(&in);
	for (int i = 0; i < 6; i++)
		req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	write_seq("too-many-handles", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	req(&in, ZMSG_SET_FLAGS, 0, 0, 0, 0, 2, FD_NONE);
	req(&in, ZMSG_RESCUE, 0, 0, 0, 0, 99, FD_NONE);
	req(&in, ZMSG_RESCUE, 0, 0, 0, 0, RESCUE_UFFD, FD_NONE);
	write_seq("bad-args", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	req(&in, ZMSG_SET_FLAGS, 0, 0, 0, 0, 1, FD_NONE);
	migrate(&in, 0, WINDOW, 512);
	write_seq("fail-alloc", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	migrate(&in, 0, AT(1), 1023);
	write_seq("beyond-client-limit", &in);

	/* Broken: answers. */
	in.len = 0;
	handshake(&in);
	answer(&in, ZMSG_ZAPPED, 0);
	write_seq("answer-out-of-turn", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	req(&in, ZMSG_MIGRATE_TO_DEV, 0, AT(1), 4, 0, 0, FD_NONE);
	answer(&in, ZMSG_STORED, 0);
	answer(&in, ZMSG_ZAPPED, -EINVAL);
	write_seq("zap-failed", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	req(&in, ZMSG_MIGRATE_TO_DEV, 0, AT(1), 4, 0, 0, FD_NONE);
	answer(&in, ZMSG_STORED, 0);
	req(&in, ZMSG_STATS, 0, 0, 0, 0, 0, FD_NONE);
	write_seq("request-instead-of-answer", &in);
	in.len = 0;
	handshake(&in);
	req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
	req(&in, ZMSG_EXCLUSIVE, 0, AT(32), 4, 0, XDIR, FD_NONE);
	answer(&in, ZMSG_XMAP_DONE, 1);
	write_seq("xmap-bad-status", &in);

	/* Regressions: inputs that found a bug once, replayed by every run. */
	in.len = 0;
	handshake(&in);
	write_seq("regress-exited-client-files", &in);
	in.len = 0;
	{
		union zmsg m;

		zmsg_init(&m, ZMSG_HELLO, 1);
		m.hello.version = ZDEV_PROTO_VERSION;
		put_msg(&in, &m, FD_MEMFD);
		write_seq("regress-hello-with-fd", &in);
		in.len = 0;
		req(&in, ZMSG_UFFD, 0, 0, 0, 0, 0, FD_UFFD);
		write_seq("regress-uffd-before-hello", &in);
		in.len = 0;
		handshake(&in);
		zmsg_init(&m, ZMSG_OPEN, 9);
		put(&in, &m, sizeof(m.req) - 1, FD_PIPE);
		write_seq("regress-bad-datagram-with-fd", &in);
		in.len = 0;
		handshake(&in);
		put(&in, &m, 0, FD_UFFD);
		write_seq("regress-empty-datagram-with-fd", &in);
		/* A coherent device's migration of a range the address space
		 * cannot hold, which zdevd's range check lets by. */
		in.len = 0;
		handshake(&in);
		req(&in, ZMSG_OPEN, 1, 0, 0, 0, 0, FD_NONE);
		req(&in, ZMSG_MIGRATE_TO_DEV, 1, 0x017a646576000000ull, 0x6d002000ull, 0, 0, FD_NONE);
		write_seq("regress-coherent-huge-range", &in);
		/* A check of exclusive access over terabytes, most of them
		 * unmapped, short of the held pages and then over them:
		 * zdevd read the mappings of every gigabyte in turn. */
		in.len = 0;
		handshake(&in);
		req(&in, ZMSG_OPEN, 0, 0, 0, 0, 0, FD_NONE);
		req(&in, ZMSG_EXCLUSIVE, 0, AT(32), 4, 0, XDIR, FD_NONE);
		answer(&in, ZMSG_XMAP_DONE, 0);
		req(&in, ZMSG_CHECK_EXCLUSIVE, 0, 0, 1ull << 33, 0, XDIR, FD_NONE);
		req(&in, ZMSG_CHECK_EXCLUSIVE, 0, 0, 1ull << 35, 0, XDIR, FD_NONE);
		write_seq("regress-check-exclusive-terabytes", &in);
	}

	/* Broken: the datagrams themselves. */
	{
		union zmsg m;
		uint8_t big[sizeof(m) + 64];

		in.len = 0;
		handshake(&in);
		zmsg_init(&m, ZMSG_OPEN, 9);
		put(&in, &m, sizeof(m.req) - 1, FD_NONE);
		write_seq("truncated-request", &in);
		in.len = 0;
		handshake(&in);
		memset(big, 0x41, sizeof(big));
		memcpy(big, &m, sizeof(m.req));
		put(&in, big, sizeof(big), FD_NONE);
		write_seq("oversized-request", &in);
		in.len = 0;
		handshake(&in);
		m.hdr.size = 0xffff;
		put(&in, &m, sizeof(m.req), FD_NONE);
		write_seq("huge-size-field", &in);
		in.len = 0;
		handshake(&in);
		put(&in, &m, 0, FD_NONE);
		write_seq("empty-datagram", &in);
		in.len = 0;
		handshake(&in);
		zmsg_init(&m, ZMSG_REPLY, 9);
		put_msg(&in, &m, FD_NONE);
		write_seq("reply-from-client", &in);
	}
}

int main(int argc, char **argv)
{
	char sub[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: make-corpus DIR\n");
		return 2;
	}
	dir = argv[1];
	mkdir(dir, 0755);
	snprintf(sub, sizeof(sub), "%s/proto", dir);
	mkdir(sub, 0755);
	snprintf(sub, sizeof(sub), "%s/session", dir);
	mkdir(sub, 0755);
	proto_seeds();
	session_seeds();
	return 0;
}
