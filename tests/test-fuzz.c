/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing (docs/protocol.md, "Validation"): the protocol decoder against mutated
 * messages, zdevd against mutated datagrams from raw connections, and the
 * whole of libzdev against random sequences of calls checked by a model of
 * the memory they work on: whatever the calls, no byte changes unless a
 * write or the program changed it, and every device read sees the model.
 *
 * The seed is printed; ZDEV_FUZZ_SEED=<n> replays a run.
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "proto.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"


static struct zdevd_instance zd;
static uint64_t seed;

/* xorshift64*: small, fast, and the same sequence for the same seed. */
static uint64_t rnd(void)
{
	seed ^= seed >> 12;
	seed ^= seed << 25;
	seed ^= seed >> 27;
	return seed * 0x2545f4914f6cdd1dull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void pick_seed(void)
{
	const char *env = getenv("ZDEV_FUZZ_SEED");

	seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
	if (!seed)
		seed = 1;
	printf("fuzz seed %llu (ZDEV_FUZZ_SEED replays it)\n", (unsigned long long)seed);
}

/* ---- the decoder ---- */

/* A valid message of a random type, then a few random changes. */
static size_t mutated_message(union zmsg *m, uint8_t *buf, size_t cap)
{
	size_t len;

	zmsg_init(m, (enum zmsg_type)(1 + below(ZMSG_TYPE_END - 1)), rnd());
	len = m->hdr.size;
	memcpy(buf, m, len);
	for (uint64_t k = below(4); k > 0; k--) {
		switch (below(4)) {
		case 0:	/* a byte anywhere */
			buf[below(len)] = (uint8_t)rnd();
			break;
		case 1:	/* the length */
			len = below(cap + 1);
			break;
		case 2:	/* the type */
			((struct zmsg_hdr *)buf)->type = (uint16_t)rnd();
			break;
		default:	/* the size field */
			((struct zmsg_hdr *)buf)->size = (uint16_t)below(cap + 1);
		}
	}
	/* UNPLUG and PLUG are an administrator's, on every client's device:
	 * one still under way in zdevd would take the device from the
	 * legitimate client below at any moment (test-unplug stresses them).
	 * They ask for STATUS instead. */
	if (len >= sizeof(struct zmsg_hdr)) {
		struct zmsg_hdr *h = (struct zmsg_hdr *)buf;

		if (h->type == ZMSG_UNPLUG || h->type == ZMSG_PLUG)
			h->type = ZMSG_STATUS;
	}
	return len;
}

START_TEST(decoder_never_accepts_what_it_should_not)
{
	uint8_t buf[sizeof(union zmsg) + 64];
	union zmsg m;

	pick_seed();
	for (int i = 0; i < 200000; i++) {
		size_t len = mutated_message(&m, buf, sizeof(buf));
		struct zmsg_hdr h;
		int type = zmsg_check(buf, len);

		if (type < 0) {
			ck_assert_msg(type == -EBADMSG || type == -EPROTO || type == -EMSGSIZE,
				      "zmsg_check: unexpected %d", type);
			continue;
		}
		/* Accepted: a whole header, the magic, a known type, and
		 * exactly the size of that type. */
		ck_assert_uint_ge(len, sizeof(h));
		memcpy(&h, buf, sizeof(h));
		ck_assert_uint_eq(h.magic, ZDEV_PROTO_MAGIC);
		ck_assert_int_eq(type, h.type);
		ck_assert(type > 0 && type < ZMSG_TYPE_END);
		zmsg_init(&m, (enum zmsg_type)type, 0);
		ck_assert_uint_eq(len, m.hdr.size);
		ck_assert_uint_eq(h.size, len);
	}
}
END_TEST

/* ---- zdevd against mutated datagrams ---- */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_usec = 200000 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", zd.socket_path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* A legitimate client does its work while and after the garbage flows. */
static void legit_client_works(void)
{
	char *p = mmap(NULL, 16 * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zdev_result res = { 0 };
	struct zdev *d;

	ck_assert_ptr_ne(p, MAP_FAILED);
	memset(p, 0x5a, 16 * PG_SIZE);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	ck_assert_int_eq(zdev_migrate_to_device(d, p, 16, &res), 0);
	ck_assert_uint_eq(res.cpages, 16);
	for (size_t i = 0; i < 16 * PG_SIZE; i += 512)
		ck_assert_uint_eq((unsigned char)p[i], 0x5a);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, 16 * PG_SIZE);
}

START_TEST(daemon_survives_mutated_datagrams)
{
	uint8_t buf[sizeof(union zmsg) + 64];
	union zmsg m;

	pick_seed();
	for (int conn = 0; conn < 60; conn++) {
		int fd = raw_connect();

		/* half the connections first say a proper hello */
		if (conn & 1) {
			zmsg_init(&m, ZMSG_HELLO, 1);
			m.hello.version = ZDEV_PROTO_VERSION;
			m.hello.pid = getpid();
			ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
			recv(fd, buf, sizeof(buf), 0);
		}
		for (int i = 0; i < 50; i++) {
			size_t len = mutated_message(&m, buf, sizeof(buf));

			if (send(fd, buf, len, MSG_NOSIGNAL) < 0)
				break;	/* the daemon closed us: allowed */
			/* drain whatever the daemon says, without waiting long */
			recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		}
		close(fd);
		if (conn % 20 == 19)
			legit_client_works();
	}
	legit_client_works();
}
END_TEST

/* ---- libzdev against a model ---- */

#define ARENA_PAGES 256

struct arena {
	char *p;
	uint8_t *model;		/* the byte every page of the arena holds */
	uint8_t *readonly;	/* pages mprotect'ed PROT_READ */
	struct zdev *dev[2];
	uint8_t next_value;
};

static void cpu_fill(struct arena *a, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++) {
		if (a->readonly[i])
			continue;
		memset(a->p + i * PG_SIZE, a->next_value, PG_SIZE);
		a->model[i] = a->next_value;
	}
	a->next_value++;
}

static void check_page(const char *what, size_t i, const char *mem, uint8_t want)
{
	for (size_t b = 0; b < PG_SIZE; b += 256)
		if ((uint8_t)mem[b] != want)
			ck_abort_msg("%s: page %zu byte %zu = %#x, expected %#x (seed above)", what,
				     i, b, (uint8_t)mem[b], want);
}

/* At most n, the pages from p to the end of the mapping that holds it. */
static size_t pages_in_mapping(const char *p, size_t n)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long s, e;
	char line[512];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && (uintptr_t)p >= s && (uintptr_t)p < e) {
			if (n > (e - (uintptr_t)p) / PG_SIZE)
				n = (e - (uintptr_t)p) / PG_SIZE;
			break;
		}
	fclose(f);
	return n;
}

static void one_random_call(struct arena *a, char *buf)
{
	size_t first = below(ARENA_PAGES), n = 1 + below(ARENA_PAGES - first);
	unsigned int which = (unsigned int)below(2), op = (unsigned int)below(14);
	struct zdev *d = a->dev[which];
	struct zdev_result res = { 0 };
	int ret;

	if (getenv("ZDEV_FUZZ_TRACE"))
		fprintf(stderr, "op %u dev %u pages %zu+%zu\n", op, which, first, n);
	switch (op) {
	case 0:
	case 1:
		ret = zdev_migrate_to_device(d, a->p + first * PG_SIZE, n, &res);
		ck_assert_msg(ret == 0 || ret == -ENOENT, "migrate_to_device: %d", ret);
		break;
	case 2:
		ret = zdev_migrate_to_system(d, a->p + first * PG_SIZE, n, &res);
		ck_assert_msg(ret == 0, "migrate_to_system: %d", ret);
		break;
	case 3:
		ret = zdev_read(d, a->p + first * PG_SIZE, n, buf, &res);
		ck_assert_msg(ret == 0, "read: %d", ret);
		ck_assert_uint_eq(res.cpages, n);
		for (size_t i = 0; i < n; i++)
			check_page("device read", first + i, buf + i * PG_SIZE, a->model[first + i]);
		break;
	case 4: {
		bool any_ro = false;

		memset(buf, a->next_value, n * PG_SIZE);
		for (size_t i = first; i < first + n; i++)
			any_ro |= a->readonly[i];
		ret = zdev_write(d, a->p + first * PG_SIZE, n, buf, &res);
		ck_assert_msg(ret == (any_ro ? -EPERM : 0), "write: %d (read-only pages: %d)", ret,
			      any_ro);
		if (!ret)
			memset(a->model + first, a->next_value, n);
		a->next_value++;
		break;
	}
	case 5:
		cpu_fill(a, first, n);
		break;
	case 6:
		/* zapped: anonymous memory reads back zero */
		ck_assert_int_eq(madvise(a->p + first * PG_SIZE, n * PG_SIZE, MADV_DONTNEED), 0);
		memset(a->model + first, 0, n);
		break;
	case 7: {
		bool ro = below(2);

		ck_assert_int_eq(mprotect(a->p + first * PG_SIZE, n * PG_SIZE,
					  ro ? PROT_READ : PROT_READ | PROT_WRITE), 0);
		memset(a->readonly + first, ro, n);
		break;
	}
	case 9: {
		/* away and back: device pages move with the range. Within one
		 * mapping: a move of several that fails part way (the kernel
		 * may refuse some) leaves the model unknown. */
		char *away;

		n = pages_in_mapping(a->p + first * PG_SIZE, n);
		away = mmap(NULL, n * PG_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ck_assert_ptr_ne(away, MAP_FAILED);
		ck_assert_ptr_eq(mremap(a->p + first * PG_SIZE, n * PG_SIZE, n * PG_SIZE,
					MREMAP_MAYMOVE | MREMAP_FIXED, away), away);
		ck_assert_ptr_eq(mremap(away, n * PG_SIZE, n * PG_SIZE, MREMAP_MAYMOVE | MREMAP_FIXED,
					a->p + first * PG_SIZE), a->p + first * PG_SIZE);
		break;
	}
	case 11: {
		/* exclusive: the CPU's next touch of a page revokes it */
		bool any_ro = false;

		for (size_t i = first; i < first + n; i++)
			any_ro |= a->readonly[i];
		ret = zdev_make_exclusive(d, a->p + first * PG_SIZE, n, &res);
		ck_assert_msg(ret == (any_ro ? -EFAULT : 0), "make_exclusive: %d (read-only: %d)",
			      ret, any_ro);
		break;
	}
	case 12:
		ret = zdev_check_exclusive(d, a->p + first * PG_SIZE, n);
		ck_assert_msg(ret == 0 || ret == -EPERM, "check_exclusive: %d", ret);
		break;
	case 10:
		/* unmapped, then mapped afresh: zeroes */
		ck_assert_ptr_eq(mmap(a->p + first * PG_SIZE, n * PG_SIZE, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
				 a->p + first * PG_SIZE);
		memset(a->model + first, 0, n);
		memset(a->readonly + first, 0, n);
		break;
	case 8:
		ret = zdev_snapshot(d, a->p + first * PG_SIZE, n, (uint8_t *)buf, &res);
		ck_assert_msg(ret == 0, "snapshot: %d", ret);
		break;
	default:
		ret = zdev_release(d);
		ck_assert_msg(ret == 0, "release: %d", ret);
	}
}

START_TEST(random_calls_lose_nothing)
{
	struct arena a = { 0 };
	char *buf = malloc(ARENA_PAGES * PG_SIZE);

	pick_seed();
	ck_assert_ptr_nonnull(buf);
	a.p = mmap(NULL, ARENA_PAGES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ck_assert_ptr_ne(a.p, MAP_FAILED);
	a.model = calloc(ARENA_PAGES, 1);
	a.readonly = calloc(ARENA_PAGES, 1);
	ck_assert(a.model && a.readonly);
	a.next_value = 1;
	ck_assert_int_eq(zdev_open(NULL, 0, &a.dev[0]), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &a.dev[1]), 0);
	cpu_fill(&a, 0, ARENA_PAGES);

	for (int call = 0; call < 1500; call++)
		one_random_call(&a, buf);

	for (size_t i = 0; i < ARENA_PAGES; i++)
		check_page("CPU read", i, a.p + i * PG_SIZE, a.model[i]);
	ck_assert_int_eq(zdev_close(a.dev[0]), 0);
	ck_assert_int_eq(zdev_close(a.dev[1]), 0);
	munmap(a.p, ARENA_PAGES * PG_SIZE);
	free(a.model);
	free(a.readonly);
	free(buf);
}
END_TEST

static Suite *fuzz_suite(void)
{
	Suite *s = suite_create("fuzz");

	check_add_case(s, "decoder_never_accepts_what_it_should_not",
		       decoder_never_accepts_what_it_should_not, NULL, NULL, 0);
	check_add_case(s, "daemon_survives_mutated_datagrams", daemon_survives_mutated_datagrams,
		       NULL, NULL, 0);
	check_add_case(s, "random_calls_lose_nothing", random_calls_lose_nothing, NULL, NULL, 0);
	return s;
}

int main(void)
{
	return run_suite_with_zdevd(&zd, NULL, fuzz_suite());
}
