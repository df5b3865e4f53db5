/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: zdevd's handling of a client's connection, with the
 * daemon in this process (its devices, event loop and workers, on a socket of
 * its own), so that the coverage that guides the fuzzer is the daemon's.
 *
 * An input is a sequence of datagrams that this process, as a client, sends
 * over one connection; each is framed as
 *
 *	u16 length (little-endian), u8 fd, then length bytes
 *
 * where fd picks what goes with the datagram (SCM_RIGHTS) from the fds this
 * target owns: FD_NONE, a fresh uffd, one whose API is set already, a
 * regular file, a pipe, a memfd (anything else: none). The bytes go out as
 * they are but for a few fields that no input could know: a HELLO's pid of 0
 * is ours, an UFFD's proof address of 0 is the one zdevd named, and the
 * addresses of requests and answers below 2^47 (user space) land in an arena
 * this target keeps for them, which holds nothing else. Without that, zdevd
 * would register, write-protect and write whatever memory of this process an
 * input names, the fuzzer's own among it. Ranges are cut to the arena for
 * the same reason: a request whose range passes zdevd's checks could reach
 * past it.
 *
 * After each datagram, zdevd must answer with one message or close the
 * connection; after the last, the connection is closed and everything this
 * process had of zdevd is made to go, as if it had exited. Then every pool
 * must hold what it held before, the debug pools must have seen no
 * violation, and a second client (fuzz-peer, a separate process with pages
 * on device 0) must find its pages, their data and its counters as it left
 * them. Any difference aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "page.h"
#include "proto.h"
#include "refpool.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdevd/clients.h"
#include "zdevd/listen.h"
#include "zdevd/options.h"
#include "zdevd/probe.h"
#include "zdevd/zdevd.h"
#include "zmm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARENA_LEN (4ul << 20)	/* two 2 MiB windows, for device THPs */
#define WINDOW_LEN (2ul << 20)	/* a device THP's */
#define GUARD_LEN (2ul << 20)	/* PROT_NONE on each side */
#define USER_ADDR_END (1ull << 47)
#define ANSWER_TIMEOUT_MS 5000	/* far longer than any request of the arena takes */

enum fd_choice { FD_NONE, FD_UFFD, FD_UFFD_USED, FD_FILE, FD_PIPE, FD_MEMFD, FD_CHOICES };

static struct zdevd d = { .listen_fd = -1 };
static pthread_t loop_thread;
static char tmpdir[] = "/tmp/zdev-fuzz-XXXXXX";
static char *arena;
static int fixed_fds[FD_CHOICES] = { -1, -1, -1, -1, -1, -1 };
static struct refpool_stats pool_baseline[ZDEV_MAX_DEVICES];
static unsigned int sessions_baseline;
static unsigned int fds_baseline;
static int peer_in = -1, peer_out = -1;	/* its stdin and stdout */
static bool verbose;		/* $ZDEV_FUZZ_VERBOSE: zdevd's log, and each message */
static pid_t peer_pid;

/* What one input has made. */
struct input_state {
	int sock;
	int uffd;		/* the fresh uffd, once an input sends it */
	uint64_t proof_addr;	/* the last HELLO_OK's */
	void *proof_page;
	/* What zdevd asked last: an answer of 0 where the question's
	 * address or id goes is made the answer to it. */
	uint64_t zap_addr, zap_len;
	struct zmsg_xmap xmap;
	uint64_t store_id;
	bool released;		/* a RELEASE went out: device-wide, the peer's too */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fuzz-session: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

/* ---- the daemon in this process ---- */

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int loop_state = 1;	/* 1: starting, 0: running, -errno: failed */

/* The ring is the creating thread's (IORING_SETUP_SINGLE_ISSUER): the loop
 * is made and run on the same thread, which also takes the signal mask it
 * sets, so that libFuzzer's main thread still sees SIGINT. */
static void *run_loop(void *arg)
{
	int ret = loop_create(&d);

	(void)arg;
	pthread_mutex_lock(&ready_lock);
	loop_state = ret;
	pthread_cond_signal(&ready_cond);
	pthread_mutex_unlock(&ready_lock);
	if (!ret && (ret = loop_run(&d)))
		die("the event loop stopped: %s", strerror(-ret));
	return NULL;
}

static void start_daemon(void)
{
	char sock_path[sizeof(tmpdir) + 32];
	char *argv[] = {
		"zdevd", "--foreground", "--socket", sock_path, "--devices", "2",
		"--memory-type", "private,coherent", "--memory", "64M", "--warm", "0",
		"--pool-debug", "--client-memory", "2M", "--client-registered", "4M",
		"--client-handles", "4", NULL,
	};

	sigset_t fuzzer_signals, old;

	/* zdevd's threads, which inherit the mask, never see libFuzzer's
	 * signals (its timer, above all), as a zdevd of its own sees none. */
	sigemptyset(&fuzzer_signals);
	sigaddset(&fuzzer_signals, SIGALRM);
	sigaddset(&fuzzer_signals, SIGUSR1);
	sigaddset(&fuzzer_signals, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &fuzzer_signals, &old);
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(sock_path, sizeof(sock_path), "%s/zdevd.sock", tmpdir);
	optind = 0;
	if (options_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, &d.cfg))
		die("zdevd's options");
	optind = 0;
	/* Every bad message is logged, which would be most of the output. */
	verbose = getenv("ZDEV_FUZZ_VERBOSE");
	log_set_level(verbose ? LOGL_DEBUG : LOGL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&d.mms_lock, NULL);
	if (workers_init(&d))
		die("the workers");
	probe_uffd(&d);
	if (devset_init(&d.devs, &d.cfg.devs))
		die("the devices");
	if (listen_open(&d))
		die("the socket");
	if (pthread_create(&loop_thread, NULL, run_loop, NULL))
		die("the loop's thread");
	pthread_mutex_lock(&ready_lock);
	while (loop_state > 0)
		pthread_cond_wait(&ready_cond, &ready_lock);
	pthread_mutex_unlock(&ready_lock);
	if (loop_state)
		die("the event loop: %s", strerror(-loop_state));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	setenv("ZDEV_SOCKET", d.cfg.socket_path, 1);
}

/* ---- the well-behaved client ---- */

/* libFuzzer's timer interrupts system calls: every one here goes on after it. */
static void peer_ask(const char *cmd)
{
	char line[256];
	size_t got = 0, len = strlen(cmd);
	int status = 0;

	for (size_t done = 0; done < len;) {
		ssize_t n = write(peer_in, cmd + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("fuzz-peer: gone (%s)", strerror(errno));
		done += (size_t)n;
	}
	while (got == 0 || line[got - 1] != '\n') {
		ssize_t n = read(peer_out, line + got, sizeof(line) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || got + (size_t)n >= sizeof(line) - 1)
			break;
		got += (size_t)n;
	}
	line[got] = '\0';
	if (got == 0 || line[got - 1] != '\n') {
		if (waitpid(peer_pid, &status, WNOHANG) == peer_pid && WIFSIGNALED(status))
			die("fuzz-peer: killed by signal %d before it answered %s", WTERMSIG(status),
			    cmd);
		die("fuzz-peer: no answer to %s", cmd);
	}
	if (strcmp(line, "ok\n"))
		die("fuzz-peer: %s: %s", cmd, line);
}

/* fuzz-peer is beside this program, or where $ZDEV_FUZZ_PEER says. */
static void start_peer(const char *argv0)
{
	char path[PATH_MAX], self[PATH_MAX];
	const char *env = getenv("ZDEV_FUZZ_PEER");
	int to_peer[2], from_peer[2];
	posix_spawn_file_actions_t fa;
	char *args[] = { path, NULL };
	extern char **environ;

	if (env) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		snprintf(self, sizeof(self), "%s", argv0);
		snprintf(path, sizeof(path), "%s/fuzz-peer", dirname(self));
	}
	if (pipe2(to_peer, O_CLOEXEC) || pipe2(from_peer, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to_peer[0], 0);
	posix_spawn_file_actions_adddup2(&fa, from_peer[1], 1);
	if (posix_spawn(&peer_pid, path, &fa, NULL, args, environ))
		die("cannot start %s", path);
	posix_spawn_file_actions_destroy(&fa);
	close(to_peer[0]);
	close(from_peer[1]);
	peer_in = to_peer[1];
	peer_out = from_peer[0];
	peer_ask("setup\n");
}

/* ---- what an input's datagrams may carry ---- */

static char *map_arena(void)
{
	char *p = mmap(NULL, ARENA_LEN + 2 * GUARD_LEN + WINDOW_LEN, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	/* 2 MiB-aligned, so that its windows can be device THPs. */
	a = (char *)(((uintptr_t)p + GUARD_LEN + WINDOW_LEN - 1) & ~(WINDOW_LEN - 1));
	return a;
}

/* A fresh arena in place: nothing of the last input's stays in it. zdevd
 * registered it with a uffd that is gone or unregistered by now, so that
 * unmapping it raises no event that nobody would read. */
static void renew_arena(void)
{
	if (mmap(arena, ARENA_LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	madvise(arena, ARENA_LEN, MADV_HUGEPAGE);
}

static void make_fixed_fds(void)
{
	char path[sizeof(tmpdir) + 16];
	int p[2];

	snprintf(path, sizeof(path), "%s/file", tmpdir);
	fixed_fds[FD_FILE] = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	fixed_fds[FD_PIPE] = p[0];
	fixed_fds[FD_MEMFD] = memfd_create("fuzz", MFD_CLOEXEC);
	fixed_fds[FD_UFFD_USED] = uffd_create(0);
	if (fixed_fds[FD_UFFD_USED] < 0)
		fixed_fds[FD_UFFD_USED] = uffd_create(UFFD_USER_MODE_ONLY);
	uffd_handshake(fixed_fds[FD_UFFD_USED], 0, NULL, NULL);
	if (fixed_fds[FD_FILE] < 0 || fixed_fds[FD_MEMFD] < 0 || fixed_fds[FD_UFFD_USED] < 0)
		die("the fds to send");
}

static int fd_to_send(struct input_state *st, unsigned int choice)
{
	if (choice != FD_UFFD)
		return choice < FD_CHOICES ? fixed_fds[choice] : -1;
	if (st->uffd < 0) {
		st->uffd = uffd_create(0);
		if (st->uffd < 0)
			st->uffd = uffd_create(UFFD_USER_MODE_ONLY);
		if (st->uffd < 0)
			die("userfaultfd: %s", strerror(-st->uffd));
	}
	return st->uffd;
}

/* ---- fixing up what no input can know ---- */

static uint64_t load64(const uint8_t *m, size_t len, size_t off, bool *ok)
{
	uint64_t v = 0;

	*ok = off + sizeof(v) <= len;
	if (*ok)
		memcpy(&v, m + off, sizeof(v));
	return v;
}

static void store64(uint8_t *m, size_t off, uint64_t v)
{
	memcpy(m + off, &v, sizeof(v));
}

/* A user-space address lands in the arena, at the same offset within a page. */
static uint64_t to_arena(uint64_t v)
{
	uint64_t a = (uint64_t)(uintptr_t)arena;

	if (v == 0 || v >= USER_ADDR_END || (v >= a && v - a < ARENA_LEN))
		return v;
	return (uint64_t)(uintptr_t)arena + v % ARENA_LEN;
}

static void fix_address(uint8_t *m, size_t len, size_t off)
{
	bool ok;
	uint64_t v = load64(m, len, off, &ok);

	if (ok)
		store64(m, off, to_arena(v));
}

/* The pages a request may reach after its address and its buffer's: no
 * more than the arena holds past either, unless zdevd's own range check
 * refuses the count anyway. */
static void fix_npages(uint8_t *m, size_t len, int type)
{
	const uint64_t end = (uint64_t)(uintptr_t)arena + ARENA_LEN;
	bool ok_addr, ok_n, ok_buf;
	uint64_t addr = load64(m, len, offsetof(struct zmsg_req, addr), &ok_addr);
	uint64_t n = load64(m, len, offsetof(struct zmsg_req, npages), &ok_n);
	uint64_t buf = load64(m, len, offsetof(struct zmsg_req, buf), &ok_buf);
	uint64_t room = UINT64_MAX;

	if (!ok_n || n == 0 || n > (1ull << 45))
		return;
	if (ok_addr && addr >= (uint64_t)(uintptr_t)arena && addr < end)
		room = (end - addr) / PG_SIZE;
	/* READ and WRITE move npages pages through buf, SNAPSHOT a byte each. */
	if (ok_buf && buf >= (uint64_t)(uintptr_t)arena && buf < end &&
	    (type == ZMSG_READ || type == ZMSG_WRITE || type == ZMSG_SNAPSHOT)) {
		uint64_t r = type == ZMSG_SNAPSHOT ? end - buf : (end - buf) / PG_SIZE;

		room = r < room ? r : room;
	}
	if (n > room)
		store64(m, offsetof(struct zmsg_req, npages), room ? room : 1);
}

static bool is_request(int type)
{
	switch (type) {
	case ZMSG_OPEN: case ZMSG_CLOSE: case ZMSG_MIGRATE_TO_DEV: case ZMSG_MIGRATE_TO_SYS:
	case ZMSG_READ: case ZMSG_WRITE: case ZMSG_SNAPSHOT: case ZMSG_RELEASE:
	case ZMSG_SET_FLAGS: case ZMSG_STATS: case ZMSG_STATUS: case ZMSG_EXCLUSIVE:
	case ZMSG_CHECK_EXCLUSIVE: case ZMSG_ATOMIC_ADD: case ZMSG_XMOVED: case ZMSG_RESCUE:
	case ZMSG_EXCLUSIVE_HELD: case ZMSG_FORK_PREPARE: case ZMSG_DEVICE_STATUS:
	case ZMSG_CLIENTS:
		return true;
	default:
		return false;
	}
}

static void fix_up(struct input_state *st, uint8_t *m, size_t len)
{
	struct zmsg_hdr h;
	bool ok;

	if (len < sizeof(h))
		return;
	memcpy(&h, m, sizeof(h));
	if (h.type == ZMSG_UNPLUG || h.type == ZMSG_PLUG) {
		/* An administrator's commands, on every client's device at
		 * once (test-unplug stresses them): here they ask for STATUS,
		 * so that the peer's pages stay where it left them. */
		h.type = ZMSG_STATUS;
		memcpy(m, &h, sizeof(h));
	}
	if (h.type == ZMSG_HELLO) {
		int32_t pid;

		if (len >= offsetof(struct zmsg_hello, pid) + sizeof(pid)) {
			memcpy(&pid, m + offsetof(struct zmsg_hello, pid), sizeof(pid));
			if (pid == 0)
				pid = getpid();
			memcpy(m + offsetof(struct zmsg_hello, pid), &pid, sizeof(pid));
		}
	} else if (h.type == ZMSG_UFFD) {
		if (load64(m, len, offsetof(struct zmsg_req, addr), &ok) == 0 && ok)
			store64(m, offsetof(struct zmsg_req, addr), st->proof_addr);
	} else if (is_request(h.type)) {
		fix_address(m, len, offsetof(struct zmsg_req, addr));
		fix_address(m, len, offsetof(struct zmsg_req, buf));
		/* EXCLUSIVE's and CHECK_EXCLUSIVE's arg is the client's
		 * exclusive-page map; ATOMIC_ADD's is its delta. */
		if (h.type == ZMSG_EXCLUSIVE || h.type == ZMSG_CHECK_EXCLUSIVE)
			fix_address(m, len, offsetof(struct zmsg_req, arg));
		fix_npages(m, len, h.type);
		st->released |= h.type == ZMSG_RELEASE;
	} else if (h.type == ZMSG_ZAPPED || h.type == ZMSG_ANONYMIZED) {
		if (load64(m, len, offsetof(struct zmsg_zap, addr), &ok) == 0 && ok &&
		    len >= offsetof(struct zmsg_zap, len) + sizeof(uint64_t)) {
			store64(m, offsetof(struct zmsg_zap, addr), st->zap_addr);
			store64(m, offsetof(struct zmsg_zap, len), st->zap_len);
		}
		fix_address(m, len, offsetof(struct zmsg_zap, addr));
	} else if (h.type == ZMSG_XMAP_DONE) {
		if (load64(m, len, offsetof(struct zmsg_xmap, addr), &ok) == 0 && ok &&
		    len >= offsetof(struct zmsg_xmap, len) + sizeof(uint64_t)) {
			uint32_t op;

			memcpy(&op, m + offsetof(struct zmsg_xmap, op), sizeof(op));
			if (op == 0)
				memcpy(m + offsetof(struct zmsg_xmap, op), &st->xmap.op, sizeof(op));
			store64(m, offsetof(struct zmsg_xmap, addr), st->xmap.addr);
			store64(m, offsetof(struct zmsg_xmap, len), st->xmap.len);
		}
		fix_address(m, len, offsetof(struct zmsg_xmap, addr));
	} else if (h.type == ZMSG_STORED) {
		if (load64(m, len, offsetof(struct zmsg_store, id), &ok) == 0 && ok)
			store64(m, offsetof(struct zmsg_store, id), st->store_id);
	}
}

/* A ZAPPED that says it zapped what zdevd asked is made true, as libzdev
 * would have: those pages are the device's now, and the CPU's copies go. */
static void zap_if_answered(struct input_state *st, const uint8_t *m, size_t len)
{
	struct zmsg_zap z;
	uint64_t a = (uint64_t)(uintptr_t)arena;

	if (len != sizeof(z))
		return;
	memcpy(&z, m, sizeof(z));
	if (z.hdr.type != ZMSG_ZAPPED || z.status || z.addr != st->zap_addr ||
	    z.len != st->zap_len || z.addr < a || z.len > ARENA_LEN || z.addr - a > ARENA_LEN - z.len)
		return;
	madvise((void *)(uintptr_t)z.addr, z.len, MADV_DONTNEED);
}

/* ---- one input ---- */

static int connect_daemon(void)
{
	int fd = zmsg_connect(d.cfg.socket_path);

	if (fd < 0)
		die("connect: %s", strerror(-fd));
	return fd;
}

/* What zdevd sent: the proof page mapped where HELLO_OK says, a ZAP noted,
 * every fd closed. false when the connection is over. */
static bool take_message(struct input_state *st, int flags)
{
	union zmsg m;
	int fd, type = zmsg_recv_flags(st->sock, &m, &fd, flags);

	if (fd >= 0)
		close(fd);
	if (type == -EAGAIN)
		return true;
	if (verbose && type < 0)
		fprintf(stderr, "fuzz-session: <- %s\n", strerror(-type));
	if (type < 0)
		return false;
	if (verbose)
		fprintf(stderr, "fuzz-session: <- %s status %d\n", zmsg_type_name(type),
			type == ZMSG_REPLY ? m.reply.status : m.hello_ok.status);
	if (type == ZMSG_HELLO_OK && m.hello_ok.proof_addr && !st->proof_page) {
		st->proof_addr = m.hello_ok.proof_addr;
		st->proof_page = mmap((void *)(uintptr_t)st->proof_addr, PG_SIZE,
				      PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (st->proof_page == MAP_FAILED)
			st->proof_page = NULL;
	} else if (type == ZMSG_ZAP || type == ZMSG_ANONYMIZE) {
		st->zap_addr = m.zap.addr;
		st->zap_len = m.zap.len;
	} else if (type == ZMSG_XMAP) {
		st->xmap = m.xmap;
	} else if (type == ZMSG_STORE) {
		st->store_id = m.store.id;
	}
	return true;
}

/* Waits for zdevd's answer to a datagram, then takes whatever else is
 * there: false when the connection is over. */
static bool take_answer(struct input_state *st, size_t n)
{
	struct pollfd p = { .fd = st->sock, .events = POLLIN };
	int ret;

	do
		ret = poll(&p, 1, ANSWER_TIMEOUT_MS);
	while (ret < 0 && errno == EINTR);
	if (ret == 0)
		die("no answer to datagram %zu within %d ms", n, ANSWER_TIMEOUT_MS);
	if (!take_message(st, 0))
		return false;
	for (;;) {
		union zmsg peek;
		ssize_t got = recv(st->sock, &peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);

		if (got < 0 && errno == EAGAIN)
			return true;
		if (!take_message(st, MSG_DONTWAIT))
			return false;
	}
}

static void send_datagram(struct input_state *st, uint8_t *m, size_t len, unsigned int fd_choice)
{
	int fd = fd_to_send(st, fd_choice);

	if (verbose)
		fprintf(stderr, "fuzz-session: -> %s, %zu bytes, fd %d\n",
			len >= sizeof(struct zmsg_hdr) ? zmsg_type_name(((struct zmsg_hdr *)m)->type) : "-",
			len, fd);
	/* Refused (the connection is over, or too long): the answer says. */
	(void)zmsg_send_bytes(st->sock, m, len, fd, MSG_DONTWAIT);
}

/* The end of the input: the connection closed from our side, and zdevd's
 * read to its end, which comes when zdevd shuts the connection down. */
static void end_connection(struct input_state *st)
{
	struct pollfd p = { .fd = st->sock, .events = POLLIN };

	shutdown(st->sock, SHUT_WR);
	for (;;) {
		int ret = poll(&p, 1, ANSWER_TIMEOUT_MS);

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret == 0)
			die("zdevd kept the connection open after its end");
		if (!take_message(st, MSG_DONTWAIT))
			break;
	}
	close(st->sock);
}

static unsigned int sessions_now(void)
{
	return atomic_load_explicit(&d.nsessions, memory_order_acquire);
}

/* zdevd shuts a connection down at once, and the loop frees its session
 * after: until then, the session holds the mm. */
static void wait_session_freed(void)
{
	for (int waited = 0; sessions_now() != sessions_baseline; waited++) {
		if (waited * 100 >= ANSWER_TIMEOUT_MS * 1000)
			die("%u sessions after the input, %u before", sessions_now(),
			    sessions_baseline);
		usleep(100);
	}
}

/* This process, as far as zdevd knows it, is gone: what it registered
 * unregistered, its device pages freed, its proof page unmapped. */
static void forget_client(struct input_state *st)
{
	struct zmm *mm = clients_find(&d, getpid());
	struct uffdio_range all = { .start = (uint64_t)(uintptr_t)arena, .len = ARENA_LEN };

	if (mm) {
		clients_exit(&d, mm);
		zmm_put(mm);
	}
	if (st->uffd >= 0) {
		/* zdevd's copy of the uffd may outlive the mm a while: no
		 * registration of it may outlive the input. */
		ioctl(st->uffd, UFFDIO_UNREGISTER, &all);
		close(st->uffd);
	}
	if (st->proof_page)
		munmap(st->proof_page, PG_SIZE);
	renew_arena();
}

/* ---- what must hold after each input ---- */

static unsigned int fds_open(void)
{
	DIR *dir = opendir("/proc/self/fd");
	unsigned int n = 0;

	if (!dir)
		die("/proc/self/fd: %s", strerror(errno));
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

static void list_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		char path[300], target[PATH_MAX];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			fprintf(stderr, "fuzz-session: fd %s: %s\n", e->d_name, target);
		}
	}
	if (dir)
		closedir(dir);
}

/* Every file the input made zdevd open is closed again, once the loop has
 * dropped what it held of the process. */
static void wait_fds_closed(void)
{
	for (int waited = 0; fds_open() != fds_baseline; waited++) {
		if (waited * 100 >= ANSWER_TIMEOUT_MS * 1000) {
			list_fds();
			die("%u files open after the input, %u before", fds_open(), fds_baseline);
		}
		usleep(100);
	}
}

static void check_daemon(void)
{
	for (unsigned int i = 0; i < d.devs.ndevices; i++) {
		struct refpool_violation v;
		struct refpool_stats s;

		if (refpool_first_violation(d.devs.dev[i].pool, &v))
			die("device %u: the pool's debug mode saw %s", i, refpool_bug_name(v.bug));
		refpool_get_stats(d.devs.dev[i].pool, &s);
		if (s.pages_used != pool_baseline[i].pages_used)
			die("device %u: %llu pool pages in use after the input, %llu before", i,
			    (unsigned long long)s.pages_used,
			    (unsigned long long)pool_baseline[i].pages_used);
	}
	/* The peer asks zdevd: it still answers, and the peer's state is whole. */
	peer_ask("check\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char where[256];

	(void)argc;
	/* The sanitizers' symbolizer, which libFuzzer starts the first time
	 * it names a function, keeps two pipes open: it starts now, before
	 * the files open are counted. */
	__sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", where, sizeof(where));
	start_daemon();
	start_peer((*argv)[0]);
	arena = map_arena();
	renew_arena();
	make_fixed_fds();
	for (unsigned int i = 0; i < d.devs.ndevices; i++)
		refpool_get_stats(d.devs.dev[i].pool, &pool_baseline[i]);
	sessions_baseline = sessions_now();
	fds_baseline = fds_open();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input_state st = { .uffd = -1 };
	uint8_t m[sizeof(union zmsg) + 64];
	size_t n = 0;

	st.sock = connect_daemon();
	while (size >= 3) {
		size_t len = data[0] | (size_t)data[1] << 8;
		unsigned int fd_choice = data[2];

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		/* Longer than any message: what is past it makes no difference. */
		memcpy(m, data, len < sizeof(m) ? len : sizeof(m));
		data += len;
		size -= len;
		if (len > sizeof(m))
			len = sizeof(m);
		fix_up(&st, m, len);
		zap_if_answered(&st, m, len);
		send_datagram(&st, m, len, fd_choice);
		if (!take_answer(&st, n++))
			break;
	}
	end_connection(&st);
	wait_session_freed();
	forget_client(&st);
	if (st.released)
		peer_ask("restore\n");
	check_daemon();
	/* The peer's moves back to the device may have given it new stores,
	 * which zdevd keeps open. */
	if (st.released)
		fds_baseline = fds_open();
	else
		wait_fds_closed();
	return 0;
}
