/* SPDX-License-Identifier: MIT */
/*
 * Device-exclusive access: the kernel's hmm-tests exclusive, exclusive_mprotect
 * and exclusive_cow with their assertions (EXCLUSIVE = zdev_make_exclusive
 * followed by the driver's read of the range into the mirror, CHECK_EXCLUSIVE =
 * zdev_check_exclusive), and what docs/architecture.md, "Device-exclusive
 * access", adds: revocation from
 * many threads, the program's own SIGSEGV handler, VMA coalescing, exact
 * device atomics under contention, fork and munmap, and the error cases.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "lib/zdevpriv.h"
#include "zdev.h"
#include "hmm-common.h"

#define HMM_BUFFER_SIZE (1024ul << 12)	/* 1024 pages of 4 KiB */
#define WORDS (4096 / sizeof(uint64_t))

static struct zdev *dev;

static void setup(void)
{
	hmm_init_page_size();
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
}

static void teardown(void)
{
	ck_assert_int_eq(zdev_close(dev), 0);
	dev = NULL;
}

/* test_hmm's EXCLUSIVE: make the range exclusive, then read it through the
 * device's table into the mirror (no fault round: the device maps it all). */
static int make_exclusive(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 }, rd = { 0 };
	int ret = zdev_make_exclusive(d, b->ptr, npages, &res);

	if (ret)
		return ret;
	b->cpages = res.cpages;
	ret = zdev_read(d, b->ptr, npages, b->mirror, &rd);
	ck_assert_msg(ret == 0, "reading the exclusive range through the device: %d", ret);
	ck_assert_msg(rd.cpages == npages && rd.faults == 0,
		      "the exclusive range is not all in the device's table "
		      "(cpages %llu, faults %llu)",
		      (unsigned long long)rd.cpages, (unsigned long long)rd.faults);
	return 0;
}

/* The VMAs that overlap [start, start + len): the range's own, whatever
 * else the process (or a sanitizer's allocator) maps meanwhile. */
static unsigned long vma_count(const void *start, unsigned long len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e, n = 0;
	char line[512];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > (uintptr_t)start &&
		    s < (uintptr_t)start + len)
			n++;
	fclose(f);
	return n;
}

static struct zdev_stats stats(void)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	return st;
}

/* ---- the kernel's tests ---- */

START_TEST(exclusive)
{
	const unsigned long npages = HMM_BUFFER_SIZE >> page_shift;
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	int *ptr = b->ptr;
	uint8_t snap[HMM_BUFFER_SIZE >> 12];

	FILL_INT(ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ASSERT_EACH_INT(b->mirror, HMM_BUFFER_SIZE / sizeof(int), i);
	/* Not in the kernel's test: exclusivity really holds until touched,
	 * and a snapshot, which does not fault, sees no page there. */
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), -EPERM);
	ASSERT_EQ_V(zdev_snapshot(dev, b->ptr, npages, snap, NULL), 0);
	ASSERT_EACH_BYTE(snap, npages, ZDEV_PROT_NONE);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), -EPERM);

	for (unsigned long i = 0; i < HMM_BUFFER_SIZE / sizeof(int); i++)
		ck_assert_int_eq(ptr[i]++, (int)i);
	ASSERT_EACH_INT(ptr, HMM_BUFFER_SIZE / sizeof(int), i + 1);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	buffer_free(b);
}
END_TEST

START_TEST(exclusive_mprotect)
{
	const unsigned long npages = HMM_BUFFER_SIZE >> page_shift;
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ASSERT_EACH_INT(b->mirror, HMM_BUFFER_SIZE / sizeof(int), i);

	ck_assert_int_eq(mprotect(b->ptr, HMM_BUFFER_SIZE, PROT_READ), 0);
	ASSERT_EQ_V(dev_cmd(dev, OP_WRITE, b, npages), -EPERM);
	/* Not in the kernel's test: the CPU reads what it had. */
	ASSERT_EACH_INT(b->ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	buffer_free(b);
}
END_TEST

/* In a fork child: no Check assertions, an exit status instead. */
static int increment_all(int *ptr, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		if (ptr[i]++ != (int)i)
			return 1;
	for (unsigned long i = 0; i < n; i++)
		if (ptr[i] != (int)i + 1)
			return 2;
	return 0;
}

START_TEST(exclusive_cow)
{
	const unsigned long npages = HMM_BUFFER_SIZE >> page_shift;
	const unsigned long nints = HMM_BUFFER_SIZE / sizeof(int);
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	int status;
	pid_t pid;

	FILL_INT(b->ptr, nints, i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		_exit(increment_all(b->ptr, nints));
	ASSERT_EQ_V(increment_all(b->ptr, nints), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ASSERT_EQ_V(WEXITSTATUS(status), 0);
	buffer_free(b);
}
END_TEST

/* ---- revocation ---- */

struct toucher {
	pthread_barrier_t *go;
	int *ptr;
	unsigned long nints;
};

static void *touch_all(void *arg)
{
	struct toucher *t = arg;

	pthread_barrier_wait(t->go);
	for (unsigned long i = 0; i < t->nints; i += 1024 / sizeof(int))
		__atomic_fetch_add(&t->ptr[i], 1, __ATOMIC_RELAXED);
	return NULL;
}

START_TEST(revoke_four_threads)
{
	const unsigned long npages = HMM_BUFFER_SIZE >> page_shift;
	const unsigned long nints = HMM_BUFFER_SIZE / sizeof(int);
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev_stats before = stats(), after;
	pthread_barrier_t go;
	struct toucher t = { &go, b->ptr, nints };
	pthread_t th[4];

	FILL_INT(b->ptr, nints, 0);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	pthread_barrier_init(&go, NULL, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, touch_all, &t), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	/* Every thread's every add landed, on the CPU's page. */
	for (unsigned long i = 0; i < nints; i++)
		ck_assert_int_eq(((int *)b->ptr)[i], i % (1024 / sizeof(int)) ? 0 : 4);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	after = stats();
	ASSERT_EQ_V(after.exclusive_grants - before.exclusive_grants, npages);
	ASSERT_EQ_V(after.exclusive_revokes - before.exclusive_revokes, npages);
	buffer_free(b);
}
END_TEST

static volatile int *usr1_page;
static volatile int usr1_seen;

static void usr1_handler(int sig)
{
	(void)sig;
	usr1_seen = *usr1_page;
}

START_TEST(revoke_in_other_handler)
{
	struct sigaction act = { .sa_handler = usr1_handler };
	struct hmm_buffer *b;

#ifdef __SANITIZE_THREAD__
	/* ThreadSanitizer runs a program's handler of an asynchronous signal
	 * later, from its own, with every signal blocked: the fault inside it
	 * cannot be delivered to anyone, and the kernel kills. */
	check_skip("ThreadSanitizer runs an asynchronous signal's handler with every "
		   "signal blocked: the fault in it would kill the process");
	return;
#endif
	b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, 4), 0);
	sigemptyset(&act.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &act, NULL), 0);
	/* A handler of another signal touches an exclusive page. */
	usr1_page = (int *)b->ptr + 1024 * 2 + 3;
	raise(SIGUSR1);
	ASSERT_EQ_V(usr1_seen, 1024 * 2 + 3);
	ASSERT_EQ_V(zdev_check_exclusive(dev, (char *)b->ptr + 2 * page_size, 1), 0);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, 2), -EPERM);
	buffer_free(b);
}
END_TEST

static volatile sig_atomic_t own_faults;
static sigjmp_buf own_jmp;

static void own_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	own_faults++;
	siglongjmp(own_jmp, 1);
}

START_TEST(program_segv_handler)
{
	struct sigaction act = { .sa_sigaction = own_handler, .sa_flags = SA_SIGINFO }, old;
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	char *ro = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(ro, MAP_FAILED);
	/* The program's handler comes first (libzdev's is installed on first
	 * exclusive use, in this forked test process). */
	sigemptyset(&act.sa_mask);
	ck_assert_int_eq(sigaction(SIGSEGV, &act, &old), 0);
	FILL_INT(b->ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, 16), 0);

	/* A touch of an exclusive page is not the program's business. */
	ck_assert_int_eq(((int *)b->ptr)[1024 * 3 + 7], 1024 * 3 + 7);
	ASSERT_EQ_V(own_faults, 0);
	/* Its own fault is. */
	if (!sigsetjmp(own_jmp, 1))
		*(volatile char *)ro = 1;
	ASSERT_EQ_V(own_faults, 1);
	/* And again: the handler stays (no SA_RESETHAND). */
	if (!sigsetjmp(own_jmp, 1))
		*(volatile char *)(ro + 8) = 1;
	ASSERT_EQ_V(own_faults, 2);
	/* Exclusive pages still revoke after that. */
	ck_assert_int_eq(((int *)b->ptr)[1024 * 9], 1024 * 9);
	ASSERT_EQ_V(own_faults, 2);
	munmap(ro, page_size);
	buffer_free(b);
}
END_TEST

START_TEST(sigaction_through_libzdev)
{
	struct sigaction act = { .sa_sigaction = own_handler, .sa_flags = SA_SIGINFO }, old, now;
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	char *ro = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(ro, MAP_FAILED);
	FILL_INT(b->ptr, HMM_BUFFER_SIZE / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, 16), 0);
	/* Installed after libzdev's, the way the shim will route a
	 * program's sigaction: libzdev's handler stays in place. */
	sigemptyset(&act.sa_mask);
	ASSERT_EQ_V(zdevpriv_sigaction(SIGSEGV, &act, &old), 0);
	ASSERT_EQ_V(zdevpriv_sigaction(SIGSEGV, NULL, &now), 0);
	ck_assert_ptr_eq((void *)now.sa_sigaction, (void *)own_handler);
	ck_assert_int_eq(sigaction(SIGSEGV, NULL, &now), 0);
	ck_assert_ptr_ne((void *)now.sa_sigaction, (void *)own_handler);

	own_faults = 0;
	ck_assert_int_eq(((int *)b->ptr)[1024 * 5], 1024 * 5);
	ASSERT_EQ_V(own_faults, 0);
	if (!sigsetjmp(own_jmp, 1))
		*(volatile char *)ro = 1;
	ASSERT_EQ_V(own_faults, 1);
	ASSERT_EQ_V(zdevpriv_sigaction(SIGSEGV, &old, NULL), 0);
	munmap(ro, page_size);
	buffer_free(b);
}
END_TEST

static void once_handler(int sig)
{
	(void)sig;
	own_faults++;
	siglongjmp(own_jmp, 1);
}

/* What the child installs before libzdev's handler comes in. */
enum prior { PRIOR_DFL, PRIOR_IGN, PRIOR_RESETHAND };

/* In a fork child: exclusive pages revoke, then a real fault on a read-only
 * page meets the prior disposition. Exits with a code if it survives. */
static void child_meets_prior(enum prior prior)
{
	struct rlimit nocore = { 0, 0 };
	struct sigaction act = { .sa_handler = SIG_DFL };
	struct zdev_result res;
	struct zdev *d;
	char *p, *ro;

	setrlimit(RLIMIT_CORE, &nocore);
	/* Not even a sanitizer's handler stays. */
	if (prior == PRIOR_IGN)
		act.sa_handler = SIG_IGN;
	if (prior == PRIOR_RESETHAND) {
		act.sa_handler = once_handler;
		act.sa_flags = SA_RESETHAND;
	}
	sigaction(SIGSEGV, &act, NULL);
	p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || ro == MAP_FAILED)
		_exit(10);
	memset(p, 7, 4 * page_size);
	/* A fork child opens its own device, as in anon_write_child. */
	if (zdev_open(NULL, 0, &d) || zdev_make_exclusive(d, p, 4, &res) || res.cpages != 4)
		_exit(11);
	if (p[page_size + 1] != 7)	/* revokes, survives */
		_exit(12);
	if (prior == PRIOR_RESETHAND) {
		/* The first real fault reaches the handler, once. */
		if (!sigsetjmp(own_jmp, 1))
			*(volatile char *)ro = 1;
		if (own_faults != 1)
			_exit(14);
		if (p[2 * page_size] != 7)	/* exclusive pages still revoke */
			_exit(15);
	}
	*(volatile char *)ro = 1;	/* dies here, by SIGSEGV */
	_exit(13);
}

START_TEST(prior_segv_disposition)
{
	for (int prior = PRIOR_DFL; prior <= PRIOR_RESETHAND; prior++) {
		int status;
		pid_t pid;

		snprintf(variant, sizeof(variant), "prior %d: ", prior);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0)
			child_meets_prior((enum prior)prior);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
			      "%sthe child should die by SIGSEGV: status 0x%x", variant, status);
	}
}
END_TEST

/* ---- coalescing ---- */

/* Touches n random pages of the 100 000 (each holds its number). */
static void touch_random(const uint64_t *w, unsigned long npages, unsigned long n)
{
	uint32_t *r = malloc(n * sizeof(*r));

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(getrandom(r, n * sizeof(*r), 0), (ssize_t)(n * sizeof(*r)));
	for (unsigned long t = 0; t < n; t++) {
		unsigned long p = r[t] % npages;

		ck_assert_uint_eq(w[p * WORDS], p);
	}
	free(r);
}

START_TEST(many_pages_few_vmas)
{
	const unsigned long npages = 100000, few = 1500, many = 30000;
	struct hmm_buffer *b = buffer_new(page_size);
	struct zdev_result res = { 0 };
	unsigned long n, len = npages * page_size;
	uint64_t *w;

	buffer_mmap(b, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	w = b->ptr;
	for (unsigned long p = 0; p < npages; p++)
		w[p * WORDS] = p;
	ASSERT_EQ_V(vma_count(w, len), 1);
	ASSERT_EQ_V(zdev_make_exclusive(dev, b->ptr, npages, &res), 0);
	ASSERT_EQ_V(res.cpages, npages);
	/* One range, one protection change: one VMA, not 100 000. */
	ASSERT_EQ_V(vma_count(w, len), 1);

	/* A few random revocations: at most two more VMAs each. */
	touch_random(w, npages, few);
	n = vma_count(w, len);
	ck_assert_msg(n > 1 && n <= 1 + 2 * few, "%lu VMAs after %lu random revocations", n, few);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), -EPERM);

	/* Many: libzdev's budget (4096 split VMAs, then whole 2 MiB blocks)
	 * keeps the count far below vm.max_map_count. */
	touch_random(w, npages, many);
	n = vma_count(w, len);
	ck_assert_msg(n <= 4096 + 2 * (npages / 512) + 1, "%lu VMAs after %lu more revocations",
		      n, many);

	/* Touched in order, the rest merges back into one. */
	for (unsigned long p = 0; p < npages; p++)
		ck_assert_uint_eq(w[p * WORDS], p);
	ASSERT_EQ_V(vma_count(w, len), 1);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	buffer_free(b);
}
END_TEST

/* A check may span the whole address space: it costs what the device
 * holds there, and finds the held pages however far they are. */
START_TEST(check_over_terabytes)
{
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	const unsigned long npages = HMM_BUFFER_SIZE >> page_shift;
	const unsigned long below = (uintptr_t)b->ptr / page_size - 1;
	const void *second_page = (const void *)(uintptr_t)page_size;

	memset(b->ptr, 1, HMM_BUFFER_SIZE);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ck_assert_msg(below > (1ul << 30), "the buffer is at %p, below 4 TiB", b->ptr);
	ASSERT_EQ_V(zdev_check_exclusive(dev, second_page, below), 0);
	ASSERT_EQ_V(zdev_check_exclusive(dev, second_page, below + 1), -EPERM);
	ASSERT_EQ_V(zdev_check_exclusive(dev, second_page, below + npages), -EPERM);
	ASSERT_EQ_V(zdev_check_exclusive(dev, (char *)b->ptr + HMM_BUFFER_SIZE, 1ul << 30), 0);
	buffer_free(b);
}
END_TEST

/* ---- device atomics ---- */

#define NCOUNTERS 4
#define CPU_ADDS 200000
#define DEVICE_ADDS 2000

struct adder {
	uint64_t *counters;
	atomic_int *started;
	atomic_bool *device_done;
	unsigned long adds;
};

/* At least CPU_ADDS adds, and on until the device is done, so that every
 * device add meets CPU threads on the same page. */
static void *cpu_adds(void *arg)
{
	struct adder *a = arg;

	atomic_fetch_add(a->started, 1);
	while (a->adds < CPU_ADDS || !atomic_load_explicit(a->device_done, memory_order_relaxed)) {
		__atomic_fetch_add(&a->counters[a->adds % NCOUNTERS], 1, __ATOMIC_SEQ_CST);
		a->adds++;
	}
	return NULL;
}

START_TEST(atomic_add_exact)
{
	struct hmm_buffer *b = buffer_map(HMM_BUFFER_SIZE, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t *c = b->ptr, total = 0, old;
	atomic_int started = 0;
	atomic_bool device_done = false;
	struct adder a[2] = { { c, &started, &device_done, 0 }, { c, &started, &device_done, 0 } };
	pthread_t th[2];

	/* Alone first: the old value and the sum. */
	ASSERT_EQ_V(zdev_atomic_add(dev, &c[0], 5, &old), 0);
	ASSERT_EQ_V(old, 0);
	ASSERT_EQ_V(zdev_atomic_add(dev, &c[0], 3, &old), 0);
	ASSERT_EQ_V(old, 5);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, 1), -EPERM);
	ASSERT_EQ_V(c[0], 8);	/* revokes */
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, 1), 0);
	c[0] = 0;

	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, cpu_adds, &a[i]), 0);
	while (atomic_load(&started) < 2)
		;
	for (unsigned long i = 0; i < DEVICE_ADDS; i++)
		ASSERT_EQ_V(zdev_atomic_add(dev, &c[i % NCOUNTERS], 1, NULL), 0);
	atomic_store(&device_done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_ge(a[0].adds, CPU_ADDS);
	for (int i = 0; i < NCOUNTERS; i++)
		total += __atomic_load_n(&c[i], __ATOMIC_SEQ_CST);
	ASSERT_EQ_V(total, a[0].adds + a[1].adds + DEVICE_ADDS);
	buffer_free(b);
}
END_TEST

/* ---- fork, munmap ---- */

struct bumper {
	uint64_t *w;
	unsigned long npages;
	atomic_bool *stop;
	unsigned long rounds;
};

/* Two threads adding to the second word of the pages of b by fn, their
 * first word numbered, after the range was made exclusive. */
struct bumpers {
	atomic_bool stop;
	struct bumper bp[2];
	pthread_t th[2];
};

static void bumpers_start(struct bumpers *t, struct hmm_buffer *b, unsigned long npages,
			  void *(*fn)(void *))
{
	uint64_t *w = b->ptr;
	struct zdev_result res;

	atomic_init(&t->stop, false);
	for (int i = 0; i < 2; i++)
		t->bp[i] = (struct bumper){ w, npages, &t->stop, 0 };
	for (unsigned long p = 0; p < npages; p++)
		w[p * WORDS] = p;
	ASSERT_EQ_V(zdev_make_exclusive(dev, b->ptr, npages, &res), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t->th[i], NULL, fn, &t->bp[i]), 0);
}

/* Stops them: every page keeps its number, and the adds sum to
 * per_round for each round the threads made. */
static void bumpers_stop_check(struct bumpers *t, unsigned long per_round)
{
	const struct bumper *bp = t->bp;
	uint64_t sum = 0;

	atomic_store(&t->stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t->th[i], NULL);
	for (unsigned long p = 0; p < bp->npages; p++) {
		ASSERT_EQ_V(bp->w[p * WORDS], p);
		sum += bp->w[p * WORDS + 1];
	}
	ASSERT_EQ_V(sum, (bp[0].rounds + bp[1].rounds) * per_round);
}

static void *bump_pages(void *arg)
{
	struct bumper *bp = arg;

	while (!atomic_load(bp->stop)) {
		for (unsigned long p = 0; p < bp->npages; p++)
			__atomic_fetch_add(&bp->w[p * WORDS + 1], 1, __ATOMIC_RELAXED);
		bp->rounds++;
	}
	return NULL;
}

START_TEST(fork_while_touching)
{
	const unsigned long npages = 256;
	struct hmm_buffer *b = buffer_map(npages * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t *w = b->ptr;
	struct zdev_result res;
	struct bumpers t;

	bumpers_start(&t, b, npages, bump_pages);
	for (int round = 0; round < 8; round++) {
		int status;
		pid_t pid;

		ck_assert_int_eq(zdev_make_exclusive(dev, b->ptr, npages, &res), 0);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			/* Its own copy: every page readable, writable. */
			for (unsigned long p = 0; p < npages; p++)
				if (w[p * WORDS] != p)
					_exit(1);
			for (unsigned long p = 0; p < npages; p++)
				w[p * WORDS] += 1000000;
			_exit(0);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFEXITED(status));
		ASSERT_EQ_V(WEXITSTATUS(status), 0);
	}
	/* The children's writes stayed theirs; no add of ours was lost: a
	 * round, once started, is finished before the thread looks again. */
	bumpers_stop_check(&t, npages);
	buffer_free(b);
}
END_TEST

/* Touches pages in random order: every revocation splits the range's VMAs
 * anew, so zdevd's reads of the mappings race mprotects all the time. */
static void *touch_random_pages(void *arg)
{
	struct bumper *bp = arg;
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(bp->stop)) {
		unsigned long p = (unsigned long)rand_r(&seed) % bp->npages;

		__atomic_fetch_add(&bp->w[p * WORDS + 1], 1, __ATOMIC_RELAXED);
		bp->rounds++;
	}
	return NULL;
}

/*
 * Grants while other threads revoke page by page. /proc/PID/maps, read
 * meanwhile, can leave out a mapping that is being split or merged; a page
 * of the range must never be taken for unmapped (EFAULT) for it.
 */
START_TEST(grant_while_revoking)
{
	const unsigned long npages = 256;
	struct hmm_buffer *b = buffer_map(npages * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev_result res;
	struct bumpers t;

	bumpers_start(&t, b, npages, touch_random_pages);
	for (int round = 0; round < 500; round++) {
		ck_assert_int_eq(zdev_make_exclusive(dev, b->ptr, npages, &res), 0);
		ASSERT_EQ_V(res.cpages, npages);
	}
	bumpers_stop_check(&t, 1);
	buffer_free(b);
}
END_TEST

START_TEST(munmap_then_reuse)
{
	const unsigned long npages = 64;
	struct hmm_buffer *b = buffer_map(npages * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	void *addr = b->ptr, *again;

	FILL_INT(b->ptr, npages * page_size / sizeof(int), i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ck_assert_int_eq(munmap(addr, npages * page_size), 0);
	/* The unmap took the device's entries with it. */
	ASSERT_EQ_V(zdev_check_exclusive(dev, addr, npages), 0);

	again = mmap(addr, npages * page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(again, addr);
	/* A fresh mapping there owes nothing to the old records. */
	ASSERT_EACH_INT(again, npages * page_size / sizeof(int), 0);
	FILL_INT(again, npages * page_size / sizeof(int), 3 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev, addr, npages), 0);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ASSERT_EACH_INT(b->mirror, npages * page_size / sizeof(int), 3 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev, addr, npages), -EPERM);
	ASSERT_EACH_INT(again, npages * page_size / sizeof(int), 3 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev, addr, npages), 0);
	buffer_free(b);
}
END_TEST

START_TEST(mremap_exclusive)
{
	const unsigned long npages = 64, len = npages * page_size, nints = len / sizeof(int);
	struct hmm_buffer *b = buffer_map(len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *dst = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *moved;

	ck_assert_ptr_ne(dst, MAP_FAILED);
	munmap(dst + len, len);
	FILL_INT(b->ptr, nints, i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	moved = mremap(b->ptr, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ck_assert_ptr_eq(moved, dst);
	b->ptr = moved;
	/* The moved pages revoke where they are now, with their data. */
	ASSERT_EACH_INT(moved, nints, i);
	FILL_INT(moved, nints, 2 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev, moved, npages), 0);
	ASSERT_EQ_V(dev_cmd(dev, OP_READ, b, npages), 0);
	ASSERT_EACH_INT(b->mirror, nints, 2 * i);
	buffer_free(b);
}
END_TEST

START_TEST(device_access_of_exclusive)
{
	const unsigned long npages = 32, nints = npages * page_size / sizeof(int);
	struct hmm_buffer *b = buffer_map(npages * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev *dev1;

	FILL_INT(b->ptr, nints, i);
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	/* Reads through the atomic entries keep them (make_exclusive read
	 * once already); a write needs a writable mapping, so it restores the
	 * CPU's pages first, in one fault round. */
	ASSERT_CMD_FAULTS(dev, OP_READ, b, npages, 0);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), -EPERM);
	FILL_INT(b->mirror, nints, 5 * i);
	ASSERT_CMD_FAULTS(dev, OP_WRITE, b, npages, 1);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	ASSERT_EACH_INT(b->ptr, nints, 5 * i);

	/* Another device's read takes the pages back from this one. */
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), 0);
	ASSERT_CMD_FAULTS(dev1, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, nints, 5 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	/* And its grant takes them too, page for page. */
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(make_exclusive(dev1, b, npages / 2), 0);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages / 2), 0);
	ASSERT_EQ_V(zdev_check_exclusive(dev, (char *)b->ptr + npages / 2 * page_size, npages / 2),
		    -EPERM);
	ASSERT_EQ_V(zdev_check_exclusive(dev1, b->ptr, npages / 2), -EPERM);
	ASSERT_EACH_INT(b->ptr, nints, 5 * i);
	ASSERT_EQ_V(zdev_check_exclusive(dev1, b->ptr, npages), 0);
	ck_assert_int_eq(zdev_close(dev1), 0);
	buffer_free(b);
}
END_TEST

/* ---- device-private pages ---- */

START_TEST(exclusive_of_device_private)
{
	const unsigned long npages = 64, nints = npages * page_size / sizeof(int);
	struct hmm_buffer *b = buffer_map(npages * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev_stats s0, s1;
	uint8_t *snap = malloc(npages);

	ck_assert_ptr_nonnull(snap);
	FILL_INT(b->ptr, nints, i);
	ASSERT_MIGRATED(dev, b, npages);
	s0 = stats();
	/* GUP for write faults device-private pages back first. */
	ASSERT_EQ_V(make_exclusive(dev, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ASSERT_EACH_INT(b->mirror, nints, i);
	s1 = stats();
	ASSERT_EQ_V(s1.device_pages, 0);
	ASSERT_EQ_V(s1.pages_to_system - s0.pages_to_system, npages);

	/* Migrating exclusive pages restores them to the CPU first. */
	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EQ_V(zdev_check_exclusive(dev, b->ptr, npages), 0);
	ASSERT_EQ_V(zdev_snapshot(dev, b->ptr, npages, snap, NULL), 0);
	ASSERT_EACH_BYTE(snap, npages, ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ASSERT_EACH_INT(b->ptr, nints, i);
	free(snap);
	buffer_free(b);
}
END_TEST

/* ---- errors ---- */

START_TEST(errors)
{
	struct zdev_result res = { 0 };
	struct hmm_buffer *b = buffer_map(8 * page_size, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS);
	char path[] = "/tmp/zdev-excl-XXXXXX";
	char *p = b->ptr, *shared, *file, *ro;
	uint64_t v;
	int fd;

	ASSERT_EQ_V(zdev_make_exclusive(dev, p, 0, &res), -EINVAL);
	ASSERT_EQ_V(zdev_make_exclusive(dev, p + 1, 1, &res), -EINVAL);
	ASSERT_EQ_V(zdev_make_exclusive(dev, p, SIZE_MAX / 2, &res), -EINVAL);
	ASSERT_EQ_V(zdev_check_exclusive(dev, p, 0), -EINVAL);
	ASSERT_EQ_V(zdev_check_exclusive(dev, p + 8, 1), -EINVAL);
	ASSERT_EQ_V(zdev_atomic_add(dev, (uint64_t *)(p + 4), 1, &v), -EINVAL);
	ASSERT_EQ_V(zdev_atomic_add(dev, NULL, 1, &v), -EINVAL);

	/* Pages 4..7 become shared memory: pages 0..3 are made exclusive,
	 * then the walk stops with EOPNOTSUPP. */
	shared = mmap(p + 4 * page_size, 4 * page_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_eq(shared, p + 4 * page_size);
	memset(p, 1, 8 * page_size);
	ASSERT_EQ_V(zdev_make_exclusive(dev, p, 8, &res), -EOPNOTSUPP);
	ASSERT_EQ_V(res.cpages, 4);
	ASSERT_EQ_V(zdev_check_exclusive(dev, p, 4), -EPERM);
	ASSERT_EQ_V(zdev_make_exclusive(dev, shared, 4, &res), -EOPNOTSUPP);
	ASSERT_EQ_V(res.cpages, 0);
	ASSERT_EQ_V(zdev_atomic_add(dev, (uint64_t *)shared, 1, &v), -EOPNOTSUPP);

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, 4 * page_size), 0);
	file = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(file, MAP_FAILED);
	ASSERT_EQ_V(zdev_make_exclusive(dev, file, 4, &res), -EOPNOTSUPP);
	ASSERT_EQ_V(res.cpages, 0);

	/* Not writable: GUP for write fails. */
	ro = mmap(NULL, 4 * page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(ro, MAP_FAILED);
	ASSERT_EQ_V(zdev_make_exclusive(dev, ro, 4, &res), -EFAULT);
	ASSERT_EQ_V(res.cpages, 0);

	munmap(ro, 4 * page_size);
	munmap(file, 4 * page_size);
	close(fd);
	buffer_free(b);
}
END_TEST

#define ADD_TEST(s, test) hmm_add_test(s, #test, test, setup, teardown)

static Suite *exclusive_suite(void)
{
	Suite *s = suite_create("exclusive");

	ADD_TEST(s, exclusive);
	ADD_TEST(s, exclusive_mprotect);
	ADD_TEST(s, exclusive_cow);
	ADD_TEST(s, revoke_four_threads);
	ADD_TEST(s, revoke_in_other_handler);
	ADD_TEST(s, program_segv_handler);
	ADD_TEST(s, prior_segv_disposition);
	ADD_TEST(s, sigaction_through_libzdev);
	ADD_TEST(s, many_pages_few_vmas);
	ADD_TEST(s, check_over_terabytes);
	ADD_TEST(s, atomic_add_exact);
	ADD_TEST(s, fork_while_touching);
	ADD_TEST(s, grant_while_revoking);
	ADD_TEST(s, munmap_then_reuse);
	ADD_TEST(s, mremap_exclusive);
	ADD_TEST(s, device_access_of_exclusive);
	ADD_TEST(s, exclusive_of_device_private);
	ADD_TEST(s, errors);
	return s;
}

int main(void)
{
	return hmm_main(exclusive_suite);
}
