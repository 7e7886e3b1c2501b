/* probe: the test bed's traffic tool, so tests need nothing beyond iproute2.
 *
 *   probe serve ADDR PORT...            echo server, TCP and UDP on each port
 *   probe tcp [-s SRC] ADDR PORT MS     connect, expect "ok"; 0 if it works
 *   probe udp [-s SRC] ADDR PORT MS     one datagram, expect "ok" back
 *   probe talk ADDR PORT N GAP_MS       one TCP connection, N round trips
 *                                       GAP_MS apart; 0 if all of them work
 *   probe race DNS PORT NAME...         for each name: ask DNS (UDP) for its
 *                                       A record and, the instant the answer
 *                                       arrives, connect to it on tcp/PORT
 *                                       (one SYN: 900 ms); 0 if every
 *                                       connect works
 *   probe race -d N DNS PORT NAME...    the same, each query sent N times at
 *                                       once (N sockets): the connect follows
 *                                       the first of the N answers
 *
 * Exit status: 0 success, 1 the traffic did not pass, 2 usage/local error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 256

static int
sockaddr_of(const char *addr, const char *port, struct sockaddr_storage *ss,
	socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	int p = port ? atoi(port) : 0;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*s6);
		return 0;
	}
	fprintf(stderr, "probe: bad address %s\n", addr);
	exit(2);
}

static int
serve(int argc, char **argv)
{
	struct pollfd pfd[MAXFD];
	int kind[MAXFD]; /* 0 tcp listener, 1 udp, 2 tcp conn */
	int n = 0, one = 1;

	for (int i = 1; i < argc; i++) {
		for (int t = 0; t < 2; t++) {
			struct sockaddr_storage ss;
			socklen_t len;
			int fd;

			sockaddr_of(argv[0], argv[i], &ss, &len);
			fd = socket(ss.ss_family, t ? SOCK_DGRAM : SOCK_STREAM,
				0);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				sizeof(one));
			if (fd < 0 ||
				bind(fd, (struct sockaddr *)&ss, len) < 0 ||
				(!t && listen(fd, 64) < 0)) {
				perror("probe: bind");
				return 2;
			}
			pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
			kind[n++] = t;
		}
	}
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) < 0 && errno != EINTR)
			return 2;
		for (int i = 0; i < n; i++) {
			char buf[512];
			struct sockaddr_storage from;
			socklen_t flen = sizeof(from);
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (kind[i] == 0) {
				int c = accept(pfd[i].fd, NULL, NULL);

				if (c < 0)
					continue;
				if (n == MAXFD || write(c, "ok\n", 3) != 3) {
					close(c);
					continue;
				}
				pfd[n] = (struct pollfd){.fd = c,
					.events = POLLIN};
				kind[n++] = 2;
			} else if (kind[i] == 1) {
				r = recvfrom(pfd[i].fd, buf, sizeof(buf), 0,
					(struct sockaddr *)&from, &flen);
				if (r >= 0)
					sendto(pfd[i].fd, "ok\n", 3, 0,
						(struct sockaddr *)&from, flen);
			} else {
				r = read(pfd[i].fd, buf, sizeof(buf));
				if (r <= 0 ||
					write(pfd[i].fd, buf, (size_t)r) != r) {
					close(pfd[i].fd);
					pfd[i] = pfd[n - 1];
					kind[i] = kind[n - 1];
					n--;
					i--;
				}
			}
		}
	}
}

/* Wait up to ms for fd to become readable and read a reply. */
static int
await_reply(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char buf[64];

	if (poll(&p, 1, ms) <= 0)
		return -1;
	return read(fd, buf, sizeof(buf)) > 0 ? 0 : -1;
}

static int
client(int type, const char *src, const char *addr, const char *port, int ms)
{
	struct sockaddr_storage ss, sl;
	socklen_t len, llen;
	int fd;

	sockaddr_of(addr, port, &ss, &len);
	fd = socket(ss.ss_family, type | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 2;
	if (src) {
		sockaddr_of(src, NULL, &sl, &llen);
		if (bind(fd, (struct sockaddr *)&sl, llen) < 0) {
			perror("probe: bind source");
			return 2;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 &&
		errno != EINPROGRESS)
		return 1;
	if (type == SOCK_DGRAM && send(fd, "hi\n", 3, 0) != 3)
		return 1;
	return await_reply(fd, ms) == 0 ? 0 : 1;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
talk(const char *addr, const char *port, int n, int gap)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	sockaddr_of(addr, port, &ss, &len);
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0 ||
		await_reply(fd, 2000) < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		if (write(fd, "ping\n", 5) != 5 || await_reply(fd, 2000) < 0) {
			fprintf(stderr, "probe: round trip %d failed\n", i + 1);
			return 1;
		}
		if (i + 1 < n)
			sleep_ms(gap);
	}
	return 0;
}

/* A minimal A query; returns its length. */
static size_t
dns_query(uint8_t *b, const char *name, uint16_t id)
{
	size_t n = 12;
	const char *p = name;

	memset(b, 0, 12);
	b[0] = (uint8_t)(id >> 8);
	b[1] = (uint8_t)id;
	b[2] = 0x01; /* RD */
	b[5] = 1;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		b[n++] = (uint8_t)l;
		memcpy(b + n, p, l);
		n += l;
		p += l + (dot ? 1 : 0);
	}
	b[n++] = 0;
	b[n++] = 0;
	b[n++] = 1; /* A */
	b[n++] = 0;
	b[n++] = 1; /* IN */
	return n;
}

static int
skip_name(const uint8_t *b, size_t len, size_t *off)
{
	while (*off < len) {
		uint8_t c = b[*off];

		if (c == 0) {
			(*off)++;
			return 0;
		}
		if ((c & 0xC0) == 0xC0) {
			*off += 2;
			return 0;
		}
		*off += (size_t)c + 1;
	}
	return -1;
}

/* The first A record of an answer, or -1. */
static int
first_a(const uint8_t *b, size_t len, struct in_addr *a)
{
	size_t off = 12;
	int an = b[6] << 8 | b[7];

	if (len < 12 || (b[3] & 0xF) != 0 || skip_name(b, len, &off) < 0)
		return -1;
	off += 4;
	for (int i = 0; i < an; i++) {
		uint16_t type, rdlen;

		if (skip_name(b, len, &off) < 0 || off + 10 > len)
			return -1;
		type = (uint16_t)(b[off] << 8 | b[off + 1]);
		rdlen = (uint16_t)(b[off + 8] << 8 | b[off + 9]);
		off += 10;
		if (off + rdlen > len)
			return -1;
		if (type == 1 && rdlen == 4) {
			memcpy(a, b + off, 4);
			return 0;
		}
		off += rdlen;
	}
	return -1;
}

#define RACE_DUP_MAX 8

static int
race(const char *server, const char *port, int ndup, int n, char **names)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t len;
		uint8_t q[512], r[4096];
		struct in_addr a;
		char as[INET_ADDRSTRLEN];
		size_t ql = dns_query(q, names[i], (uint16_t)(i + 1));
		struct pollfd p[RACE_DUP_MAX];
		ssize_t rl = -1;
		int bad = 0;

		sockaddr_of(server, "53", &ss, &len);
		for (int d = 0; d < ndup; d++) {
			p[d].fd = socket(AF_INET, SOCK_DGRAM, 0);
			p[d].events = POLLIN;
			if (p[d].fd < 0 ||
				connect(p[d].fd, (struct sockaddr *)&ss, len) <
					0)
				bad = 1;
		}
		/* All at once: the resolver answers them together. */
		for (int d = 0; d < ndup && !bad; d++)
			if (send(p[d].fd, q, ql, 0) != (ssize_t)ql)
				bad = 1;
		if (!bad && poll(p, (nfds_t)ndup, 3000) > 0)
			for (int d = 0; d < ndup && rl < 0; d++)
				if (p[d].revents & POLLIN)
					rl = recv(p[d].fd, r, sizeof(r), 0);
		for (int d = 0; d < ndup; d++)
			if (p[d].fd >= 0)
				close(p[d].fd);
		if (rl < 12 || first_a(r, (size_t)rl, &a) < 0) {
			fprintf(stderr, "probe: %s: no answer\n", names[i]);
			failed++;
			continue;
		}
		/* No delay at all between the answer and the SYN. */
		inet_ntop(AF_INET, &a, as, sizeof(as));
		if (client(SOCK_STREAM, NULL, as, port, 900) != 0) {
			fprintf(stderr, "probe: %s -> %s: connect failed\n",
				names[i], as);
			failed++;
		}
	}
	printf("%d of %d connects failed\n", failed, n);
	return failed ? 1 : 0;
}

static int
usage(void)
{
	fprintf(stderr,
		"usage: probe serve ADDR PORT...\n"
		"       probe tcp|udp [-s SRC] ADDR PORT MS\n"
		"       probe talk ADDR PORT N GAP_MS\n"
		"       probe race [-d N] DNS PORT NAME...\n");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *src = NULL;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 4 && strcmp(argv[1], "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (argc >= 7 && strcmp(argv[1], "race") == 0 &&
		strcmp(argv[2], "-d") == 0) {
		int ndup = atoi(argv[3]);

		if (ndup < 1 || ndup > RACE_DUP_MAX)
			return usage();
		return race(argv[4], argv[5], ndup, argc - 6, argv + 6);
	}
	if (argc >= 5 && strcmp(argv[1], "race") == 0)
		return race(argv[2], argv[3], 1, argc - 4, argv + 4);
	if (argc == 6 && strcmp(argv[1], "talk") == 0)
		return talk(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc >= 5 &&
		(strcmp(argv[1], "tcp") == 0 || strcmp(argv[1], "udp") == 0)) {
		int type = argv[1][0] == 't' ? SOCK_STREAM : SOCK_DGRAM;
		int i = 2;

		if (strcmp(argv[2], "-s") == 0) {
			src = argv[3];
			i = 4;
		}
		if (argc != i + 3)
			return usage();
		return client(type, src, argv[i], argv[i + 1],
			atoi(argv[i + 2]));
	}
	return usage();
}
