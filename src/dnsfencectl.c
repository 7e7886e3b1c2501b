/* dnsfencectl: talks to a running dnsfenced over its control socket. It
 * sends one request and prints what the daemon answers: OUT frames on
 * stdout, ERR frames on stderr, and exits with the END frame's status.
 * Everything it receives is checked (ctlproto.c); anything else from the
 * socket is a protocol error, exit 3. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "config.h"
#include "ctlproto.h"

enum {
	EXIT_USAGE = 2,
	EXIT_NODAEMON = 3,
};

static const char usage_text[] =
	"usage: dnsfencectl [-c FILE | -s SOCKET] [-j] COMMAND [ARGS]\n"
	"  -c FILE     take the socket path from FILE's `control:`\n"
	"              (default: " DNSFENCE_DEFAULT_CONFIG ")\n"
	"  -s SOCKET   the control socket itself\n"
	"  -j          JSON output\n"
	"commands:\n"
	"  status\n"
	"  list [VM]\n"
	"  why VM ADDRESS [PROTO/PORT]\n"
	"  reload\n"
	"  flush VM\n"
	"  log [-f]\n"
	"  suggest VM\n"
	"  metrics [--prometheus]\n";

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fputs("dnsfencectl: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputs("\n", stderr);
	}
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static void
print_stderr(const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

/* The socket path from a configuration file: its `control:` only, so
 * that a member of control-group needs to read nothing else. NULL
 * (problems printed) when the file does not load. */
static char *
socket_from_config(const char *file)
{
	struct diag d = {0};
	char *path = config_control_path(file, &d);

	if (path == NULL) {
		diag_print(&d, print_stderr);
		fprintf(stderr,
			"dnsfencectl: %s does not load: cannot tell where "
			"the control socket is (use -s SOCKET)\n",
			file);
	}
	diag_finish(&d);
	return path;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "dnsfencectl: %s: socket path too long\n",
			path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "dnsfencectl: socket: %s\n", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr,
			"dnsfencectl: cannot connect to %s: %s (is dnsfenced "
			"running?)\n",
			path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The request goes out whole; a daemon that refuses the peer closes
 * without reading, so a failed send still leaves its answer to read. */
static void
send_request(int fd, const uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* Read exactly len bytes: 1, 0 at EOF before the first byte, -1 on an
 * error or EOF in the middle. */
static int
read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

/* Write it all to fd (stdout or stderr). false when the reader is gone. */
static bool
write_full(int fd, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Print the daemon's frames until its END: that status, or 3. */
static int
read_replies(int fd)
{
	static uint8_t buf[CTL_FRAME_MAX];
	uint8_t hdr[CTL_FRAME_HDR];
	struct ctl_frame f;
	const char *why;
	int rc;

	for (;;) {
		rc = read_full(fd, hdr, sizeof(hdr));
		if (rc == 0) {
			fprintf(stderr,
				"dnsfencectl: the daemon closed the "
				"connection\n");
			return EXIT_NODAEMON;
		}
		why = "truncated frame";
		if (rc < 0 || ctl_frame_parse(&f, hdr, &why) < 0 ||
			(f.len > 0 && read_full(fd, buf, f.len) != 1)) {
			fprintf(stderr,
				"dnsfencectl: bad answer from the daemon: %s\n",
				why);
			return EXIT_NODAEMON;
		}
		if (f.kind == CTL_FRAME_END)
			return f.status;
		if (!write_full(f.kind == CTL_FRAME_OUT ? 1 : 2, buf, f.len)) {
			/* stdout closed (`| head`): nobody is reading. */
			return 0;
		}
	}
}

struct opts {
	const char *conf, *sock;
	uint32_t flags;
	enum ctl_cmd cmd;
	int argc;
	const char *argv[CTL_ARGS_MAX];
};

/* The command and its arguments (argv[0] is the command); `log` takes
 * -f after it, `metrics` --prometheus. 0 or the usage status. */
static int
parse_command(struct opts *o, int argc, char **argv)
{
	if (argc < 1)
		return usage("no command");
	if ((o->cmd = ctl_cmd_by_name(argv[0])) == 0)
		return usage("unknown command '%s'", argv[0]);
	for (int i = 1; i < argc; i++) {
		if (o->cmd == CTL_LOG && strcmp(argv[i], "-f") == 0 &&
			!(o->flags & CTL_F_FOLLOW)) {
			o->flags |= CTL_F_FOLLOW;
			continue;
		}
		if (o->cmd == CTL_METRICS &&
			strcmp(argv[i], "--prometheus") == 0 &&
			!(o->flags & CTL_F_PROMETHEUS)) {
			o->flags |= CTL_F_PROMETHEUS;
			continue;
		}
		if (o->argc == CTL_ARGS_MAX)
			return usage("%s: too many arguments", argv[0]);
		if (strlen(argv[i]) > CTL_ARG_MAX)
			return usage("argument too long (%d bytes at most)",
				CTL_ARG_MAX);
		o->argv[o->argc++] = argv[i];
	}
	if (!ctl_argc_ok(o->cmd, o->argc))
		return usage("%s: wrong number of arguments", argv[0]);
	return 0;
}

static int
parse_opts(struct opts *o, int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "+c:s:jh")) != -1) {
		switch (ch) {
		case 'c':
			o->conf = optarg;
			break;
		case 's':
			o->sock = optarg;
			break;
		case 'j':
			o->flags |= CTL_F_JSON;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			return usage(NULL);
		}
	}
	if (o->conf != NULL && o->sock != NULL)
		return usage("-c and -s exclude each other");
	return parse_command(o, argc - optind, argv + optind);
}

/* -s, else -c's `control:`, else the default configuration's when there
 * is one, else the built-in default. */
static char *
socket_path(const struct opts *o)
{
	if (o->sock != NULL)
		return xstrdup(o->sock);
	if (o->conf != NULL)
		return socket_from_config(o->conf);
	if (access(DNSFENCE_DEFAULT_CONFIG, F_OK) == 0)
		return socket_from_config(DNSFENCE_DEFAULT_CONFIG);
	return xstrdup(DEFAULT_CONTROL);
}

int
main(int argc, char **argv)
{
	uint8_t req[CTL_REQ_MAX];
	struct opts o = {0};
	char *path;
	int fd, len, rc;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("dnsfencectl %s\n", DNSFENCE_VERSION);
		return 0;
	}
	if ((rc = parse_opts(&o, argc, argv)) != 0)
		return rc;
	len = ctl_request_encode(req, sizeof(req), o.cmd, o.flags, o.argc,
		o.argv);
	if (len < 0)
		return usage("%s: invalid request", ctl_cmd_name(o.cmd));
	signal(SIGPIPE, SIG_IGN);
	if ((path = socket_path(&o)) == NULL)
		return EXIT_NODAEMON;
	fd = connect_to(path);
	free(path);
	if (fd < 0)
		return EXIT_NODAEMON;
	send_request(fd, req, (size_t)len);
	rc = read_replies(fd);
	close(fd);
	return rc;
}
