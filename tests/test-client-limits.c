/* SPDX-License-Identifier: MIT */
/*
 * Per-client limits (zdevd(8), docs/errors.md): device memory, registered bytes
 * and open handles. Passing one is an error to that client only: nothing is
 * lost, and another client is served as before. Past its pending replies a
 * client is not read until it reads them, and then gets every one.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "page.h"
#include "proto.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define MIB (1ul << 20)
#define MEMORY_LIMIT_PAGES 256		/* --client-memory 1M */
#define REGISTERED_LIMIT (8 * MIB)	/* --client-registered 8M */
#define HANDLES_LIMIT 2			/* --client-handles 2 */
#define PENDING_LIMIT 8			/* --client-pending 8 */
#define PENDING_SENT 200		/* requests sent before reading a reply */

static struct zdevd_instance zd;

/* size bytes, 2 MiB-aligned so that registration windows are exact. */
static char *map_aligned(size_t size, char **base)
{
	*base = mmap(NULL, size + 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	ck_assert_ptr_ne(*base, MAP_FAILED);
	return (char *)(((uintptr_t)*base + 2 * MIB - 1) & ~(2 * MIB - 1));
}

static void fill(char *p, size_t npages, unsigned int seed)
{
	for (size_t i = 0; i < npages; i++)
		memset(p + i * PG_SIZE, (int)((seed + i) & 0xff), PG_SIZE);
}

static void assert_filled(const char *p, size_t npages, unsigned int seed)
{
	for (size_t i = 0; i < npages; i++)
		for (size_t b = 0; b < PG_SIZE; b += 512)
			ck_assert_msg((unsigned char)p[i * PG_SIZE + b] == ((seed + i) & 0xff),
				      "page %zu byte %zu lost", i, b);
}

/* Past its device memory, a client moves what fits and keeps every byte. */
START_TEST(device_memory_limit)
{
	const size_t npages = 2 * MEMORY_LIMIT_PAGES;
	struct zdev_result res = { 0 };
	struct zdev_stats st = { .size = sizeof(st) };
	struct zdev *d;
	char *base, *p = map_aligned(npages * PG_SIZE, &base);
	int status;
	pid_t pid;

	ck_assert_int_eq(madvise(p, npages * PG_SIZE, MADV_NOHUGEPAGE), 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill(p, npages, 1);
	ck_assert_int_eq(zdev_migrate_to_device(d, p, npages, &res), -ENOENT);
	ck_assert_uint_eq(res.cpages, MEMORY_LIMIT_PAGES);
	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	ck_assert_uint_eq(st.device_pages, MEMORY_LIMIT_PAGES);
	/* full: nothing more moves */
	ck_assert_int_eq(zdev_migrate_to_device(d, p + (npages - 1) * PG_SIZE, 1, &res), -ENOMEM);

	/* another client is not held to this one's use */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct zdev *cd;
		char *cbase, *cp;
		struct zdev_result cres = { 0 };

		/* the pages shared with the parent would count as the
		 * child's own */
		munmap(base, npages * PG_SIZE + 2 * MIB);
		cp = map_aligned(64 * PG_SIZE, &cbase);
		fill(cp, 64, 9);
		if (zdev_open(NULL, 0, &cd) || zdev_migrate_to_device(cd, cp, 64, &cres) ||
		    cres.cpages != 64)
			_exit(1);
		for (size_t i = 0; i < 64; i++)
			if ((unsigned char)cp[i * PG_SIZE] != ((9 + i) & 0xff))
				_exit(2);
		_exit(zdev_close(cd) ? 3 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "other client: status %#x",
		      status);

	assert_filled(p, npages, 1);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(base, npages * PG_SIZE + 2 * MIB);
}
END_TEST

/* Registered bytes: a range past the limit is refused before anything
 * moves; memory unmapped since no longer counts. */
START_TEST(registered_bytes_limit)
{
	struct zdev_result res = { 0 };
	struct zdev *d;
	char *base, *big = map_aligned(2 * REGISTERED_LIMIT, &base), *base2, *small;
	char *out = malloc(2 * REGISTERED_LIMIT);
	uint8_t snap[4];

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(zdev_open(NULL, 1, &d), 0);
	fill(big, 4, 2);
	ck_assert_int_eq(zdev_migrate_to_device(d, big, 2 * REGISTERED_LIMIT / PG_SIZE, &res),
			 -EDQUOT);
	ck_assert_int_eq(zdev_snapshot(d, big, 4, snap, &res), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(snap[i] & 0xf0, 0);	/* nothing moved */
	ck_assert_int_eq(zdev_read(d, big, 2 * REGISTERED_LIMIT / PG_SIZE, out, &res), -EDQUOT);

	/* 6 MiB fits; 6 more do not while the first are mapped... */
	ck_assert_int_eq(zdev_read(d, big, 6 * MIB / PG_SIZE, out, &res), 0);
	small = map_aligned(6 * MIB, &base2);
	ck_assert_int_eq(zdev_read(d, small, 6 * MIB / PG_SIZE, out, &res), -EDQUOT);
	ck_assert_int_eq(zdev_read(d, big, 6 * MIB / PG_SIZE, out, &res), 0);
	/* ...and do once they are gone */
	ck_assert_int_eq(munmap(base, 2 * REGISTERED_LIMIT + 2 * MIB), 0);
	ck_assert_int_eq(zdev_read(d, small, 6 * MIB / PG_SIZE, out, &res), 0);
	ck_assert_uint_eq(res.cpages, 6 * MIB / PG_SIZE);
	free(out);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(base2, 6 * MIB + 2 * MIB);
}
END_TEST

/* Handles: one past the limit is refused; closing one of two handles on a
 * device leaves its pages there. */
START_TEST(handles_limit)
{
	struct zdev *a, *b, *c;
	struct zdev_result res = { 0 };
	char *base, *p = map_aligned(16 * PG_SIZE, &base);
	uint8_t snap[16];

	ck_assert_int_eq(zdev_open(NULL, 0, &a), 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &b), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &c), -EMFILE);
	fill(p, 16, 3);
	ck_assert_int_eq(zdev_migrate_to_device(a, p, 16, &res), 0);
	ck_assert_int_eq(zdev_close(b), 0);
	ck_assert_int_eq(zdev_snapshot(a, p, 16, snap, &res), 0);
	for (int i = 0; i < 16; i++)
		ck_assert_uint_eq(snap[i], ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_int_eq(zdev_open(NULL, 1, &c), 0);
	ck_assert_int_eq(zdev_close(c), 0);
	ck_assert_int_eq(zdev_close(a), 0);
	assert_filled(p, 16, 3);
	munmap(base, 16 * PG_SIZE + 2 * MIB);
}
END_TEST

/* Another client, meanwhile: its pages go to the device and back. */
static void assert_other_client_served(void)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct zdev_result res = { 0 };
		struct zdev *d;
		char *base, *p = map_aligned(16 * PG_SIZE, &base);

		fill(p, 16, 5);
		if (zdev_open(NULL, 0, &d) || zdev_migrate_to_device(d, p, 16, &res) ||
		    zdev_migrate_to_system(d, p, 16, &res))
			_exit(1);
		for (size_t i = 0; i < 16; i++)
			if ((unsigned char)p[i * PG_SIZE] != ((5 + i) & 0xff))
				_exit(2);
		_exit(zdev_close(d) ? 3 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "other client: status %#x",
		      status);
}

/*
 * A client that sends requests and reads no reply: zdevd answers up to
 * --client-pending of them and then stops reading the connection, so the
 * rest wait in the socket; others are served meanwhile; once the client
 * reads, it gets a reply to every request, in order.
 */
START_TEST(pending_limit)
{
	struct timeval patience = { .tv_sec = 10 };
	unsigned int sent = 0, early = 0, got = 0;
	int sock = zmsg_connect(zd.socket_path);
	union zmsg m;

	ck_assert_int_ge(sock, 0);
	ck_assert_int_eq(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience)), 0);
	/* STATUS needs no handshake. Sends block once the socket is full:
	 * then zdevd has stopped reading. */
	while (sent < PENDING_SENT) {
		zmsg_init(&m, ZMSG_STATUS, sent + 1);
		if (send(sock, &m, m.hdr.size, MSG_DONTWAIT) != m.hdr.size) {
			ck_assert_int_eq(errno, EAGAIN);
			break;
		}
		sent++;
	}
	ck_assert_uint_gt(sent, PENDING_LIMIT);
	usleep(200000);
	assert_other_client_served();

	/* What zdevd answered before we read: no more than the limit. */
	while (recv(sock, &m, sizeof(m), MSG_DONTWAIT) > 0) {
		ck_assert_uint_eq(m.hdr.type, ZMSG_STATUS_OK);
		ck_assert_uint_eq(m.hdr.seq, ++got);
		ck_assert_int_eq(m.status_ok.status, 0);
	}
	early = got;
	ck_assert_msg(early >= 1 && early <= PENDING_LIMIT,
		      "%u replies came before the client read any (limit %d)", early, PENDING_LIMIT);
	ck_assert_msg(early < sent, "every request was answered before the client read a reply");
	/* Reading, it gets the rest, in order. */
	while (got < sent) {
		ssize_t n = recv(sock, &m, sizeof(m), 0);

		ck_assert_msg(n > 0, "reply %u of %u: %s", got + 1, sent,
			      n < 0 ? strerror(errno) : "connection closed");
		ck_assert_uint_eq(m.hdr.type, ZMSG_STATUS_OK);
		ck_assert_uint_eq(m.hdr.seq, ++got);
	}
	close(sock);
}
END_TEST

static Suite *limits_suite(void)
{
	Suite *s = suite_create("client-limits");

	check_add_case(s, "device_memory_limit", device_memory_limit, NULL, NULL, 0);
	check_add_case(s, "registered_bytes_limit", registered_bytes_limit, NULL, NULL, 0);
	check_add_case(s, "handles_limit", handles_limit, NULL, NULL, 0);
	check_add_case(s, "pending_limit", pending_limit, NULL, NULL, 0);
	return s;
}

int main(void)
{
	static const char *const args[] = { "--client-memory", "1M", "--client-registered", "8M",
					    "--client-handles", "2", "--client-pending", "8", NULL };

	return run_suite_with_zdevd(&zd, args, limits_suite());
}
