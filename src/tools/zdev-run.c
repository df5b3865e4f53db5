/* SPDX-License-Identifier: MIT */
/* zdev-run: runs a program with the zdev shim against a zdevd, its own or a
 * running one, and sums up what the program's processes saw. See
 * zdev-run(1). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "tools/plot.h"
#include "tools/zdev-run.h"
#include "units.h"
#include "zdevd_limits.h"

static const char usage[] =
	"usage: zdev-run [--policy none|evict|stress] [--devices N] [--memory SIZE] [--seed S]\n"
	"                [--memory-type private|coherent[,...]] [--warm SIZE]\n"
	"                [--link [DEV=]GBPS|pcie4|pcie5|cxl] [--fault-latency [DEV=]USEC]\n"
	"                [--stats-json FILE] [--trace FILE] [--plot FILE.svg]\n"
	"                [--socket PATH] [--quiet] [--] PROGRAM [ARGS...]\n"
	"       zdev-run --version | --help\n";

struct run_opts {
	const char *policy;
	unsigned int ndevices;
	const char *memory;
	const char *memory_type;	/* --memory-type as given, or NULL */
	const char *warm;		/* --warm as given, or its default */
	unsigned int ntypes;		/* the types it names */
	char layout[40];		/* the default memory_type */
	/* --link and --fault-latency, for zdevd to check and apply */
	const char *model[RUN_MODEL_ARGS_MAX + 1];
	unsigned int nmodel;
	bool daemon_opts;		/* --devices, --memory, --memory-type, --warm or the model given */
	bool seed_set;
	uint64_t seed;
	const char *stats_json;
	const char *socket;		/* a running zdevd's, or NULL */
	bool socket_given;		/* with --socket, not from ZDEV_SOCKET */
	const char *trace;		/* --trace FILE, or NULL */
	const char *plot;		/* --plot FILE.svg, or NULL */
	bool quiet;
	char **argv;			/* the program and its arguments */
};

volatile sig_atomic_t run_hurry;
static volatile sig_atomic_t program_pid;

/* The signals zdev-run handles, and the dispositions and mask it started
 * with, which the program gets as they were. */
static const int handled[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP };
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))
static struct sigaction saved_act[NHANDLED];
static sigset_t saved_mask;

static void note_signal(int sig)
{
	run_hurry = sig;
}

static void forward_signal(int sig)
{
	pid_t pid = program_pid;

	if (pid > 0)
		kill(pid, sig);
}

static void save_signals(void)
{
	for (size_t i = 0; i < NHANDLED; i++)
		sigaction(handled[i], NULL, &saved_act[i]);
	sigprocmask(SIG_SETMASK, NULL, &saved_mask);
}

/*
 * While the program runs, zdev-run ignores SIGINT and SIGQUIT, as
 * system(3) does: the terminal sends them to the program too, which shares
 * zdev-run's process group; SIGTERM and SIGHUP, which may be meant for
 * zdev-run alone, are passed on. Otherwise each of them makes zdev-run
 * finish early. A signal zdev-run started with ignored stays ignored.
 */
static void catch_signals(bool program_runs)
{
	for (size_t i = 0; i < NHANDLED; i++) {
		struct sigaction sa = { .sa_flags = SA_RESTART };
		int sig = handled[i];

		if (saved_act[i].sa_handler == SIG_IGN)
			continue;
		if (!program_runs)
			sa.sa_handler = note_signal;
		else if (sig == SIGINT || sig == SIGQUIT)
			sa.sa_handler = SIG_IGN;
		else
			sa.sa_handler = forward_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(sig, &sa, NULL);
	}
}

/* "zdev-run: error: NAME: 'ARG': why" */
static int complain(const char *name, const char *arg, const char *why)
{
	log_err("%s: '%s': %s", name, arg, why);
	return -EINVAL;
}

static int parse_seed(const char *name, const char *arg, uint64_t *out)
{
	char why[UNITS_WHY_MAX];

	if (units_parse_count(arg, 0, UINT64_MAX, out, why, sizeof(why)))
		return complain(name, arg, why);
	return 0;
}

/* --devices and --memory, by the rules of the zdevd they are passed to. */
static int parse_devices(const char *arg, unsigned int *out)
{
	char why[UNITS_WHY_MAX];
	uint64_t n;

	if (units_parse_count(arg, 1, ZDEV_MAX_DEVICES, &n, why, sizeof(why)))
		return complain("--devices", arg, why);
	*out = (unsigned int)n;
	return 0;
}

static int check_size(const char *option, const char *arg, const struct size_rule *rule)
{
	char why[UNITS_WHY_MAX];
	size_t bytes;

	if (units_parse_size(arg, rule, &bytes, why, sizeof(why)))
		return complain(option, arg, why);
	return 0;
}

/* --memory-type: private or coherent, comma-separated, at most one per
 * device; zdevd takes it as it is. */
static int check_memory_type(const char *arg, unsigned int *ntypes)
{
	const char *p = arg;

	for (*ntypes = 1;; (*ntypes)++) {
		size_t len = strcspn(p, ",");

		if (!(len == 7 && !strncmp(p, "private", len)) &&
		    !(len == 8 && !strncmp(p, "coherent", len)))
			return complain("--memory-type", arg,
					"each type must be 'private' or 'coherent'");
		p += len;
		if (!*p++)
			break;
	}
	if (*ntypes > ZDEV_MAX_DEVICES)
		return complain("--memory-type", arg, "names more devices than zdevd can have");
	return 0;
}

/*
 * Without --memory-type, zdev-run's zdevd has the devices of the kernel's
 * test driver (test_hmm), which the shim's /dev/hmm_dmirrorN are: 0 and 1
 * device-private, 2 and 3 device-coherent, so that a program written
 * against the driver finds them where it expects. --devices N keeps the
 * first N; devices past the fourth are private.
 */
static const char *driver_layout(unsigned int ndevices, char *buf, size_t len)
{
	static const char *const type[] = { "private", "private", "coherent", "coherent" };
	size_t off = 0;

	for (unsigned int i = 0; i < ndevices && i < 4; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", type[i]);
	return buf;
}

static bool valid_policy(const char *p)
{
	return !strcmp(p, "none") || !strcmp(p, "evict") || !strcmp(p, "stress");
}

/* What the options leave to the environment; a seed for a stress run that
 * has none, so that the summary can name the one run to repeat. */
static int env_defaults(struct run_opts *o)
{
	const char *v;

	if (!o->policy)
		o->policy = (v = getenv("ZDEV_POLICY")) && *v ? v : "none";
	if (!valid_policy(o->policy)) {
		log_err("policy '%s': none, evict or stress", o->policy);
		return -EINVAL;
	}
	if (!o->seed_set && (v = getenv("ZDEV_SEED")) && *v) {
		if (parse_seed("ZDEV_SEED", v, &o->seed))
			return -EINVAL;
		o->seed_set = true;
	}
	if (!o->seed_set && !strcmp(o->policy, "stress")) {
		if (getrandom(&o->seed, sizeof(o->seed), 0) != sizeof(o->seed))
			o->seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
		o->seed_set = true;
	}
	/* A trace is written by the zdevd zdev-run starts: a running one
	 * named by the environment is not used then. */
	if (!o->socket && !o->trace && !o->plot && (v = getenv("ZDEV_SOCKET")) && *v)
		o->socket = v;
	return 0;
}

/* --link or --fault-latency, passed on as given: zdevd says what is wrong
 * with a value, and zdev-run that its zdevd did not start. */
static int add_model_arg(struct run_opts *o, const char *option, const char *arg)
{
	if (o->nmodel + 2 > RUN_MODEL_ARGS_MAX)
		return complain(option, arg, "too many --link and --fault-latency options");
	o->model[o->nmodel++] = option;
	o->model[o->nmodel++] = arg;
	o->daemon_opts = true;
	return 0;
}

/* 0; 1 after --help or --version; -EINVAL with a message on a bad command line. */
static int parse_opts(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "devices", required_argument, NULL, 'd' },
		{ "memory", required_argument, NULL, 'm' },
		{ "memory-type", required_argument, NULL, 't' },
		{ "warm", required_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 's' },
		{ "link", required_argument, NULL, 'L' },
		{ "fault-latency", required_argument, NULL, 'F' },
		{ "stats-json", required_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 'S' },
		{ "trace", required_argument, NULL, 'T' },
		{ "plot", required_argument, NULL, 'P' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct size_rule memory_rule = ZDEVD_MEMORY_RULE, warm_rule = ZDEVD_WARM_RULE;
	int c;

	*o = (struct run_opts){ .ndevices = RUN_DEVICES_DEFAULT, .memory = "1G",
				.warm = RUN_WARM_DEFAULT };
	/* "+": the first word that is no option is the program; what follows
	 * is its own. */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': o->policy = optarg; break;
		case 'j': o->stats_json = optarg; break;
		case 'S': o->socket = optarg; o->socket_given = true; break;
		case 'T': o->trace = optarg; break;
		case 'P': o->plot = optarg; break;
		case 'q': o->quiet = true; break;
		case 'h': fputs(usage, stdout); return 1;
		case 'V': printf("zdev-run (zdev) %s\n", PACKAGE_VERSION); return 1;
		case 'd':
			if (parse_devices(optarg, &o->ndevices))
				return -EINVAL;
			o->daemon_opts = true;
			break;
		case 'm':
			if (check_size("--memory", optarg, &memory_rule))
				return -EINVAL;
			o->memory = optarg;
			o->daemon_opts = true;
			break;
		case 'w':
			if (check_size("--warm", optarg, &warm_rule))
				return -EINVAL;
			o->warm = optarg;
			o->daemon_opts = true;
			break;
		case 't':
			if (check_memory_type(optarg, &o->ntypes))
				return -EINVAL;
			o->memory_type = optarg;
			o->daemon_opts = true;
			break;
		case 'L':
		case 'F':
			if (add_model_arg(o, c == 'L' ? "--link" : "--fault-latency", optarg))
				return -EINVAL;
			break;
		case 's':
			if (parse_seed("--seed", optarg, &o->seed))
				return -EINVAL;
			o->seed_set = true;
			break;
		default: fputs(usage, stderr); return -EINVAL;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return -EINVAL;
	}
	if (o->ntypes > o->ndevices) {
		char why[64];

		snprintf(why, sizeof(why), "names %u devices, but --devices is %u", o->ntypes,
			 o->ndevices);
		return complain("--memory-type", o->memory_type, why);
	}
	if (o->socket_given && (o->trace || o->plot)) {
		log_err("--%s: the trace is written by a zdevd of zdev-run's own, which --socket "
			"leaves out; without --socket zdev-run starts one, or start zdevd --trace "
			"FILE yourself", o->trace ? "trace" : "plot");
		return -EINVAL;
	}
	if (!o->memory_type)
		o->memory_type = driver_layout(o->ndevices, o->layout, sizeof(o->layout));
	o->argv = argv + optind;
	return env_defaults(o);
}

/* The environment the shim reads, in zdev-run's own: only the program is
 * started after this. 0 or -errno. */
static int set_program_env(const struct run_opts *o, const char *shim, const char *dir)
{
	const char *old = getenv("LD_PRELOAD");
	char stats[PATH_MAX + sizeof("/" RUN_STATS_NAME)], seed[24], *preload;
	int ret = 0;

	if (old && *old)
		ret = asprintf(&preload, "%s:%s", shim, old) < 0 ? -ENOMEM : 0;
	else
		ret = (preload = strdup(shim)) ? 0 : -ENOMEM;
	if (ret)
		return ret;
	snprintf(stats, sizeof(stats), "%s/" RUN_STATS_NAME, dir);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)o->seed);
	if (setenv("LD_PRELOAD", preload, 1) || setenv("ZDEV_SOCKET", o->socket, 1) ||
	    setenv("ZDEV_POLICY", o->policy, 1) || setenv("ZDEV_STATS_DIR", stats, 1) ||
	    (o->seed_set && setenv("ZDEV_SEED", seed, 1)))
		ret = -errno;
	free(preload);
	return ret;
}

/* The child's side of the fork: never returns. */
static void exec_program(char **argv, int err_fd)
{
	int err;

	for (size_t i = 0; i < NHANDLED; i++)
		sigaction(handled[i], &saved_act[i], NULL);
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	execvp(argv[0], argv);
	err = errno;
	if (write(err_fd, &err, sizeof(err)) != sizeof(err))
		_exit(RUN_EXIT_FAIL);
	_exit(err == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC);
}

/* Waits for the program to end. Its status as a shell gives it: the exit
 * status, or 128 + N when signal N killed it. */
static int wait_program(pid_t pid)
{
	siginfo_t si;
	int status;

	/* Not reaped yet: until program_pid is cleared, a signal forwarded
	 * late still names the program, not a process that took its pid. */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) && errno == EINTR)
		;
	program_pid = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Runs the program to its end in zdev-run's process group. Its status, or
 * RUN_EXIT_* with a message when it could not be run (*ran false). */
static int run_program(char **argv, bool *ran)
{
	int pipefd[2], err = 0, status;
	sigset_t fwd;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC)) {
		log_err("pipe: %s", strerror(errno));
		return RUN_EXIT_FAIL;
	}
	/* A signal to pass on waits until there is a pid to pass it to. */
	sigemptyset(&fwd);
	sigaddset(&fwd, SIGTERM);
	sigaddset(&fwd, SIGHUP);
	sigprocmask(SIG_BLOCK, &fwd, NULL);
	catch_signals(true);
	pid = fork();
	if (!pid) {
		close(pipefd[0]);
		exec_program(argv, pipefd[1]);
	}
	program_pid = pid > 0 ? pid : 0;
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	close(pipefd[1]);
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		status = RUN_EXIT_FAIL;
		goto out_close;
	}
	/* The summary may find standard error closed: not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	while ((n = read(pipefd[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	status = wait_program(pid);
	*ran = n != sizeof(err);
	if (!*ran)
		log_err("%s: %s", argv[0], strerror(err));
out_close:
	close(pipefd[0]);
	catch_signals(false);
	return status;
}

/* True when zdevd counted what the processes' statistics files did not:
 * a program that moves memory itself, through libzdev, under policy none,
 * where the shim opens no handle of its own to count with. */
static bool totals_count_more(const struct run_stats *t, const struct run_stats *st)
{
	return t->cpu_faults > st->cpu_faults || t->device_faults > st->device_faults ||
	       t->pages_to_device > st->pages_to_device ||
	       t->pages_to_system > st->pages_to_system ||
	       t->exclusive_grants > st->exclusive_grants ||
	       t->exclusive_revokes > st->exclusive_revokes;
}

/* Merges the statistics, removes dir, and reports. */
static void finish(const struct run_opts *o, const struct run_zdevd *z,
		   const struct run_zdevd_totals *totals, const char *dir, int status, bool ran)
{
	struct run_result r = {
		.exit_status = status, .program = o->argv[0], .policy = o->policy,
		.seed_set = o->seed_set, .seed = o->seed, .zdevd = z->stopped ? z : NULL,
	};
	struct run_stats st = { 0 };
	char stats[PATH_MAX + sizeof("/" RUN_STATS_NAME)];
	int ret;

	/* zdevd has closed the trace: it is whole. */
	if (o->plot && z->stopped && plot_trace("zdev-run", z->trace, o->plot))
		log_err("--plot %s: no picture", o->plot);
	snprintf(stats, sizeof(stats), "%s/" RUN_STATS_NAME, dir);
	/* The shim's mark that the program's processes had no kernel-mode
	 * faults and moved nothing (zdev-preload(7)). */
	r.fell_back = run_policy_fell_back(stats);
	ret = run_stats_load_dir(&st, stats);
	if (ret)
		log_warn("%s: %s: statistics incomplete", stats, strerror(-ret));
	if (totals && totals_count_more(&totals->counts, &st))
		r.totals = totals;
	run_remove_dir(dir);
	if (ran && !o->quiet)
		run_report_print(&st, &r);
	if (o->stats_json)
		run_report_json(o->stats_json, &st, &r);
	run_stats_free(&st);
}

/* Dies of sig as it would have without its handler, so that a shell sees
 * why. */
static void die_of(int sig)
{
	signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &saved_mask, NULL);
	raise(sig);
	exit(128 + sig);
}

/* What is needed before anything starts. 0, or -errno with a message. */
static int prepare(const struct run_opts *o, char *shim, char *zdevd)
{
	int ret;

	ret = run_find_shim(shim, PATH_MAX);
	if (ret || !o->socket)
		return ret ?: run_find_zdevd(zdevd, PATH_MAX);
	ret = run_zdevd_check(o->socket);
	if (ret)
		log_err("no zdevd accepts connections on %s (%s); without ZDEV_SOCKET and --socket, "
			"zdev-run starts a zdevd of its own", o->socket, strerror(-ret));
	else if (o->daemon_opts)
		log_warn("--devices, --memory, --memory-type, --warm, --link and --fault-latency are for "
			 "a zdevd of zdev-run's own: "
			 "the one on %s serves as it is", o->socket);
	return ret;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], shim[PATH_MAX], zdevd[PATH_MAX], trace[PATH_MAX + sizeof("/" RUN_TRACE_NAME)];
	struct run_zdevd z = { 0 };
	struct run_zdevd_totals totals;
	bool have_totals = false;
	struct run_opts o;
	int status = RUN_EXIT_FAIL;
	bool ran = false;
	int ret;

	save_signals();
	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret > 0 ? 0 : RUN_EXIT_FAIL;
	if (prepare(&o, shim, zdevd))
		return RUN_EXIT_FAIL;
	catch_signals(false);
	if (run_make_dir(dir, sizeof(dir)))
		return RUN_EXIT_FAIL;
	if (o.plot && !o.trace)
		snprintf(trace, sizeof(trace), "%s/" RUN_TRACE_NAME, dir);
	z.trace = o.trace ? o.trace : o.plot ? trace : NULL;
	if (!o.socket) {
		if (run_zdevd_start(&z, zdevd, dir, o.ndevices, o.memory, o.memory_type, o.warm,
				    o.model))
			goto out_remove_dir;
		o.socket = z.socket;
	}
	if (run_hurry)
		goto out_stop_zdevd;
	ret = set_program_env(&o, shim, dir);
	if (ret)
		log_err("environment: %s", strerror(-ret));
	else
		status = run_program(o.argv, &ran);
	/* Before the stop: every process of the program has exited, and
	 * zdevd's counters are the run's. */
	have_totals = ran && !run_hurry && !run_zdevd_totals(&z, &totals);
out_stop_zdevd:
	run_zdevd_stop(&z);
	finish(&o, &z, have_totals ? &totals : NULL, dir, status, ran);
	if (run_hurry && !ran)
		die_of(run_hurry);
	return status;
out_remove_dir:
	run_remove_dir(dir);
	if (run_hurry)
		die_of(run_hurry);
	return status;
}
