/* SPDX-License-Identifier: MIT */
/*
 * The shim's interposed calls at their edges, on managed memory that the
 * stress policy keeps moving to the device, back, and into exclusive holds:
 * MAP_FIXED over it, partial munmap, every kind of mremap, madvise and
 * mprotect, fork while threads write it, and signal handlers that touch it.
 *
 * Each case runs in a copy of this program started under the real shim
 * (LD_PRELOAD) with ZDEV_POLICY=stress and a private zdevd. It fills its
 * memory with a pattern, waits until pagemap shows pages of it gone from
 * the CPU (on the device or held exclusive), does the call, and checks every
 * byte; its own zdev counters must show pages that went to the device and
 * CPU faults that brought them back, so a shim that moves nothing fails.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "zdev.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

#define PAGE		4096ul
#define MIB		(1ul << 20)
#define CASE_ENV	"ZDEV_EDGES_CASE"
#define AWAY_WAIT_MS	20000	/* how long the policy may take to move a page of a range */
#define CHILD_WAIT_S	120

static struct zdevd_instance zd;

/* ---- inside the program under the shim ---- */

static const char *case_name = "?";
static struct zdev *dev;
static struct zdev_stats stats_at_start;

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s (pid %d): ", case_name, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

#define REQUIRE(cond, fmt, ...)                                                         \
	do {                                                                            \
		if (!(cond))                                                            \
			die("line %d: %s: " fmt, __LINE__, #cond, ##__VA_ARGS__);       \
	} while (0)

/* The pattern: a word of seed s at byte offset o of its range. Invertible
 * in s, so a word read back tells which seed wrote it. */
#define SEED_MUL	0x9e3779b97f4a7c15ull
#define OFF_MUL		0xd6e8feb86659fd93ull

static uint64_t pat(uint64_t s, uint64_t o)
{
	return s * SEED_MUL ^ o * OFF_MUL;
}

static uint64_t seed_of(uint64_t word, uint64_t o)
{
	uint64_t inv = SEED_MUL;

	/* Newton's iteration: the inverse of an odd number modulo 2^64. */
	for (int i = 0; i < 6; i++)
		inv *= 2 - SEED_MUL * inv;
	return (word ^ o * OFF_MUL) * inv;
}

static void fill(void *p, size_t len, uint64_t s)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = pat(s, i * 8);
}

/* Checks [p + from, p + to) against seed s, offsets counted from p. */
static void verify(const char *what, const void *p, size_t from, size_t to, uint64_t s)
{
	const volatile uint64_t *w = p;

	for (size_t o = from; o < to; o += 8)
		REQUIRE(w[o / 8] == pat(s, o), "%s: byte %zu of %p is %#llx, not %#llx", what, o, p,
			(unsigned long long)w[o / 8], (unsigned long long)pat(s, o));
}

static void verify_zero(const char *what, const void *p, size_t len)
{
	const volatile uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		REQUIRE(!w[i], "%s: byte %zu of %p is %#llx, not 0", what, i * 8, p,
			(unsigned long long)w[i]);
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(p != MAP_FAILED, "mmap %zu: %s", len, strerror(errno));
	return p;
}

static bool mapped(const void *p, size_t len)
{
	unsigned char vec[64];

	/* mincore fails with ENOMEM where any page is unmapped. */
	for (size_t o = 0; o < len; o += 64 * PAGE) {
		size_t n = len - o < 64 * PAGE ? len - o : 64 * PAGE;

		if (mincore((char *)p + o, n, vec) && errno == ENOMEM)
			return false;
	}
	return true;
}

static bool unmapped(const void *p, size_t len)
{
	unsigned char vec;

	for (size_t o = 0; o < len; o += PAGE)
		if (!mincore((char *)p + o, PAGE, &vec) || errno != ENOMEM)
			return false;
	return true;
}

#define PM_PRESENT (1ull << 63)

static int pagemap_fd = -1;

/* Pages of [p, p + len) not present on the CPU: after a fill, only those the
 * policy moved to the device or holds exclusive. Async-signal-safe. */
static size_t count_away(const void *p, size_t len)
{
	uint64_t pm[512];
	size_t away = 0;

	for (size_t o = 0; o < len; o += sizeof(pm) / 8 * PAGE) {
		size_t n = (len - o) / PAGE < 512 ? (len - o) / PAGE : 512;
		off_t at = (off_t)(((uintptr_t)p + o) / PAGE * 8);

		if (pread(pagemap_fd, pm, n * 8, at) != (ssize_t)(n * 8))
			return 0;
		for (size_t i = 0; i < n; i++)
			away += !(pm[i] & PM_PRESENT);
	}
	return away;
}

/* The first page of [p, p + len) not present on the CPU, or NULL. */
static char *first_away(char *p, size_t len)
{
	for (size_t o = 0; o < len; o += PAGE)
		if (count_away(p + o, PAGE))
			return p + o;
	return NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Waits until the policy has moved at least want pages of [p, p + len). */
static void wait_away(const char *what, const void *p, size_t len, size_t want)
{
	const uint64_t deadline = now_ms() + AWAY_WAIT_MS;
	size_t away;

	while ((away = count_away(p, len)) < want && now_ms() < deadline)
		sleep_ms(2);
	REQUIRE(away >= want, "%s: only %zu of %zu pages left the CPU in %d ms", what, away,
		len / PAGE, AWAY_WAIT_MS);
}

static void get_stats(struct zdev_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->version = ZDEV_STATS_VERSION;
	st->size = sizeof(*st);
	REQUIRE(zdev_get_stats(dev, st) == 0, "zdev_get_stats");
}

/* This process's own handle: the shim's connection, shared. */
static void open_device(void)
{
	int ret = zdev_open(NULL, 0, &dev);

	REQUIRE(ret == 0, "zdev_open: %s", strerror(-ret));
	get_stats(&stats_at_start);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	REQUIRE(pagemap_fd >= 0, "/proc/self/pagemap: %s", strerror(errno));
}

/* Pages went to the device and CPU faults brought some back, in this
 * process, since open_device. */
static void require_moved(void)
{
	struct zdev_stats st;

	get_stats(&st);
	REQUIRE(st.pages_to_device > stats_at_start.pages_to_device,
		"no page went to the device");
	REQUIRE(st.cpu_faults > stats_at_start.cpu_faults, "no CPU fault brought a page back");
}

/* ---- 1. MAP_FIXED over managed memory ---- */

static void map_fixed_case(void)
{
	const size_t len = 16 * MIB, off = 4 * MIB + 3 * PAGE, flen = 8 * MIB;
	char *p = map(len), *q;

	fill(p, len, 1);
	wait_away("before MAP_FIXED", p, len, 64);
	/* NOREPLACE must refuse, and leave the data. */
	q = mmap(p + off, flen, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	REQUIRE(q == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE over a mapping: %p", q);
	REQUIRE(mapped(p, len), "MAP_FIXED_NOREPLACE unmapped some of the range");
	verify("after MAP_FIXED_NOREPLACE", p, 0, len, 1);
	wait_away("before MAP_FIXED", p + off, flen, 16);
	q = mmap(p + off, flen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	REQUIRE(q == p + off, "MAP_FIXED: %p, not %p (%s)", q, p + off, strerror(errno));
	verify_zero("the new mapping", q, flen);
	verify("before it", p, 0, off, 1);
	verify("after it", p, off + flen, len, 1);
	fill(q, flen, 2);
	wait_away("the new mapping", q, flen, 64);
	verify("the new mapping, moved", q, 0, flen, 2);
	wait_away("around it", p, len, 64);
	verify("before it, moved", p, 0, off, 1);
	verify("after it, moved", p, off + flen, len, 1);
	/* The whole range replaced at once, by a smaller mapping. */
	q = mmap(p, len / 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	REQUIRE(q == p, "MAP_FIXED over the whole: %s", strerror(errno));
	verify_zero("the whole replaced", p, len / 2);
	verify("the first replacement's tail", p + off, len / 2 - off, flen, 2);
	verify("the tail left", p, off + flen, len, 1);
	munmap(p, len);
}

/* ---- 2. partial munmap ---- */

static void munmap_case(void)
{
	const size_t len = 16 * MIB;
	const size_t head = MIB + 3 * PAGE, mid = 5 * MIB + 5 * PAGE, mid_len = 2 * MIB + 4 * PAGE,
		     tail = 3 * MIB - 2 * PAGE;
	char *p = map(len);

	fill(p, len, 3);
	wait_away("before munmap", p, len, 64);
	REQUIRE(!munmap(p, head), "munmap head: %s", strerror(errno));
	REQUIRE(!munmap(p + mid, mid_len), "munmap middle: %s", strerror(errno));
	REQUIRE(!munmap(p + len - tail, tail), "munmap tail: %s", strerror(errno));
	REQUIRE(unmapped(p, head) && unmapped(p + mid, mid_len) &&
		unmapped(p + len - tail, tail), "a cut part is still mapped");
	for (int round = 0; round < 3; round++) {
		verify("between head and middle", p, head, mid, 3);
		verify("between middle and tail", p, mid + mid_len, len - tail, 3);
		wait_away("what is left", p + head, mid - head, 8);
		wait_away("what is left", p + mid + mid_len, len - tail - mid - mid_len, 8);
	}
	verify("between head and middle", p, head, mid, 3);
	verify("between middle and tail", p, mid + mid_len, len - tail, 3);
	REQUIRE(!munmap(p, len), "munmap the rest: %s", strerror(errno));
}

/* ---- 3. mremap ---- */

static void mremap_shrink(void)
{
	const size_t len = 16 * MIB, new_len = 10 * MIB + 3 * PAGE;
	char *p = map(len), *q;

	fill(p, len, 4);
	wait_away("before shrinking", p, len, 64);
	q = mremap(p, len, new_len, 0);
	REQUIRE(q == p, "mremap shrink: %p (%s)", q, strerror(errno));
	REQUIRE(unmapped(p + new_len, len - new_len), "the cut tail is still mapped");
	verify("shrunk", p, 0, new_len, 4);
	wait_away("shrunk", p, new_len, 64);
	verify("shrunk, moved", p, 0, new_len, 4);
	munmap(p, new_len);
}

/* Room after [p, p + len): mapped twice as large, the second half given back. */
static char *map_with_room(size_t len)
{
	char *p = map(2 * len);

	REQUIRE(!munmap(p + len, len), "munmap: %s", strerror(errno));
	return p;
}

static void mremap_grow_in_place(void)
{
	const size_t len = 16 * MIB, new_len = 24 * MIB;
	char *p = map_with_room(len), *q;

	fill(p, len, 5);
	wait_away("before growing", p, len, 64);
	q = mremap(p, len, new_len, 0);
	REQUIRE(q == p, "mremap grow in place: %p (%s)", q, strerror(errno));
	verify("grown, the old part", p, 0, len, 5);
	verify_zero("grown, the new part", p + len, new_len - len);
	fill(p + len, new_len - len, 6);
	wait_away("grown", p, new_len, 64);
	wait_away("grown, the new part", p + len, new_len - len, 16);
	verify("grown, the old part, moved", p, 0, len, 5);
	verify("grown, the new part, moved", p + len, 0, new_len - len, 6);
	munmap(p, new_len);
}

static void mremap_grow_moving(void)
{
	const size_t len = 16 * MIB, new_len = 24 * MIB;
	char *p = map(len + PAGE), *q;

	/* A page of another mapping right after: it cannot grow in place. */
	REQUIRE(!mprotect(p + len, PAGE, PROT_NONE), "mprotect: %s", strerror(errno));
	fill(p, len, 7);
	wait_away("before moving", p, len, 64);
	REQUIRE(mremap(p, len, new_len, 0) == MAP_FAILED && errno == ENOMEM,
		"grew in place over another mapping");
	verify("after a refused grow", p, 0, len, 7);
	q = mremap(p, len, new_len, MREMAP_MAYMOVE);
	REQUIRE(q != MAP_FAILED && q != p, "mremap MAYMOVE: %p (%s)", q, strerror(errno));
	REQUIRE(unmapped(p, len), "the old place is still mapped");
	verify("moved", q, 0, len, 7);
	verify_zero("moved, the new part", q + len, new_len - len);
	fill(q + len, new_len - len, 8);
	wait_away("moved", q, new_len, 64);
	verify("moved, the old part, moved", q, 0, len, 7);
	verify("moved, the new part, moved", q + len, 0, new_len - len, 8);
	munmap(p + len, PAGE);
	munmap(q, new_len);
}

static void mremap_fixed(void)
{
	const size_t len = 8 * MIB, target_len = 16 * MIB, at = 3 * MIB + 5 * PAGE;
	const size_t new_len = 10 * MIB;
	char *p = map(len), *t = map(target_len), *q;

	fill(p, len, 9);
	fill(t, target_len, 10);
	wait_away("the source", p, len, 64);
	wait_away("the target", t, target_len, 64);
	q = mremap(p, len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, t + at);
	REQUIRE(q == t + at, "mremap FIXED: %p, not %p (%s)", q, t + at, strerror(errno));
	REQUIRE(unmapped(p, len), "the old place is still mapped");
	verify("moved to a fixed place", q, 0, len, 9);
	verify_zero("its grown part", q + len, new_len - len);
	verify("the target before it", t, 0, at, 10);
	verify("the target after it", t, at + new_len, target_len, 10);
	wait_away("moved to a fixed place", q, len, 64);
	verify("moved to a fixed place, moved", q, 0, len, 9);
	verify("the target before it, moved", t, 0, at, 10);
	verify("the target after it, moved", t, at + new_len, target_len, 10);
	munmap(t, target_len);
}

static void mremap_case(void)
{
	mremap_shrink();
	mremap_grow_in_place();
	mremap_grow_moving();
	mremap_fixed();
}

/* ---- 4. madvise and mprotect ---- */

static void dontneed(void)
{
	const size_t len = 16 * MIB, off = 3 * MIB + 5 * PAGE, zlen = 4 * MIB;
	char *p = map(len);

	fill(p, len, 11);
	wait_away("before MADV_DONTNEED", p + off, zlen, 32);
	REQUIRE(!madvise(p + off, zlen, MADV_DONTNEED), "MADV_DONTNEED: %s", strerror(errno));
	verify_zero("after MADV_DONTNEED", p + off, zlen);
	verify("before it", p, 0, off, 11);
	verify("after it", p, off + zlen, len, 11);
	fill(p + off, zlen, 12);
	wait_away("after MADV_DONTNEED", p, len, 64);
	verify("written again, moved", p + off, 0, zlen, 12);
	verify("before it, moved", p, 0, off, 11);
	verify("after it, moved", p, off + zlen, len, 11);
	munmap(p, len);
}

/* After MADV_FREE a page holds either its data or zeros, never a mix; once
 * written again it keeps what was written. */
static void free_and_willneed(void)
{
	const size_t len = 16 * MIB, off = 2 * MIB + 7 * PAGE, flen = 6 * MIB;
	char *p = map(len);

	fill(p, len, 13);
	wait_away("before MADV_FREE", p + off, flen, 32);
	REQUIRE(!madvise(p + off, flen, MADV_FREE), "MADV_FREE: %s", strerror(errno));
	for (size_t o = off; o < off + flen; o += PAGE) {
		const volatile uint64_t *w = (const uint64_t *)(p + o);

		if (w[0] == 0)
			verify_zero("a page MADV_FREE let go", p + o, PAGE);
		else
			verify("a page MADV_FREE kept", p, o, o + PAGE, 13);
	}
	fill(p + off, flen, 14);
	wait_away("before MADV_WILLNEED", p, len, 64);
	REQUIRE(!madvise(p, len, MADV_WILLNEED), "MADV_WILLNEED: %s", strerror(errno));
	verify("written after MADV_FREE, moved", p + off, 0, flen, 14);
	verify("before it", p, 0, off, 13);
	verify("after it", p, off + flen, len, 13);
	munmap(p, len);
}

static sigjmp_buf segv_jump;
static void *volatile segv_addr;
static volatile sig_atomic_t segv_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	segv_addr = si->si_addr;
	segv_code = si->si_code;
	siglongjmp(segv_jump, 1);
}

/* A write to a read-only page: the program's own handler must see it, at
 * that address, and the page must keep its data. */
static void write_must_fault(char *at)
{
	segv_addr = NULL;
	if (!sigsetjmp(segv_jump, 1)) {
		*(volatile char *)at = 0x5a;
		die("a write to a PROT_READ page at %p went through", at);
	}
	REQUIRE(segv_addr == at && segv_code == SEGV_ACCERR,
		"the program's handler saw %p (code %d), not %p", segv_addr, (int)segv_code, at);
}

static void protect(void)
{
	const size_t len = 16 * MIB, off = MIB + 9 * PAGE, plen = 4 * MIB;
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO }, old;
	char *p = map(len), *away, *const ro_end = p + off + plen;
	size_t away_faults = 0;

	REQUIRE(!sigaction(SIGSEGV, &sa, &old), "sigaction: %s", strerror(errno));
	fill(p, len, 15);
	wait_away("before mprotect", p + off, plen, 32);
	REQUIRE(!mprotect(p + off, plen, PROT_READ), "mprotect PROT_READ: %s", strerror(errno));
	/*
	 * Writes to read-only pages, on the device and not, before anything
	 * reads them: the pages on the device are those the policy moved
	 * before the mprotect. From the shim's next scan of the maps on it
	 * moves none of this part (it manages writable memory only), and a
	 * read would bring them back for good; a write does not, the kernel
	 * refuses it before any fault reaches zdevd.
	 */
	for (char *at = p + off; away_faults < 8 && at < ro_end; at = away + PAGE) {
		away = first_away(at, (size_t)(ro_end - at));
		if (!away)
			break;
		write_must_fault(away + 17);
		away_faults++;
	}
	for (size_t o = off; o < off + plen; o += 61 * PAGE)
		write_must_fault(p + o + 17);
	verify("read-only, after faulting writes", p, 0, len, 15);
	REQUIRE(!mprotect(p + off, plen, PROT_READ | PROT_WRITE), "mprotect back: %s",
		 strerror(errno));
	verify("writable again", p, 0, len, 15);
	fill(p + off, plen, 16);
	wait_away("writable again", p, len, 64);
	verify("written again, moved", p + off, 0, plen, 16);
	verify("before it", p, 0, off, 15);
	verify("after it", p, off + plen, len, 15);
	REQUIRE(!sigaction(SIGSEGV, &old, NULL), "sigaction: %s", strerror(errno));
	REQUIRE(away_faults > 0, "no faulting write met a page on the device");
	munmap(p, len);
}

static void madvise_case(void)
{
	dontneed();
	free_and_willneed();
	protect();
}

/* ---- 5. fork while threads write managed memory ---- */

#define WRITERS		3
#define SLICE		(8 * MIB)
#define FORKS		4

struct writer {
	pthread_t thread;
	unsigned int id;
	uint64_t *slice;
	atomic_uint_fast64_t done;	/* the last pass written whole */
};

static atomic_bool writers_stop;

static uint64_t writer_seed(unsigned int id, uint64_t pass)
{
	return pass * 16 + id;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t pass = 1; !atomic_load(&writers_stop); pass++) {
		fill(w->slice, SLICE, writer_seed(w->id, pass));
		atomic_store(&w->done, pass);
	}
	return NULL;
}

/* Maps, grows, shrinks and unmaps without end: the shim's ranges change
 * at every fork. */
static void *mapper_main(void *arg)
{
	char *m = map(2 * MIB);

	(void)arg;
	while (!atomic_load(&writers_stop)) {
		char *grown = mremap(m, 2 * MIB, 4 * MIB, MREMAP_MAYMOVE), *fresh;

		if (grown == MAP_FAILED)
			continue;
		grown[3 * MIB] = 1;
		m = mremap(grown, 4 * MIB, 2 * MIB, 0);
		fresh = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
		if (fresh != MAP_FAILED) {
			fresh[0] = 1;
			munmap(fresh, 2 * MIB);
		}
	}
	munmap(m, 2 * MIB);
	return NULL;
}

/*
 * A writer's slice as fork copied it: each word whole, written by that
 * writer, in a pass no older than the last one it had finished before the
 * fork. (Which pass each page shows is the kernel's business: a thread may
 * write on while fork copies.)
 */
static void check_snapshot(const struct writer *w, uint64_t done_before)
{
	for (size_t o = 0; o < SLICE; o += 8) {
		const uint64_t s = seed_of(w->slice[o / 8], o);

		REQUIRE(s % 16 == w->id && s / 16 >= done_before,
			"writer %u's word at %zu: %#llx, not one it wrote since pass %llu", w->id,
			o, (unsigned long long)w->slice[o / 8], (unsigned long long)done_before);
	}
}

#define CHILD_TOUCH_ROUNDS 20

/* A CPU touch brought a device page back, or revoked an exclusive one. */
static bool touched_back(const struct zdev_stats *before, const struct zdev_stats *after)
{
	return after->cpu_faults > before->cpu_faults ||
	       after->exclusive_revokes > before->exclusive_revokes;
}

static void forked_child(struct writer *w, const uint64_t *done_before)
{
	const size_t len = 8 * MIB;
	struct zdev_stats st0, st;
	char *mine;

	/* The handle this process opened is its parent's; its own
	 * connection is libzdev's business, which the shim shares. */
	REQUIRE(zdev_open(NULL, 0, &dev) == 0, "zdev_open in a fork child");
	get_stats(&st0);
	for (unsigned int i = 0; i < WRITERS; i++)
		check_snapshot(&w[i], done_before[i]);
	/* The child's own memory moves too: its policy runs. */
	mine = map(len);
	fill(mine, len, 99);
	wait_away("a fork child's own memory", mine, len, 64);
	verify("a fork child's own memory", mine, 0, len, 99);
	fill(w[0].slice, SLICE, 98);
	wait_away("a fork child's copy", w[0].slice, SLICE, 64);
	verify("a fork child's copy", w[0].slice, 0, SLICE, 98);
	get_stats(&st);
	REQUIRE(st.pages_to_device > st0.pages_to_device, "nothing moved in the fork child");
	/* The pages found away may all have come home by the policy's own
	 * moves before the touch, or been held exclusive, which a touch
	 * revokes: touched again until a touch brought one back. */
	for (int i = 0; i < CHILD_TOUCH_ROUNDS && !touched_back(&st0, &st); i++) {
		wait_away("a fork child's own memory", mine, len, 64);
		verify("a fork child's own memory", mine, 0, len, 99);
		get_stats(&st);
	}
	REQUIRE(touched_back(&st0, &st), "no CPU touch brought a page back in the fork child");
	exit(0);
}

/* Waits for child: its exit status, or -1 if it did not end in time
 * (it is killed then). */
static int wait_child(pid_t pid, unsigned int seconds)
{
	int status;

	for (unsigned int i = 0; i < seconds * 100; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void start_writers(struct writer *w, char *p, pthread_t *mapper)
{
	for (unsigned int i = 0; i < WRITERS; i++) {
		w[i].id = i;
		w[i].slice = (uint64_t *)(p + i * SLICE);
		fill(w[i].slice, SLICE, writer_seed(i, 0));
		atomic_store(&w[i].done, 0);
	}
	for (unsigned int i = 0; i < WRITERS; i++)
		REQUIRE(!pthread_create(&w[i].thread, NULL, writer_main, &w[i]), "pthread_create");
	REQUIRE(!pthread_create(mapper, NULL, mapper_main, NULL), "pthread_create");
}

static void fork_case(void)
{
	const size_t len = WRITERS * SLICE;
	char *p = map(len);
	struct writer w[WRITERS];
	pthread_t mapper;

	start_writers(w, p, &mapper);
	for (int f = 0; f < FORKS; f++) {
		uint64_t done[WRITERS];
		pid_t pid;
		int status;

		wait_away("written by threads", p, len, 16);
		for (unsigned int i = 0; i < WRITERS; i++)
			done[i] = atomic_load(&w[i].done);
		pid = fork();
		REQUIRE(pid >= 0, "fork: %s", strerror(errno));
		if (!pid)
			forked_child(w, done);
		status = wait_child(pid, CHILD_WAIT_S);
		REQUIRE(status == 0, "fork child %d: status %d (-1: hung)", f, status);
	}
	atomic_store(&writers_stop, true);
	for (unsigned int i = 0; i < WRITERS; i++)
		pthread_join(w[i].thread, NULL);
	pthread_join(mapper, NULL);
	wait_away("after the forks", p, len, 64);
	for (unsigned int i = 0; i < WRITERS; i++)
		verify("a writer's last pass", w[i].slice, 0, SLICE,
		       writer_seed(i, atomic_load(&w[i].done)));
	munmap(p, len);
}

/* ---- 6. signal handlers on managed memory ---- */

#define SIG_BYTES	(16 * MIB)
#define LOG_WORDS	(MIB / 8)	/* the handlers' log, at the end of the range */

static uint64_t *sig_buf;
static volatile sig_atomic_t sig_bad;
static atomic_uint sig_count, sig_away;

/* Reads a word of a page picked from the count, noting whether the page was
 * on the device, then logs the count in managed memory too. */
static void on_timer(int sig)
{
	const unsigned int n = atomic_fetch_add(&sig_count, 1);
	const size_t words = (SIG_BYTES - LOG_WORDS * 8) / 8;
	const size_t i = (size_t)n * 7919 * 512 % words + n % 512;

	(void)sig;
	if (count_away(&sig_buf[i & ~511ul], PAGE))
		atomic_fetch_add(&sig_away, 1);
	if (sig_buf[i] != pat(17, i * 8))
		sig_bad = 1;
	if (n < LOG_WORDS)
		sig_buf[words + n] = pat(18, n);
}

static void install_timer_handlers(timer_t *t)
{
	struct sigaction alrm = { .sa_handler = on_timer }, usr1 = { .sa_handler = on_timer };
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
	struct itimerval it = { .it_interval = { 0, 2000 }, .it_value = { 0, 2000 } };
	struct itimerspec its = { .it_interval = { 0, 3000000 }, .it_value = { 0, 3000000 } };

	/* Every signal blocked in the one handler, as many programs ask:
	 * a fault there must still be served. */
	sigfillset(&alrm.sa_mask);
	sigemptyset(&usr1.sa_mask);
	REQUIRE(!sigaction(SIGALRM, &alrm, NULL) && !sigaction(SIGUSR1, &usr1, NULL), "sigaction");
	REQUIRE(!timer_create(CLOCK_MONOTONIC, &ev, t), "timer_create: %s", strerror(errno));
	REQUIRE(!timer_settime(*t, 0, &its, NULL), "timer_settime: %s", strerror(errno));
	REQUIRE(!setitimer(ITIMER_REAL, &it, NULL), "setitimer: %s", strerror(errno));
}

static void stop_timers(timer_t t)
{
	struct itimerval off = { { 0, 0 }, { 0, 0 } };

	setitimer(ITIMER_REAL, &off, NULL);
	timer_delete(t);
	signal(SIGALRM, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
}

static void signal_case(void)
{
	const size_t words = (SIG_BYTES - LOG_WORDS * 8) / 8;
	const uint64_t deadline = now_ms() + 30000;
	unsigned int n;
	timer_t t;

	sig_buf = map(SIG_BYTES);
	fill(sig_buf, words * 8, 17);
	wait_away("before the timers", sig_buf, SIG_BYTES, 64);
	install_timer_handlers(&t);
	/* The main thread only sleeps: the handlers are what touch. */
	while ((atomic_load(&sig_away) < 20 || atomic_load(&sig_count) < 500) && now_ms() < deadline)
		sleep_ms(10);
	stop_timers(t);
	n = atomic_load(&sig_count);
	REQUIRE(!sig_bad, "a handler read a wrong word");
	REQUIRE(atomic_load(&sig_away) >= 20,
		"only %u of %u signals touched a page on the device", atomic_load(&sig_away), n);
	verify("under the handlers", sig_buf, 0, words * 8, 17);
	for (unsigned int i = 0; i < n && i < LOG_WORDS; i++)
		REQUIRE(sig_buf[words + i] == pat(18, i), "the handlers' log, entry %u", i);
	munmap(sig_buf, SIG_BYTES);
}

struct edge_case {
	const char *name;
	void (*run)(void);
};

static const struct edge_case cases[] = {
	{ "map_fixed", map_fixed_case },
	{ "partial_munmap", munmap_case },
	{ "mremap", mremap_case },
	{ "madvise_mprotect", madvise_case },
	{ "fork_threads", fork_case },
	{ "signal_handlers", signal_case },
};

/* This program started again under the shim, for one case. */
static int run_case(const char *name)
{
	case_name = name;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(cases[i].name, name))
			continue;
		open_device();
		cases[i].run();
		require_moved();
		return 0;
	}
	die("no such case");
}

/* ---- the Check side: each case in this program under the shim ---- */

/* Appends to out the path of the library named name that this program has
 * loaded, and a colon. */
static void append_loaded(const char *name, char *out, size_t size)
{
	char line[512], path[400];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %*s %399s", path) != 1 || !strstr(path, name))
			continue;
		snprintf(out + strlen(out), size - strlen(out), "%s:", path);
		break;
	}
	fclose(f);
}

/* The sanitizer runtimes this program carries, which must come before the
 * shim in LD_PRELOAD, ASan's first (it insists on it): "" without them. */
static void sanitizer_runtimes(char *out, size_t size)
{
	out[0] = '\0';
	append_loaded("/libasan.so", out, size);
	append_loaded("/libubsan.so", out, size);
}

static void set_shim_env(const char *name, const char *stats_path)
{
	const char *top = getenv("top_builddir");
	char preload[1200], runtimes[800];

	sanitizer_runtimes(runtimes, sizeof(runtimes));
	snprintf(preload, sizeof(preload), "%s%s/.libs/libzdev-preload.so", runtimes,
		 top ? top : ".");
	ck_assert_msg(access(preload + strlen(runtimes), R_OK) == 0, "%s is not built",
		      preload + strlen(runtimes));
	setenv("LD_PRELOAD", preload, 1);
	setenv("ZDEV_POLICY", "stress", 1);
	setenv("ZDEV_RATE", "1000", 1);
	setenv("ZDEV_REQUIRE", "1", 1);
	setenv("ZDEV_STATS", stats_path, 1);
	setenv("ZDEV_STATS_FORMAT", "json", 1);
	setenv(CASE_ENV, name, 1);
}

/* Sums "key":N over the lines of the stats file: every process of a case. */
static unsigned long long stats_sum(const char *text, const char *key)
{
	char pat_key[64];
	unsigned long long sum = 0;
	size_t klen;

	snprintf(pat_key, sizeof(pat_key), "\"%s\":", key);
	klen = strlen(pat_key);
	for (const char *at = text; (at = strstr(at, pat_key)); at += klen)
		sum += strtoull(at + klen, NULL, 10);
	return sum;
}

static void run_under_shim(const char *name)
{
	char stats_path[] = "/tmp/zdev-edges-stats-XXXXXX", err_path[] = "/tmp/zdev-edges-err-XXXXXX";
	int stats_fd, err_fd, status;
	char *stats, *err;
	pid_t pid;

	/* Without kernel-mode faults the shim falls back to policy none, and
	 * these cases are about pages that move under the program. */
	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_KERNEL_FAULTS);
	stats_fd = mkstemp(stats_path);
	err_fd = mkstemp(err_path);
	ck_assert_int_ge(stats_fd, 0);
	ck_assert_int_ge(err_fd, 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		set_shim_env(name, stats_path);
		dup2(err_fd, STDERR_FILENO);
		execl("/proc/self/exe", "test-shim-edges", (char *)NULL);
		_exit(127);
	}
	status = wait_child(pid, CHILD_WAIT_S);
	err = check_slurp(err_path);
	stats = check_slurp(stats_path);
	unlink(err_path);
	unlink(stats_path);
	close(err_fd);
	close(stats_fd);
	ck_assert_msg(status == 0, "%s under the shim: status %d (-1: hung), stderr: %s", name,
		      status, err ? err : "");
	ck_assert_msg(stats && stats_sum(stats, "pages_to_device") > 0 &&
		      stats_sum(stats, "cpu_faults") > 0,
		      "%s: the shim's statistics show nothing moved: %s", name, stats ? stats : "");
	free(err);
	free(stats);
}

START_TEST(map_fixed)
{
	run_under_shim("map_fixed");
}
END_TEST

START_TEST(partial_munmap)
{
	run_under_shim("partial_munmap");
}
END_TEST

START_TEST(mremap_kinds)
{
	run_under_shim("mremap");
}
END_TEST

START_TEST(madvise_mprotect)
{
	run_under_shim("madvise_mprotect");
}
END_TEST

START_TEST(fork_threads)
{
#if defined(__SANITIZE_ADDRESS__) && __GNUC__ <= 12
	/* GCC 12's AddressSanitizer registers no fork handlers: a lock of its
	 * allocator that another thread held at the fork stays held in the
	 * child, and the child's first allocation from it (libzdev's agent
	 * thread starting: glibc's pthread_getattr_np) never returns. */
	check_skip("GCC 12's AddressSanitizer allocator is not fork-safe in a threaded program "
		   "(it registers no fork handlers): the fork child can hang in malloc");
	return;
#endif
	run_under_shim("fork_threads");
}
END_TEST

START_TEST(signal_handlers)
{
	run_under_shim("signal_handlers");
}
END_TEST

int main(void)
{
	const char *name = getenv(CASE_ENV);
	Suite *s;

	if (name)
		return run_case(name);
	s = suite_create("shim-edges");
	check_add_case(s, "map_fixed", map_fixed, NULL, NULL, 150);
	check_add_case(s, "partial_munmap", partial_munmap, NULL, NULL, 150);
	check_add_case(s, "mremap", mremap_kinds, NULL, NULL, 150);
	check_add_case(s, "madvise_mprotect", madvise_mprotect, NULL, NULL, 150);
	check_add_case(s, "fork_threads", fork_threads, NULL, NULL, 150);
	check_add_case(s, "signal_handlers", signal_handlers, NULL, NULL, 150);
	return run_suite_with_zdevd(&zd, NULL, s);
}
