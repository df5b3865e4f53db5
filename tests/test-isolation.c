/* SPDX-License-Identifier: MIT */
/*
 * No client reaches another's memory, whatever it sends (DESIGN §9): a
 * process at the same virtual address as another's device pages, requests
 * for addresses that are zdevd's own, a HELLO speaking for another pid, a
 * claim on a stranger's fork, a replayed ownership proof, and a store fd sent
 * back as a uffd. Each is refused or reaches only the sender's own memory;
 * the victim's bytes are checked after every attack, and zdevd logs one
 * warning per refused connection, and no more than a burst of them however
 * often a client connects again to be refused.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "log.h"
#include "page.h"
#include "proto.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdev.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

#define VICTIM_PAGES 64
#define VICTIM_BYTES (VICTIM_PAGES * PG_SIZE)

static struct zdevd_instance zd;
static char log_path[128];

/* ---- the victim: a process with its secret on the device ---- */

static uint64_t secret_word(size_t i)
{
	return 0x5ec2e7000000000ull ^ (i * 0x9e3779b97f4a7c15ull);
}

static void fill_words(uint64_t *p, size_t bytes, uint64_t (*word)(size_t))
{
	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		p[i] = word(i);
}

static bool holds_words(const uint64_t *p, size_t bytes, uint64_t (*word)(size_t))
{
	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		if (p[i] != word(i))
			return false;
	return true;
}

/* True when any word of p is one of the secret's. */
static bool shows_secret(const uint64_t *p, size_t bytes)
{
	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		for (size_t j = 0; j < VICTIM_BYTES / sizeof(*p); j++)
			if (p[i] == secret_word(j))
				return true;
	return false;
}

struct victim {
	pid_t pid;
	int go;		/* write a byte: check the secret and exit */
	int ready;	/* the victim wrote its address here */
	uint64_t addr;
};

/* Maps the secret at addr (any address if 0), moves it to device 0, tells
 * ready_fd where, waits for go_fd, brings it back and checks it. */
static int victim_main(uint64_t addr, int ready_fd, int go_fd)
{
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	char c;

	buf = mmap((void *)(uintptr_t)addr, VICTIM_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | (addr ? MAP_FIXED_NOREPLACE : 0), -1, 0);
	if (buf == MAP_FAILED || (addr && buf != (void *)(uintptr_t)addr))
		return 2;
	fill_words(buf, VICTIM_BYTES, secret_word);
	if (zdev_open(NULL, 0, &dev))
		return 3;
	if (zdev_migrate_to_device(dev, buf, VICTIM_PAGES, &res) || res.cpages != VICTIM_PAGES)
		return 4;
	addr = (uint64_t)(uintptr_t)buf;
	if (write(ready_fd, &addr, sizeof(addr)) != (ssize_t)sizeof(addr) || read(go_fd, &c, 1) != 1)
		return 5;
	/* Still on the device, untouched: every page comes back by migration. */
	if (zdev_migrate_to_system(dev, buf, VICTIM_PAGES, &res) || res.cpages != VICTIM_PAGES)
		return 6;
	if (!holds_words(buf, VICTIM_BYTES, secret_word))
		return 7;
	return zdev_close(dev) ? 8 : 0;
}

static struct victim victim_start(uint64_t addr)
{
	int ready[2], go[2];
	struct victim v = { 0 };

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	v.pid = fork();
	ck_assert_int_ne(v.pid, -1);
	if (v.pid == 0) {
		close(ready[0]);
		close(go[1]);
		_exit(victim_main(addr, ready[1], go[0]));
	}
	close(ready[1]);
	close(go[0]);
	v.ready = ready[0];
	v.go = go[1];
	ck_assert_msg(read(v.ready, &v.addr, sizeof(v.addr)) == (ssize_t)sizeof(v.addr),
		      "the victim did not get its secret onto the device");
	return v;
}

/* The victim's secret came back whole after whatever was tried. */
static void victim_check(struct victim *v)
{
	int status;

	ck_assert_int_eq(write(v->go, "g", 1), 1);
	ck_assert_int_eq(waitpid(v->pid, &status, 0), v->pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the victim: status %#x",
		      status);
	close(v->go);
	close(v->ready);
}

/* ---- raw connections ---- */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", zd.socket_path);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* HELLO with the given pid and flags: the HELLO_OK (status in it), or a
 * closed connection (status -ECONNRESET). */
static struct zmsg_hello_ok raw_hello(int fd, pid_t pid, uint32_t flags, pid_t parent)
{
	union zmsg m;
	int devnode = -1, type;

	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hello.version = ZDEV_PROTO_VERSION;
	m.hello.pid = pid;
	m.hello.flags = flags;
	m.hello.parent_pid = parent;
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	type = zmsg_recv(fd, &m, &devnode);
	if (devnode >= 0)
		close(devnode);
	if (type == -ECONNRESET || type == -EPIPE || type == 0)
		return (struct zmsg_hello_ok){ .status = -ECONNRESET };
	ck_assert_msg(type == ZMSG_HELLO_OK, "HELLO answered with %d", type);
	return m.hello_ok;
}

/* UFFD with fd (may be -1) and a proof address: the reply's status, or
 * -ECONNRESET when the connection was closed instead. */
static int raw_uffd(int fd, int uffd, uint64_t proof_addr)
{
	union zmsg m;
	int type;

	zmsg_init(&m, ZMSG_UFFD, 2);
	m.req.addr = proof_addr;
	ck_assert_int_eq(zmsg_send(fd, &m, uffd), 0);
	type = zmsg_recv(fd, &m, NULL);
	if (type == -ECONNRESET || type == -EPIPE || type == 0)
		return -ECONNRESET;
	ck_assert_msg(type == ZMSG_REPLY, "UFFD answered with %d", type);
	return m.reply.status;
}

/* The proof page where zdevd asked for it. */
static void map_proof_page(uint64_t addr)
{
	void *p = mmap((void *)(uintptr_t)addr, PG_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	ck_assert_msg(p == (void *)(uintptr_t)addr, "mapping the proof page: %s", strerror(errno));
}

/* zdevd still serves a new client from start to end. */
static void zdevd_still_serves(void)
{
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf = mmap(NULL, 4 * PG_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(buf, MAP_FAILED);
	memset(buf, 0x5a, 4 * PG_SIZE);
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, 4, &res), 0);
	ck_assert_int_eq(zdev_migrate_to_system(dev, buf, 4, &res), 0);
	ck_assert_int_eq(buf[511], 0x5a5a5a5a5a5a5a5aull);
	ck_assert_int_eq(zdev_close(dev), 0);
	munmap(buf, 4 * PG_SIZE);
}

/* Lines of zdevd's log naming pid that contain what. */
static unsigned int log_lines(pid_t pid, const char *what)
{
	char line[1024], tag[32];
	unsigned int n = 0;
	FILE *f = fopen(log_path, "r");

	ck_assert_ptr_nonnull(f);
	snprintf(tag, sizeof(tag), "pid %d: ", (int)pid);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, tag) && strstr(line, what))
			n++;
	fclose(f);
	return n;
}

/* Every line of zdevd's log naming pid. */
static unsigned int log_lines_of(pid_t pid)
{
	return log_lines(pid, "");
}

/* Waits a moment for zdevd to have logged what a closed connection makes
 * it log: the worker logs after it answered. */
static void let_zdevd_log(void)
{
	usleep(200000);
}

/* ---- the same address in another process ---- */

/* What a snapshot says of a device-private page, local or remote. */
static bool on_private_device(uint8_t prot)
{
	return prot != ZDEV_PROT_ERROR && ((prot & 0xF0) == ZDEV_PROT_DEV_PRIVATE_LOCAL ||
					   (prot & 0xF0) == ZDEV_PROT_DEV_PRIVATE_REMOTE);
}

/* At the victim's address, in a process of its own: its own pattern, read,
 * snapshot, migrated and made exclusive; 0 if it never saw the secret. */
static uint64_t own_word(size_t i)
{
	return 0x0e11e0000000000ull + i;
}

static int same_address_main(uint64_t addr)
{
	const size_t n = VICTIM_PAGES;
	uint8_t flags[VICTIM_PAGES];
	struct zdev_result res;
	uint64_t *buf, *copy;
	struct zdev *dev;

	buf = mmap((void *)(uintptr_t)addr, VICTIM_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	copy = malloc(VICTIM_BYTES);
	if (buf != (void *)(uintptr_t)addr || !copy)
		return 2;
	if (zdev_open(NULL, 0, &dev))
		return 3;
	/* Nothing mapped yet at the address: the device finds no page. */
	if (!zdev_read(dev, buf, n, copy, &res) && shows_secret(copy, VICTIM_BYTES))
		return 4;
	fill_words(buf, VICTIM_BYTES, own_word);
	if (zdev_read(dev, buf, n, copy, &res) || !holds_words(copy, VICTIM_BYTES, own_word))
		return 5;
	if (zdev_snapshot(dev, buf, n, flags, &res))
		return 6;
	for (size_t i = 0; i < n; i++)
		if (on_private_device(flags[i]))
			return 7;
	/* None of its pages is on the device: nothing comes back. */
	if (zdev_migrate_to_system(dev, buf, n, &res) || res.cpages != 0)
		return 8;
	if (zdev_make_exclusive(dev, buf, n, &res) || !holds_words(buf, VICTIM_BYTES, own_word))
		return 9;
	if (zdev_migrate_to_device(dev, buf, n, &res) || res.cpages != n)
		return 10;
	if (zdev_read(dev, buf, n, copy, &res) || !holds_words(copy, VICTIM_BYTES, own_word))
		return 11;
	if (!holds_words(buf, VICTIM_BYTES, own_word))
		return 12;
	return zdev_close(dev) ? 13 : 0;
}

START_TEST(same_address_reaches_only_its_own_pages)
{
	struct victim v;
	uint64_t addr;
	int status;
	pid_t pid;

	/* An address free in both: reserved here, freed, and both children
	 * map it after the fork. */
	void *hole = mmap(NULL, VICTIM_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(hole, MAP_FAILED);
	addr = (uint64_t)(uintptr_t)hole;
	munmap(hole, VICTIM_BYTES);
	v = victim_start(addr);
	ck_assert_uint_eq(v.addr, addr);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		_exit(same_address_main(addr));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the process at the same address: status %#x", status);
	victim_check(&v);
}
END_TEST

/* ---- zdevd's own addresses ---- */

/* The start of a mapping of zdevd whose name contains what, or 0. */
static uint64_t zdevd_mapping(const char *what)
{
	char path[64], line[512];
	uint64_t start = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)zd.pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (!start && fgets(line, sizeof(line), f))
		if (strstr(line, what))
			start = strtoull(line, NULL, 16);
	fclose(f);
	return start;
}

START_TEST(zdevd_addresses_are_the_clients_own)
{
	const size_t n = 16;
	struct zdev_result res;
	struct victim v = victim_start(0);
	struct zdev *dev;
	uint64_t store, *copy = calloc(n, PG_SIZE);
	uint8_t flags[16];

	ck_assert_ptr_nonnull(copy);
	/* Where zdevd's mapping of the victim's store lies: its device pages. */
	store = zdevd_mapping("zdev-store-dev0");
	if (!store) {
		victim_check(&v);
		check_skip("zdevd's maps are not readable here");
		return;
	}
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	/* Here nothing is mapped there: the device finds no page of ours. */
	if (!zdev_read(dev, (void *)(uintptr_t)store, n, copy, &res))
		ck_assert(!shows_secret(copy, n * PG_SIZE));
	if (!zdev_migrate_to_system(dev, (void *)(uintptr_t)store, n, &res))
		ck_assert_uint_eq(res.cpages, 0);
	if (!zdev_snapshot(dev, (void *)(uintptr_t)store, n, flags, &res))
		for (size_t i = 0; i < n; i++)
			ck_assert(!on_private_device(flags[i]));
	/* A write there must not reach zdevd's memory: the victim checks. */
	memset(copy, 0xEE, n * PG_SIZE);
	(void)zdev_write(dev, (void *)(uintptr_t)store, n, copy, &res);
	/* Addresses no process has: refused before anything is done. */
	ck_assert_int_eq(zdev_read(dev, (void *)0xffff800000000000ull, 1, copy, &res), -EINVAL);
	ck_assert_int_eq(zdev_migrate_to_device(dev, (void *)0xfffffffffffff000ull, 1, &res),
			 -EINVAL);
	ck_assert_int_eq(zdev_close(dev), 0);
	free(copy);
	victim_check(&v);
}
END_TEST

/* ---- identity ---- */

START_TEST(hello_for_another_pid_is_refused)
{
	struct victim v = victim_start(0);
	struct zmsg_hello_ok ok;
	int fd = raw_connect();

	ok = raw_hello(fd, v.pid, 0, 0);
	ck_assert_msg(ok.status == -EPERM || ok.status == -ECONNRESET,
		      "HELLO for the victim's pid: status %d", ok.status);
	close(fd);
	let_zdevd_log();
	ck_assert_uint_eq(log_lines(getpid(), "HELLO for pid"), 1);
	ck_assert_uint_eq(log_lines_of(getpid()), 1);
	zdevd_still_serves();
	victim_check(&v);
}
END_TEST

/* A client that forks with the raw syscall, so that its child never claims
 * its uffd (libzdev's fork handler does not run): a fork event is pending
 * for it, and a stranger says it is that child. */
START_TEST(stranger_claiming_a_fork_is_refused)
{
	struct zmsg_hello_ok ok;
	struct victim v;
	pid_t child = -1;
	int fd, status, to_child[2], from_child[2];

	/* Asked in a child: this process must stay no client, to be the
	 * stranger. */
	child = fork();
	ck_assert_int_ne(child, -1);
	if (child == 0)
		_exit(zdevd_lacks(ZDEV_FEATURE_FORK_SHARED) ? 1 : 0);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		check_skip("no fork events: zdevd gets none without CAP_SYS_PTRACE");
		return;
	}
	v = victim_start(0);
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(from_child), 0);
	{
		pid_t parent = fork();

		ck_assert_int_ne(parent, -1);
		if (parent == 0) {
			struct zdev_result res;
			struct zdev *dev;
			uint64_t *buf = mmap(NULL, PG_SIZE, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			pid_t c;
			char b;

			if (buf == MAP_FAILED || zdev_open(NULL, 0, &dev))
				_exit(2);
			buf[0] = 42;
			if (zdev_migrate_to_device(dev, buf, 1, &res))
				_exit(3);
			c = (pid_t)syscall(SYS_fork);
			if (c == 0) {
				/* Asleep until told: its uffd stays unclaimed. */
				(void)read(to_child[0], &b, 1);
				_exit(0);
			}
			/* A request waits for the uffd events zdevd has read,
			 * the fork's among them: the fork is pending now. */
			if (c < 0 || zdev_migrate_to_system(dev, buf, 1, &res) ||
			    write(from_child[1], &c, sizeof(c)) != (ssize_t)sizeof(c))
				_exit(4);
			(void)read(to_child[0], &b, 1);
			waitpid(c, NULL, 0);
			_exit(buf[0] == 42 ? 0 : 5);
		}
		ck_assert_int_eq(read(from_child[0], &child, sizeof(child)),
				 (ssize_t)sizeof(child));
		/* The stranger: this process, naming the forking client as its
		 * parent. Its proof page lands in no process of the fork. */
		fd = raw_connect();
		ok = raw_hello(fd, getpid(), ZHELLO_FORKED, parent);
		ck_assert_int_eq(ok.status, 0);
		ck_assert_msg(ok.features & ZFEAT_PROVE_FORK, "zdevd saw no fork of %d pending",
			      (int)parent);
		map_proof_page(ok.proof_addr);
		status = raw_uffd(fd, -1, ok.proof_addr);
		ck_assert_msg(status == -EPERM || status == -ECONNRESET,
			      "a stranger's fork claim: status %d", status);
		close(fd);
		let_zdevd_log();
		ck_assert_uint_eq(log_lines(getpid(), "no fork event"), 1);
		ck_assert_uint_eq(log_lines_of(getpid()), 1);
		munmap((void *)(uintptr_t)ok.proof_addr, PG_SIZE);
		ck_assert_int_eq(write(to_child[1], "gg", 2), 2);
		ck_assert_int_eq(waitpid(parent, &status, 0), parent);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "the forking client: status %#x", status);
	}
	zdevd_still_serves();
	victim_check(&v);
}
END_TEST

START_TEST(replayed_proof_is_refused)
{
	struct victim v = victim_start(0);
	struct zmsg_hello_ok first, second;
	int a = raw_connect(), b = raw_connect(), uffd;

	first = raw_hello(a, getpid(), 0, 0);
	second = raw_hello(b, getpid(), 0, 0);
	ck_assert_int_eq(first.status, 0);
	ck_assert_int_eq(second.status, 0);
	ck_assert_uint_ne(first.proof_addr, second.proof_addr);
	/* The first connection's proof on the second: refused, whatever the uffd. */
	uffd = uffd_create(UFFD_USER_MODE_ONLY);
	ck_assert_int_ge(uffd, 0);
	ck_assert_int_eq(raw_uffd(b, uffd, first.proof_addr), -EINVAL);
	/* Again: refused again, and logged only once. */
	ck_assert_int_eq(raw_uffd(b, uffd, first.proof_addr), -EINVAL);
	ck_assert_int_eq(raw_uffd(b, uffd, 0), -EINVAL);
	close(uffd);
	close(a);
	close(b);
	let_zdevd_log();
	ck_assert_uint_eq(log_lines(getpid(), "no proof address"), 1);
	ck_assert_uint_eq(log_lines_of(getpid()), 1);
	zdevd_still_serves();
	victim_check(&v);
}
END_TEST

/* The fd of one of this process's stores (memfd:zdev-store-devN), or -1. */
static int own_store_fd(void)
{
	char path[320], target[128];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	int fd = -1;

	if (!d)
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, "memfd:zdev-store-dev"))
			fd = atoi(e->d_name);
	}
	closedir(d);
	return fd;
}

/* A client hands its store fd to a process that is no client yet, which
 * sends it to zdevd as its uffd, and attached to requests. */
START_TEST(store_fd_sent_back_is_refused)
{
	struct victim v = victim_start(0);
	int sv[2], status;
	pid_t sender;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	sender = fork();
	ck_assert_int_ne(sender, -1);
	if (sender == 0) {
		struct zmsg_hello_ok ok;
		union zmsg m;
		int store = -1, fd;

		close(sv[0]);
		if (zmsg_recv(sv[1], &m, &store) != ZMSG_REPLY || store < 0)
			_exit(2);
		fd = raw_connect();
		ok = raw_hello(fd, getpid(), 0, 0);
		if (ok.status)
			_exit(3);
		map_proof_page(ok.proof_addr);
		status = raw_uffd(fd, store, ok.proof_addr);
		if (status >= 0)
			_exit(4);
		/* Attached to a request: dropped, and the request refused as
		 * one with no uffd step. */
		zmsg_init(&m, ZMSG_OPEN, 3);
		if (status != -ECONNRESET && zmsg_send(fd, &m, store) == 0) {
			int type = zmsg_recv(fd, &m, NULL);

			if (type == ZMSG_REPLY && m.reply.status >= 0)
				_exit(5);
		}
		close(fd);
		_exit(0);
	}
	close(sv[1]);
	{
		struct zdev_result res;
		struct zdev *dev;
		union zmsg m;
		uint64_t *buf = mmap(NULL, 4 * PG_SIZE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int store;

		ck_assert_ptr_ne(buf, MAP_FAILED);
		fill_words(buf, 4 * PG_SIZE, own_word);
		ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
		ck_assert_int_eq(zdev_migrate_to_device(dev, buf, 4, &res), 0);
		store = own_store_fd();
		ck_assert_msg(store >= 0, "this client holds no store fd");
		zmsg_init(&m, ZMSG_REPLY, 0);
		ck_assert_int_eq(zmsg_send(sv[0], &m, store), 0);
		ck_assert_int_eq(waitpid(sender, &status, 0), sender);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "the sender: status %#x", status);
		/* Our pages are ours still. */
		ck_assert_int_eq(zdev_migrate_to_system(dev, buf, 4, &res), 0);
		ck_assert(holds_words(buf, 4 * PG_SIZE, own_word));
		ck_assert_int_eq(zdev_close(dev), 0);
	}
	let_zdevd_log();
	ck_assert_uint_eq(log_lines(sender, "no fresh userfaultfd"), 1);
	ck_assert_uint_eq(log_lines_of(sender), 1);
	close(sv[0]);
	zdevd_still_serves();
	victim_check(&v);
}
END_TEST

/* ---- the log ---- */

/*
 * A client that connects again and again, sending each time a message
 * zdevd cannot read: each connection is closed, the log gets a burst of
 * lines about it at most in each interval (an interval may end during the
 * flood, hence two), and others are served meanwhile.
 */
START_TEST(reconnecting_client_does_not_flood_the_log)
{
	enum { CONNECTIONS = 200 };
	const char junk = 0x5a;
	unsigned int lines;

	for (int i = 0; i < CONNECTIONS; i++) {
		int fd = raw_connect();
		char c;

		ck_assert_int_eq(send(fd, &junk, 1, 0), 1);
		ck_assert_msg(recv(fd, &c, 1, 0) == 0, "connection %d: not closed", i);
		close(fd);
	}
	let_zdevd_log();
	lines = log_lines_of(getpid());
	ck_assert_msg(lines >= 1 && lines <= 2 * LOG_CLIENT_BURST,
		      "%u lines about %d refused connections", lines, CONNECTIONS);
	zdevd_still_serves();
	/* The next test counts its own lines: a new interval for them. */
	sleep(LOG_CLIENT_INTERVAL_S + 1);
}
END_TEST

static Suite *isolation_suite(void)
{
	Suite *s = suite_create("isolation");

	check_add_case(s, "same_address_reaches_only_its_own_pages",
		       same_address_reaches_only_its_own_pages, NULL, NULL, 60);
	check_add_case(s, "zdevd_addresses_are_the_clients_own",
		       zdevd_addresses_are_the_clients_own, NULL, NULL, 60);
	check_add_case(s, "hello_for_another_pid_is_refused", hello_for_another_pid_is_refused,
		       NULL, NULL, 60);
	check_add_case(s, "stranger_claiming_a_fork_is_refused",
		       stranger_claiming_a_fork_is_refused, NULL, NULL, 60);
	check_add_case(s, "replayed_proof_is_refused", replayed_proof_is_refused, NULL, NULL, 60);
	check_add_case(s, "store_fd_sent_back_is_refused", store_fd_sent_back_is_refused, NULL,
		       NULL, 60);
	check_add_case(s, "reconnecting_client_does_not_flood_the_log",
		       reconnecting_client_does_not_flood_the_log, NULL, NULL, 60);
	return s;
}

int main(void)
{
	const char *why = zdevd_unavailable();
	int saved, logfd, failed, stopped;
	Suite *s = isolation_suite();

	if (why) {
		srunner_free(srunner_create(s));
		return check_skip_all("%s", why);
	}
	/* zdevd's log, which the tests read: its stderr, a file of ours. */
	snprintf(log_path, sizeof(log_path), "/tmp/zdev-isolation-%d.log", (int)getpid());
	logfd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		perror(log_path);
		return EXIT_FAILURE;
	}
	saved = dup(STDERR_FILENO);
	dup2(logfd, STDERR_FILENO);
	zdevd_start(&zd, NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(logfd);
	failed = check_run(s);
	stopped = zdevd_stop(&zd);
	if (failed) {
		/* What zdevd said, for the test's log. */
		char line[512];
		FILE *f = fopen(log_path, "r");

		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "zdevd: %s", line);
		if (f)
			fclose(f);
	}
	unlink(log_path);
	return failed || stopped ? EXIT_FAILURE : EXIT_SUCCESS;
}
