/* SPDX-License-Identifier: MIT */
/*
 * The emulated files of the kernel's HMM test driver, as a program under the
 * shim sees them (tests/test-shim-dmirror.sh runs it under zdev-run). Each
 * subcommand checks one part and exits 0, or prints what went wrong and
 * exits 1; "zero-page" only says (exit 0 or 1) whether a read fault maps
 * the shared zero page on this kernel, for the shell tests' expectations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* The driver's ABI as the kernel's test_hmm_uapi.h and gup_test.h spell it:
 * the test uses its own copy, so that a mistake in the shim's shows. */
struct hmm_dmirror_cmd {
	uint64_t addr, ptr, npages, cpages, faults;
};

#define HMM_DMIRROR_READ		_IOWR('H', 0x00, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_WRITE		_IOWR('H', 0x01, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_DEV	_IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS	_IOWR('H', 0x03, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_SNAPSHOT		_IOWR('H', 0x04, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_EXCLUSIVE		_IOWR('H', 0x05, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_CHECK_EXCLUSIVE	_IOWR('H', 0x06, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_RELEASE		_IOWR('H', 0x07, struct hmm_dmirror_cmd)

#define PROT_ERROR_B	0xFF
#define PROT_NONE_B	0x00
#define PROT_READ_B	0x01
#define PROT_WRITE_B	0x02
#define PROT_ZERO_B	0x10
#define PROT_PRIVATE_B	0x20

struct gup_test {
	uint64_t get_delta_usec, put_delta_usec, addr, size;
	uint32_t nr_pages_per_call, gup_flags, test_flags, which_pages[8];
};

#define GUP_FAST_BENCHMARK	_IOWR('g', 1, struct gup_test)
#define PIN_LONGTERM_BENCHMARK	_IOWR('g', 3, struct gup_test)
#define GUP_BASIC_TEST		_IOWR('g', 4, struct gup_test)
#define PIN_LONGTERM_TEST_STOP	_IO('g', 8)
#define FOLL_WRITE		0x01

/* glibc's fortified opens, which _FORTIFY_SOURCE calls in place of open
 * where it cannot check the flags at compile time. */
int __open_2(const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static long page;
static int failures;

#define CHECK(cond, ...)							\
	do {									\
		if (!(cond)) {							\
			printf("FAIL: %s:%d: %s: ", __func__, __LINE__, #cond);	\
			printf(__VA_ARGS__);					\
			printf("\n");						\
			failures++;						\
		}								\
	} while (0)

static int dev_open(int minor)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", minor);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* One command: 0 with *cmd filled, or -errno. */
static int cmd(int fd, unsigned long req, void *addr, void *ptr, uint64_t npages,
	       struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd c = { .addr = (uintptr_t)addr, .ptr = (uintptr_t)ptr,
				     .npages = npages, .cpages = 99, .faults = 99 };

	if (ioctl(fd, req, &c))
		return -errno;
	if (out)
		*out = c;
	return 0;
}

static char *map_anon(long npages, int prot)
{
	char *p = mmap(NULL, (size_t)(npages * page), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

/* present and not exclusively mapped: no page of its own (pagemap hides
 * the frame from an ordinary user, not these bits). */
static int zero_page(void)
{
	uint64_t word = 0;
	volatile char *p = (volatile char *)map_anon(1, PROT_READ);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	(void)p[0];
	if (fd < 0 || pread(fd, &word, sizeof(word), (off_t)((uintptr_t)p / (uintptr_t)page * 8)) != 8)
		return 2;
	return (word & (1ull << 63)) && !(word & (1ull << 56)) ? 0 : 1;
}

/* Opens, closes, dup family, minors that do not exist. */
static void open_close(void)
{
	int fd = dev_open(0), fd1, fd2, fd3;
	char *p = map_anon(1, PROT_READ | PROT_WRITE);
	struct hmm_dmirror_cmd c = { 0 };
	char mirror[4096];

	CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", strerror(errno));
	CHECK(dev_open(1) >= 0, "open /dev/hmm_dmirror1: %s", strerror(errno));
	errno = 0;
	CHECK(dev_open(4) < 0 && errno == ENOENT, "minor 4: %s", strerror(errno));
	errno = 0;
	CHECK(open("/dev/hmm_dmirror00", O_RDWR) < 0 && errno == ENOENT, "hmm_dmirror00: %s",
	      strerror(errno));
	errno = 0;
	CHECK(dev_open(2) < 0 && errno == ENOENT, "minor 2, no coherent device: %s",
	      strerror(errno));
	/* The fortified and *at variants go the same way. */
	fd1 = openat(AT_FDCWD, "/dev/hmm_dmirror1", O_RDWR);
	CHECK(fd1 >= 0, "openat: %s", strerror(errno));
	CHECK(close(fd1) == 0, "close");
	fd1 = __open_2("/dev/hmm_dmirror1", O_RDWR);
	CHECK(fd1 >= 0, "__open_2: %s", strerror(errno));
	CHECK(close(fd1) == 0, "close");
	fd1 = __openat64_2(AT_FDCWD, "/dev/hmm_dmirror1", O_RDWR);
	CHECK(fd1 >= 0, "__openat64_2: %s", strerror(errno));
	CHECK(close(fd1) == 0, "close");

	/* A dup shares the file: the mirror lives on after the first close. */
	p[0] = 'x';
	fd1 = dup(fd);
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	fd3 = dup2(fd, 200);
	CHECK(fd1 >= 0 && fd2 >= 100 && fd3 == 200, "dups %d %d %d", fd1, fd2, fd3);
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, mirror, 1, &c) == 0 && c.cpages == 1,
	      "migrate");
	CHECK(close(fd) == 0, "close the first");
	CHECK(cmd(fd1, HMM_DMIRROR_SNAPSHOT, p, mirror, 1, &c) == 0 &&
	      (uint8_t)mirror[0] == (PROT_PRIVATE_B | PROT_WRITE_B),
	      "the page is still the device's through a dup: 0x%02x", (uint8_t)mirror[0]);
	CHECK(close(fd1) == 0 && close(fd2) == 0, "close two dups");
	/* dup2 onto the last descriptor closes it: the file goes, and its
	 * pages come home. */
	CHECK(dup2(1, fd3) == fd3, "dup2 onto it");
	CHECK(ioctl(fd3, HMM_DMIRROR_READ, &c) < 0 && errno != EINVAL,
	      "fd3 is another file now: %s", strerror(errno));
	CHECK(close(fd3) == 0, "close");
	fd = dev_open(0);
	CHECK(cmd(fd, HMM_DMIRROR_SNAPSHOT, p, mirror, 1, &c) == 0 &&
	      (uint8_t)mirror[0] == PROT_WRITE_B && p[0] == 'x',
	      "released with the last descriptor: 0x%02x", (uint8_t)mirror[0]);
	close(fd);
	/* Many files at once: no small limit (zdevd allows a client 256 handles). */
	{
		int fds[200];

		for (int i = 0; i < 200; i++) {
			fds[i] = dev_open(i % 2);
			CHECK(fds[i] >= 0, "open number %d: %s", i, strerror(errno));
		}
		for (int i = 0; i < 200; i++)
			CHECK(fds[i] < 0 || close(fds[i]) == 0, "close %d", i);
	}
}

/* Each command's errors, as the driver gives them. */
static void errors(void)
{
	int fd = dev_open(0);
	char *p = map_anon(4, PROT_READ | PROT_WRITE), *shared;
	char mirror[4 * 4096];
	struct hmm_dmirror_cmd c = { 0 };

	memset(p, 1, (size_t)(4 * page));
	/* A bad command pointer: EFAULT, as copy_from_user answers. */
	errno = 0;
	CHECK(ioctl(fd, HMM_DMIRROR_READ, (void *)16) < 0 && errno == EFAULT, "bad pointer: %s",
	      strerror(errno));
	/* An unknown command: the driver's EINVAL, once the command was read. */
	CHECK(cmd(fd, _IOWR('H', 0x3f, struct hmm_dmirror_cmd), p, mirror, 1, NULL) == -EINVAL,
	      "unknown command");
	CHECK(cmd(fd, _IOR('x', 1, int), p, mirror, 1, NULL) == -EINVAL, "another driver's");
	/* The ranges the driver refuses. */
	CHECK(cmd(fd, HMM_DMIRROR_READ, p + 1, mirror, 1, NULL) == -EINVAL, "unaligned");
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, 0, NULL) == -EINVAL, "no pages");
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, UINT64_MAX / 4096, NULL) == -EINVAL, "wraps");
	/* A bad data pointer. */
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, (void *)16, 1, NULL) == -EFAULT, "bad buffer");
	/* Counters: a read of system pages, then of nothing mapped. */
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, 4, &c) == 0 && c.cpages == 4 && c.faults == 1,
	      "read: cpages %llu faults %llu", (unsigned long long)c.cpages,
	      (unsigned long long)c.faults);
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, 4, &c) == 0 && c.cpages == 4 && c.faults == 0,
	      "read again, mirrored: faults %llu", (unsigned long long)c.faults);
	munmap(p + 3 * page, (size_t)page);
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, 4, NULL) == -EFAULT, "read over a hole");
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, mirror, 4, NULL) == -EINVAL,
	      "migrate over a hole");
	/* Writing read-only memory: EPERM. */
	mprotect(p, (size_t)(3 * page), PROT_READ);
	CHECK(cmd(fd, HMM_DMIRROR_WRITE, p, mirror, 3, NULL) == -EPERM, "write read-only");
	/* Nothing migratable (shared memory): ENOENT. */
	shared = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, shared, mirror, 1, NULL) == -ENOENT,
	      "migrate shared memory");
	/* Exclusive, then a CPU touch revokes it. */
	mprotect(p, (size_t)(3 * page), PROT_READ | PROT_WRITE);
	CHECK(cmd(fd, HMM_DMIRROR_EXCLUSIVE, p, mirror, 3, &c) == 0 && c.cpages == 3 &&
	      mirror[0] == 1, "exclusive: cpages %llu", (unsigned long long)c.cpages);
	CHECK(cmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, p, mirror, 3, NULL) == -EPERM,
	      "still exclusive");
	for (int i = 0; i < 3; i++)
		p[i * page]++;
	CHECK(cmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, p, mirror, 3, NULL) == 0, "revoked");
	/* A migration and its way back. */
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, mirror, 3, &c) == 0 && c.cpages == 3 &&
	      mirror[page] == 2, "migrate: cpages %llu", (unsigned long long)c.cpages);
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, p, mirror, 3, &c) == 0 && c.cpages == 3,
	      "migrate back: cpages %llu", (unsigned long long)c.cpages);
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, mirror, 3, &c) == 0, "migrate again");
	CHECK(cmd(fd, HMM_DMIRROR_RELEASE, p, mirror, 3, &c) == 0 && p[2 * page] == 2, "release");
	/* Commands the VFS answers for every file reach the memfd. */
	CHECK(ioctl(fd, FIOCLEX) == 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "FIOCLEX");
	close(fd);
}

/* The driver's mmap: zeroed pages of their own, read-only until written. */
static void mmap_file(void)
{
	int fd = dev_open(0);
	unsigned char m[2];
	struct hmm_dmirror_cmd c = { 0 };
	char *a = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	char *b = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *d;

	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(cmd(fd, HMM_DMIRROR_SNAPSHOT, a, m, 1, &c) == 0 && m[0] == PROT_READ_B &&
	      c.cpages == 1, "private, untouched: 0x%02x", m[0]);
	a[0] = 1;
	CHECK(cmd(fd, HMM_DMIRROR_SNAPSHOT, a, m, 1, NULL) == 0 && m[0] == PROT_WRITE_B,
	      "private, written: 0x%02x", m[0]);
	b[0] = 2;
	munmap(b, (size_t)page);
	/* A new mapping has pages of its own, shared or not. */
	d = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(d != MAP_FAILED && d[0] == 0, "a second shared mapping starts zeroed");
	errno = 0;
	CHECK(mmap(NULL, (size_t)page, PROT_READ, MAP_PRIVATE, fd, 1) == MAP_FAILED &&
	      errno == EINVAL, "unaligned offset: %s", strerror(errno));
	close(fd);
	CHECK(a[0] == 1 && d[0] == 0, "mappings outlive the file");
}

/* A fork child: its own open works; an inherited file is the parent's
 * mirror, which the child cannot use. */
static void fork_child(void)
{
	int fd = dev_open(0), status;
	char *p = map_anon(1, PROT_READ | PROT_WRITE);
	char mirror[4096];
	struct hmm_dmirror_cmd c = { 0 };
	pid_t pid;

	p[0] = 5;
	pid = fork();
	if (pid == 0) {
		int own = dev_open(1);

		if (cmd(fd, HMM_DMIRROR_READ, p, mirror, 1, NULL) != -EINVAL)
			_exit(10);
		if (own < 0 || cmd(own, HMM_DMIRROR_READ, p, mirror, 1, &c) || mirror[0] != 5)
			_exit(11);
		if (close(fd) || close(own))
			_exit(12);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child status 0x%x", status);
	CHECK(cmd(fd, HMM_DMIRROR_READ, p, mirror, 1, NULL) == 0 && mirror[0] == 5,
	      "the parent's file still works");
	close(fd);
}

/* gup_test: a get brings a device-private page home; errors as the kernel's. */
static void gup(void)
{
	int fd = dev_open(0), g = open("/sys/kernel/debug/gup_test", O_RDWR);
	char *p = map_anon(4, PROT_READ | PROT_WRITE);
	unsigned char m[4];
	struct gup_test t;

	CHECK(g >= 0, "open gup_test: %s", strerror(errno));
	memset(p, 3, (size_t)(4 * page));
	CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, p + 0, 0, NULL) == -EINVAL, "0 pages");
	{
		char mirror[4 * 4096];

		CHECK(cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, mirror, 4, NULL) == 0, "migrate");
	}
	t = (struct gup_test){ .addr = (uintptr_t)p, .size = (uint64_t)(2 * page),
			       .nr_pages_per_call = 1, .gup_flags = FOLL_WRITE };
	CHECK(ioctl(g, GUP_BASIC_TEST, &t) == 0 && t.size == (uint64_t)(2 * page),
	      "get two pages: size %llu", (unsigned long long)t.size);
	t = (struct gup_test){ .addr = (uintptr_t)(p + 2 * page), .size = (uint64_t)page,
			       .nr_pages_per_call = 1 };
	CHECK(ioctl(g, PIN_LONGTERM_BENCHMARK, &t) == 0, "pin one");
	CHECK(cmd(fd, HMM_DMIRROR_SNAPSHOT, p, m, 4, NULL) == 0, "snapshot");
	CHECK(m[0] == PROT_WRITE_B && m[1] == PROT_WRITE_B && m[2] == PROT_WRITE_B &&
	      m[3] == (PROT_PRIVATE_B | PROT_WRITE_B),
	      "snapshot %02x %02x %02x %02x", m[0], m[1], m[2], m[3]);
	CHECK(p[0] == 3 && p[3 * page] == 3, "data kept");
	/* The kernel's answers: EFAULT for a bad pointer, EINVAL for
	 * commands it does not know; a range that cannot be got stops the
	 * loop, with the size it got through. */
	CHECK(ioctl(g, GUP_FAST_BENCHMARK, (void *)16) < 0 && errno == EFAULT, "bad pointer");
	CHECK(ioctl(g, PIN_LONGTERM_TEST_STOP) < 0 && errno == EINVAL, "not emulated");
	CHECK(ioctl(g, _IOWR('g', 99, struct gup_test), &t) < 0 && errno == EINVAL, "unknown");
	munmap(p + page, (size_t)page);
	t = (struct gup_test){ .addr = (uintptr_t)p, .size = (uint64_t)(4 * page),
			       .nr_pages_per_call = 1 };
	CHECK(ioctl(g, GUP_FAST_BENCHMARK, &t) == 0 && t.size == (uint64_t)page,
	      "stops at the hole: size %llu", (unsigned long long)t.size);
	CHECK(mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, g, 0) == MAP_FAILED &&
	      errno == ENODEV, "no mmap");
	close(g);
	close(fd);
}

/* The kernel's hmm2.snapshot, whole: hmm-tests stops at the first byte
 * that differs, this checks them all; page 2 is the zero page only where
 * read faults map it. */
static void snapshot(void)
{
	int fd0 = dev_open(0), fd1 = dev_open(1);
	char *p = map_anon(7, PROT_NONE);
	unsigned char m[7], mirror[4096];
	const unsigned char zero = zero_page() == 0 ? PROT_ZERO_B | PROT_READ_B : PROT_READ_B;
	struct hmm_dmirror_cmd c = { 0 };

	munmap(p + page, (size_t)page);
	mprotect(p + 2 * page, (size_t)page, PROT_READ);
	CHECK(*(volatile int *)(p + 2 * page) == 0, "page 2 reads 0");
	mprotect(p + 3 * page, (size_t)page, PROT_READ | PROT_WRITE);
	p[3 * page] = 3;
	mprotect(p + 3 * page, (size_t)page, PROT_READ);
	mprotect(p + 4 * page, (size_t)(3 * page), PROT_READ | PROT_WRITE);
	p[4 * page] = 3;
	CHECK(cmd(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, p + 5 * page, mirror, 1, &c) == 0 &&
	      c.cpages == 1, "page 5 to device 0");
	CHECK(cmd(fd1, HMM_DMIRROR_MIGRATE_TO_DEV, p + 6 * page, mirror, 1, &c) == 0 &&
	      c.cpages == 1, "page 6 to device 1");
	CHECK(cmd(fd0, HMM_DMIRROR_SNAPSHOT, p, m, 7, &c) == 0 && c.cpages == 7, "snapshot");
	CHECK(m[0] == PROT_ERROR_B && m[1] == PROT_ERROR_B && m[2] == zero && m[3] == PROT_READ_B &&
	      m[4] == PROT_WRITE_B && m[5] == (PROT_PRIVATE_B | PROT_WRITE_B) && m[6] == PROT_NONE_B,
	      "bytes %02x %02x %02x %02x %02x %02x %02x (page 2 expected %02x)", m[0], m[1], m[2],
	      m[3], m[4], m[5], m[6], zero);
	close(fd0);
	close(fd1);
}

/* Without the emulation (ZDEV_DMIRROR=0) the paths are the system's. */
static void disabled(void)
{
	errno = 0;
	CHECK(dev_open(0) < 0 && errno == ENOENT, "open: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "open-close", open_close }, { "errors", errors }, { "mmap", mmap_file },
		{ "fork", fork_child }, { "gup", gup }, { "snapshot", snapshot },
		{ "disabled", disabled },
	};

	page = sysconf(_SC_PAGESIZE);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: %s zero-page|CASE\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "zero-page"))
		return zero_page();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[1], cases[i].name)) {
			cases[i].fn();
			return failures ? 1 : 0;
		}
	fprintf(stderr, "%s: no case %s\n", argv[0], argv[1]);
	return 2;
}
