/* dnsfenced: main, options, start-up order, signals. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "admit.h"
#include "config.h"
#include "log.h"
#include "nft.h"
#include "resolver.h"
#include "ruleset.h"
#include "server.h"

#include <unbound.h>

#define NFT_TIMEOUT_MS 10000

struct daemon {
	const char *conf_path;
	struct config *conf; /* until the server owns it */
	struct config *next; /* being installed by a reload */
	struct ub_ctx *next_ctx;
	struct admit_prune *prune;
	struct server *srv;
	struct nft *nft;
	struct event_base *base;
	struct event *ev_nft, *ev_hup, *ev_term, *ev_int, *ev_timo;
};

static void
usage(void)
{
	fprintf(stderr, "usage: dnsfenced [-c FILE] [-n] [-v]\n");
	exit(2);
}

static void
print_stderr(const char *s)
{
	fprintf(stderr, "%s\n", s);
}

static void
print_problems(struct diag *d)
{
	diag_print(d, print_stderr);
}

/* systemd's readiness protocol: one datagram to $NOTIFY_SOCKET. */
static void
sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sun, len) < 0)
		log_warn("sd_notify");
	close(fd);
}

/* The configuration and policies, with the resolver settings checked by
 * libunbound itself; NULL (problems in d) if anything is wrong. */
static struct config *
load_config(const char *path, struct diag *d)
{
	struct config *c = config_load(path, d);
	struct ub_ctx *ctx;

	if (c == NULL)
		return NULL;
	if ((ctx = resolver_ctx_new(c, d, NULL)) == NULL) {
		config_free(c);
		return NULL;
	}
	ub_ctx_delete(ctx);
	return c;
}

static void
reload_done(int err, const char *msg, void *arg)
{
	struct daemon *d = arg;

	if (err != 0) {
		log_warnx("reload failed, the running configuration stays: %s",
			msg);
		ub_ctx_delete(d->next_ctx);
		config_free(d->next);
	} else {
		log_info("reloaded: %zu VM policies", d->next->nvms);
		server_swap(d->srv, d->next, d->next_ctx);
	}
	admit_prune_done(server_admit(d->srv), d->prune, err == 0);
	d->prune = NULL;
	d->next = NULL;
	d->next_ctx = NULL;
}

static void
reload(struct daemon *d)
{
	struct diag diag = {0};
	struct config *c;
	struct nft_batch *b;

	if (d->next != NULL) {
		log_warnx("reload already in progress");
		return;
	}
	log_info("reloading %s", d->conf_path);
	c = load_config(d->conf_path, &diag);
	if (c == NULL) {
		for (size_t i = 0; i < diag.n; i++)
			log_warnx("%s", diag.msgs[i]);
		log_warnx("reload failed, the running configuration stays");
		diag_finish(&diag);
		return;
	}
	if (strcmp(c->table, server_config(d->srv)->table) != 0) {
		log_warnx("reload failed: nftables table cannot change while "
			  "running (restart dnsfenced)");
		config_free(c);
		return;
	}
	if ((b = ruleset_build(d->nft, c)) == NULL) {
		config_free(c);
		return;
	}
	/* A new libunbound context (and cache) for the new settings; queries
	 * in flight finish on the old one. */
	d->next_ctx = resolver_ctx_new(c, &diag, d->base);
	if (d->next_ctx == NULL) {
		for (size_t i = 0; i < diag.n; i++)
			log_warnx("%s", diag.msgs[i]);
		diag_finish(&diag);
		nft_batch_free(b);
		config_free(c);
		return;
	}
	d->next = c;
	/* Elements only removed rules admitted go in the same transaction. */
	d->prune = admit_prune(server_admit(d->srv), c, b);
	nft_batch_send(b, reload_done, d);
}

static void
nft_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	if (nft_dispatch(d->nft) < 0)
		log_warn("netlink");
}

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	nft_expire(d->nft, NFT_TIMEOUT_MS);
}

static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		reload(d);
		return;
	}
	const struct server_stats *st = server_stats(d->srv);

	log_info("%llu queries: %llu answered, %llu refused by policy, "
		 "%llu from unknown clients, SERVFAIL: %llu bogus, %llu "
		 "insecure, %llu upstream, %llu admission, %llu limits",
		(unsigned long long)st->queries,
		(unsigned long long)st->answered,
		(unsigned long long)st->refused_policy,
		(unsigned long long)st->refused_unknown,
		(unsigned long long)st->servfail_bogus,
		(unsigned long long)st->servfail_insecure,
		(unsigned long long)st->servfail_upstream,
		(unsigned long long)st->servfail_admit,
		(unsigned long long)st->servfail_limit);
	const struct admit_stats *as = admit_stats(server_admit(d->srv));

	log_info("admission: %llu answers, %llu needing no change, %llu "
		 "batches, %llu elements, %llu failed batches, %llu refused "
		 "(set full)", (unsigned long long)as->requests,
		(unsigned long long)as->noop, (unsigned long long)as->batches,
		(unsigned long long)as->elements,
		(unsigned long long)as->failures, (unsigned long long)as->full);
	log_info("exiting on signal %d; table inet %s stays in place",
		(int)sig, server_config(d->srv)->table);
	event_base_loopbreak(d->base);
}

static void
start_done(int err, const char *msg, void *arg)
{
	int *rc = arg;

	*rc = err;
	if (err != 0)
		log_warnx("installing the nftables table failed: %s", msg);
}

static int
install(struct daemon *d)
{
	struct nft_batch *b;
	int rc = -1;

	if ((d->nft = nft_open()) == NULL)
		return -1;
	if ((b = ruleset_build(d->nft, d->conf)) == NULL)
		return -1;
	nft_batch_send(b, start_done, &rc);
	if (nft_wait(d->nft, NFT_TIMEOUT_MS) < 0 && rc == -1)
		log_warnx("installing the nftables table: no answer from the "
			  "kernel");
	return rc == 0 ? 0 : -1;
}

static int
start_server(struct daemon *d)
{
	struct diag diag = {0};
	struct ub_ctx *ctx = resolver_ctx_new(d->conf, &diag, d->base);

	if (ctx == NULL) {
		print_problems(&diag);
		diag_finish(&diag);
		return -1;
	}
	if ((d->srv = server_new(d->base, d->nft, d->conf, ctx)) == NULL) {
		ub_ctx_delete(ctx);
		return -1;
	}
	d->conf = NULL; /* the server's now */
	return 0;
}

static void
run(struct daemon *d)
{
	struct timeval tv = {.tv_sec = 1};

	d->ev_nft = event_new(d->base, nft_fd(d->nft), EV_READ | EV_PERSIST,
		nft_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->ev_timo = event_new(d->base, -1, EV_PERSIST, timo_cb, d);
	event_add(d->ev_nft, NULL);
	event_add(d->ev_hup, NULL);
	event_add(d->ev_term, NULL);
	event_add(d->ev_int, NULL);
	event_add(d->ev_timo, &tv);
	log_info("ready: %zu VM policies, table inet %s, DNS on %zu "
		 "addresses", server_config(d->srv)->nvms,
		server_config(d->srv)->table, server_config(d->srv)->nlisten);
	sd_notify_ready();
	event_base_dispatch(d->base);
	event_free(d->ev_nft);
	event_free(d->ev_hup);
	event_free(d->ev_term);
	event_free(d->ev_int);
	event_free(d->ev_timo);
}

int
main(int argc, char **argv)
{
	struct daemon d = {.conf_path = DNSFENCE_DEFAULT_CONFIG};
	struct diag diag = {0};
	int ch, verbose = 0;
	bool check = false;

	while ((ch = getopt(argc, argv, "c:nv")) != -1) {
		switch (ch) {
		case 'c':
			d.conf_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("dnsfenced", verbose);
	d.conf = load_config(d.conf_path, &diag);
	if (d.conf == NULL) {
		print_problems(&diag);
		diag_finish(&diag);
		return 1;
	}
	if (check) {
		if (verbose)
			config_dump(d.conf, stdout);
		config_free(d.conf);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (install(&d) < 0 || start_server(&d) < 0) {
		nft_close(d.nft);
		config_free(d.conf);
		event_base_free(d.base);
		return 1;
	}
	run(&d);
	/* Batches in flight complete (cancelled) while the queries waiting
	 * on them still exist. */
	nft_close(d.nft);
	server_free(d.srv);
	ub_ctx_delete(d.next_ctx);
	config_free(d.next);
	event_base_free(d.base);
	return 0;
}
