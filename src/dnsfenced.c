/* dnsfenced: main, options, start-up order, signals. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "admit.h"
#include "elems.h"
#include "config.h"
#include "control.h"
#include "ctpurge.h"
#include "ctlcmd.h"
#include "learn.h"
#include "log.h"
#include "nft.h"
#include "privsep.h"
#include "privproto.h"
#include "cfgfs.h"
#include "resolver.h"
#include "ruleset.h"
#include "server.h"

#include <libnftnl/set.h>
#include <unbound.h>

#define NFT_TIMEOUT_MS 10000

/* Which configuration is in force: the server runs config_at(loaded, t),
 * the files as read without the allow rules whose `until` had passed at
 * t, the second its install was built. A reload reads new files; an
 * `until` installs the same files at a later t. Both go through
 * reload_send and end in reload_done, one at a time. */
struct daemon {
	const char *conf_path;
	struct config *conf;   /* until the server owns it */
	struct config *loaded; /* the files the running configuration is of */
	struct config *next; /* a reload's files: waiting or being installed */
	struct config *inst; /* the configuration being installed */
	bool inst_reload;    /* ... is of next (else: an until ended) */
	int64_t inst_at;     /* ... at this second */
	bool expire;	     /* an until has passed: install without it */
	bool until_failed;   /* the last such install failed: retry */
	int until_fd;	     /* timerfd, CLOCK_REALTIME */
	struct ub_ctx *next_ctx;
	struct admit_plan *plan; /* of the transaction in flight */
	bool installing;	 /* a reload, an until or a repair in flight */
	bool exiting;		 /* batches complete cancelled: start nothing */
	bool deladd;		 /* the kernel keeps old timeouts on re-add */
	bool lost_priv;		 /* the privileged process ended */
	struct server *srv;
	struct admit *admit;
	struct learn *learn; /* mode: learn data, across reloads */
	struct nft *nft;
	struct nft_mon *mon;
	struct event_base *base;
	struct event *ev_nft, *ev_mon, *ev_hup, *ev_term, *ev_int, *ev_timo;
	struct event *ev_reload, *ev_repair, *ev_learn, *ev_until;
	/* dnsfencectl */
	struct control *ctl;
	struct ctlcmd cmd;
	struct waiter *queued;	/* reload requests not yet read from disk */
	struct waiter *waiting; /* ... for the reload of d->next */
	bool reload_again;	/* a reload was asked for during one */
	struct flushreq *flushq, *flushing;
	struct admit_plan *flush_plan;
	struct event *ev_flush;
};

/* A `dnsfencectl reload` waiting for its outcome (cc NULL once the
 * client has gone). */
struct waiter {
	struct ctl_conn *cc;
	bool json;
	char **problems; /* FILE:LINE:COL lines, for -j */
	size_t nproblems;
	struct waiter *next;
};

/* A `dnsfencectl flush VM` waiting for its turn or its transaction. */
struct flushreq {
	struct daemon *d;
	struct ctl_conn *cc;
	bool json;
	char vm[VM_NAME_MAX + 1];
	size_t n;
	struct flushreq *next;
};

static void flush_next(struct daemon *d);

/* How often a reload or a repair looks again whether admission batches
 * are still in flight (they complete within milliseconds). */
static const struct timeval wait_tv = {.tv_usec = 2000};

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
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		strlen(path));
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

/* The engine cannot read the files: the privileged process reads them
 * and sends the record of every byte it read (cfgfs.h), from which the
 * same configuration loads here; its generation names it in installs. */
static struct config *
load_config_priv(const char *path, struct diag *d)
{
	uint8_t *rec = NULL;
	uint32_t len = 0, gen;
	struct cfgfs *fs;
	struct config *c;
	struct ub_ctx *ctx;
	char why[256];

	if (nft_priv_load(&rec, &len) < 0 || len < 8) {
		diag_add(d, path, 0, 0,
			"the privileged process could not read the files: %s",
			strerror(errno));
		free(rec);
		return NULL;
	}
	memcpy(&gen, rec, 4);
	fs = cfgfs_replay(rec + 8, len - 8, why, sizeof(why));
	free(rec);
	if (fs == NULL) {
		diag_add(d, path, 0, 0, "the privileged process sent %s", why);
		return NULL;
	}
	c = config_load_fs(fs, path, d);
	cfgfs_free(fs);
	if (c == NULL)
		return NULL;
	if (gen == 0) {
		diag_add(d, path, 0, 0,
			"the privileged process refused the files");
		config_free(c);
		return NULL;
	}
	c->gen = gen;
	if ((ctx = resolver_ctx_new(c, d, NULL)) == NULL) {
		config_free(c);
		return NULL;
	}
	ub_ctx_delete(ctx);
	return c;
}

/* The rules that the install of d->inst ends, each with its VM's element
 * deletions in that transaction. */
static void
log_ended(struct daemon *d)
{
	const struct config *old = server_config(d->srv);
	char rule[NAME_MAX_LEN + 3], t[32];

	for (size_t i = 0; i < old->nvms; i++) {
		const struct vm *vm = &old->vms[i];

		for (size_t j = 0; j < vm->nallow; j++) {
			const struct rule *r = &vm->allow[j];

			if (!policy_rule_ended(r, d->inst_at))
				continue;
			log_info("vm %s: allow %s (until %s) ended; %zu "
				 "elements removed",
				vm->name,
				policy_rule_str(r, rule, sizeof(rule)),
				policy_time_str(r->until, t, sizeof(t)),
				admit_plan_deletes(d->plan, vm->name));
		}
	}
}

static void until_arm(struct daemon *d);
static void install_start(struct daemon *d);
static void reload(struct daemon *d);

/* Tell every dnsfencectl waiting on a reload how it went. */
static void
waiters_end(struct waiter **list, int err, const char *msg)
{
	while (*list) {
		struct waiter *w = *list;

		*list = w->next;
		if (w->cc != NULL && err != 0)
			ctl_err(w->cc,
				"dnsfencectl: reload failed, the running "
				"configuration stays: %s\n",
				msg);
		if (w->cc != NULL && w->json) {
			ctl_out(w->cc, "{\"reloaded\":%s,\"error\":",
				err ? "false" : "true");
			ctl_json_str(w->cc, err ? msg : NULL);
			ctl_out(w->cc, ",\"problems\":[");
			for (size_t i = 0; i < w->nproblems; i++) {
				ctl_out(w->cc, "%s", i ? "," : "");
				ctl_json_str(w->cc, w->problems[i]);
			}
			ctl_out(w->cc, "]}\n");
		}
		if (w->cc != NULL) {
			ctl_on_close(w->cc, NULL, NULL);
			ctl_end(w->cc, err ? 1 : 0);
		}
		for (size_t i = 0; i < w->nproblems; i++)
			free(w->problems[i]);
		free(w->problems);
		free(w);
	}
}

/* Everything that installs a configuration (a reload, an until) ends
 * here, ok or not, sent or not (reload_send calls it when it could not
 * build the transaction): the one place that knows the install is over.
 * d->inst_reload tells a reload's end (d->next: its files) from an
 * until's. */
/* The connections of the VMs whose policy just changed that it no longer
 * admits end (ctpurge.h). */
static void
purge(struct daemon *d, const struct ctpurge_before *b)
{
	struct ctpurge_stats st;

	if (ctpurge_run(b, server_config(d->srv), d->admit, &st) < 0)
		log_warn("conntrack purge: reading the conntrack table");
	if (st.deleted > 0)
		log_info("conntrack purge: ended %zu of %zu connections of the "
			 "changed VMs (no longer admitted)",
			st.deleted, st.judged);
	if (st.failed > 0)
		log_warnx("conntrack purge: %zu connections no longer admitted "
			  "could not be ended",
			st.failed);
}

static void
reload_done(int err, const char *msg, void *arg)
{
	struct daemon *d = arg;
	struct ctpurge_before *before = NULL;

	/* Our table changed under the transaction (its notification may
	 * still be queued): not the new configuration's fault. The repair
	 * first, then repair_done installs the same files again. */
	if (err != 0 && d->inst_reload && !d->exiting) {
		nft_mon_dispatch(d->mon);
		if (admit_is_broken(d->admit)) {
			log_warnx("reload: table inet %s changed meanwhile "
				  "(%s); installing it again once repaired",
				server_config(d->srv)->table, msg);
			ub_ctx_delete(d->next_ctx);
			d->next_ctx = NULL;
			config_free(d->inst);
			d->inst = NULL;
			admit_plan_done(d->admit, d->plan, false);
			d->plan = NULL;
			d->inst_reload = false;
			d->installing = false;
			if (!evtimer_pending(d->ev_repair, NULL))
				evtimer_add(d->ev_repair, &wait_tv);
			return;
		}
	}
	if (d->inst_reload)
		waiters_end(&d->waiting, err, msg);
	if (d->inst_reload)
		*(err ? &d->cmd.reloads_failed : &d->cmd.reloads_ok) += 1;
	if (err != 0 && d->inst_reload) {
		log_warnx("reload failed, the running configuration stays: %s",
			msg);
		ub_ctx_delete(d->next_ctx);
		config_free(d->next);
		config_free(d->inst);
	} else if (err != 0) {
		log_warnx("removing the rules whose until has passed failed, "
			  "retrying in 1 s: %s",
			msg);
		config_free(d->inst);
	} else {
		log_ended(d);
		/* What the running policy admitted, before the new one
		 * and the prunes replace it. */
		if (d->inst->ct_purge)
			before = ctpurge_before(server_config(d->srv), d->inst,
				d->admit);
		if (d->inst_reload) {
			log_info("reloaded: %zu VM policies", d->inst->nvms);
			config_free(d->loaded);
			d->loaded = d->next;
		}
		/* An until keeps the running resolver (next_ctx NULL). */
		server_swap(d->srv, d->inst, d->next_ctx);
		admit_retain(d->admit, d->inst);
		learn_retain(d->learn, d->inst);
	}
	d->until_failed = err != 0 && !d->inst_reload;
	admit_plan_done(d->admit, d->plan, err == 0);
	d->plan = NULL;
	if (before != NULL)
		purge(d, before);
	ctpurge_before_free(before);
	if (d->inst_reload)
		d->next = NULL;
	d->inst = NULL;
	d->inst_reload = false;
	d->next_ctx = NULL;
	d->installing = false;
	server_reload_end(d->srv);
	if (admit_is_broken(d->admit) && !evtimer_pending(d->ev_repair, NULL))
		evtimer_add(d->ev_repair, &wait_tv);
	if (d->exiting)
		return;
	until_arm(d);
	/* A reload asked for while this one was on its way reads the files
	 * again; an until that came during this install runs now. */
	if (d->reload_again) {
		d->reload_again = false;
		reload(d);
	}
	if (d->next != NULL || d->expire)
		install_start(d);
	flush_next(d);
}

/* Does the running configuration hold an allow rule ended at now? */
static bool
running_has_ended(struct daemon *d, int64_t now)
{
	return config_ended(server_config(d->srv), now, NULL, 0) > 0;
}

/* A new configuration is loaded (or an until has passed) and answers are
 * waiting: once no admission batch is in flight (each was judged by the
 * old rules), one transaction installs the new rules and prunes what they
 * no longer admit. The configuration is derived here, at the second the
 * transaction is built: a rule whose until passed while we waited is
 * left out too. */
static void
reload_send(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;
	struct diag diag = {0};
	struct nft_batch *b;

	(void)fd;
	(void)ev;
	if (!admit_idle(d->admit)) {
		evtimer_add(d->ev_reload, &wait_tv);
		return;
	}
	nft_mon_dispatch(d->mon);
	if (admit_is_broken(d->admit)) {
		/* Our table was changed behind our back: the repair first
		 * (repair_done comes back here); answers wait meanwhile. */
		d->installing = false;
		if (!evtimer_pending(d->ev_repair, NULL))
			evtimer_add(d->ev_repair, &wait_tv);
		return;
	}
	/* What learning VMs used up to now: a VM leaving mode: learn loses
	 * its seen sets in this transaction. */
	if (!admit_is_broken(d->admit))
		learn_refresh(d->learn, server_config(d->srv), d->admit,
			util_now_ms());
	d->inst_at = util_wall_s();
	d->inst_reload = d->next != NULL;
	d->expire = false; /* this install covers it */
	if (!d->inst_reload && !running_has_ended(d, d->inst_at)) {
		/* A reload already left it out. */
		d->installing = false;
		server_reload_end(d->srv);
		until_arm(d);
		return;
	}
	d->inst = config_at(d->inst_reload ? d->next : d->loaded, d->inst_at);
	/* After someone else's change, trust nothing of what was built. */
	if ((b = ruleset_build(d->nft, d->inst,
		     admit_is_broken(d->admit) ? NULL
					       : server_config(d->srv))) ==
		NULL) {
		reload_done(EIO, "reading our table failed", d);
		return;
	}
	/* A reload: a new libunbound context (and cache) for the new
	 * settings; queries in flight finish on the old one. An until
	 * changes no resolver setting: the running context stays, cache
	 * and all. */
	if (d->inst_reload &&
		(d->next_ctx = resolver_ctx_new(d->inst, &diag, d->base)) ==
			NULL) {
		for (size_t i = 0; i < diag.n; i++)
			log_warnx("%s", diag.msgs[i]);
		diag_finish(&diag);
		nft_batch_free(b);
		reload_done(EINVAL, "libunbound refused the new settings", d);
		return;
	}
	d->plan = admit_prune(d->admit, server_config(d->srv), d->inst, b);
	nft_batch_send(b, reload_done, d);
}

/* Answers wait from now on; the install starts now, or after the one (or
 * the repair) in flight. */
static void
install_start(struct daemon *d)
{
	server_reload_begin(d->srv);
	if (!d->installing) {
		d->installing = true;
		reload_send(-1, 0, d);
	}
	/* else reload_done or repair_done calls reload_send. */
}

/* Allow rules whose until has passed, as warnings: they admit nothing,
 * but a policy written for a window that has closed is not invalid. */
static void
warn_ended(const struct config *c, int64_t now, void (*out)(const char *))
{
	size_t n = config_ended(c, now, NULL, 0);
	struct until_info *ui = xcalloc(n + 1, sizeof(*ui));
	char t[32], *line;

	config_ended(c, now, ui, n);
	for (size_t i = 0; i < n; i++) {
		const struct vm *vm = config_vm(c, ui[i].vm);

		line = xasprintf("%s:%d:%d: warning: allow %s: until %s has "
				 "passed; the rule admits nothing",
			vm->file, ui[i].rule->line, ui[i].rule->col, ui[i].text,
			policy_time_str(ui[i].until, t, sizeof(t)));
		out(line);
		free(line);
	}
	free(ui);
}

static void
log_warn_line(const char *s)
{
	log_warnx("%s", s);
}

/* Problems of a reload that installs nothing: logged, and told to every
 * dnsfencectl that asked for it. */
static void
reload_refused(struct waiter **ws, struct diag *diag, const char *why)
{
	for (size_t i = 0; diag && i < diag->n; i++)
		log_warnx("%s", diag->msgs[i]);
	log_warnx("reload failed, the running configuration stays%s%s",
		why ? ": " : "", why ? why : "");
	for (struct waiter *w = *ws; w; w = w->next) {
		for (size_t i = 0; w->cc && diag && i < diag->n; i++) {
			ctl_err(w->cc, "%s\n", diag->msgs[i]);
			*ARRAY_PUSH(w->problems, w->nproblems) =
				xstrdup(diag->msgs[i]);
		}
	}
	waiters_end(ws, EINVAL, why ? why : "the configuration has problems");
}

/* Read the files and install them; a reload already on its way (files
 * read) is followed by another one. */
static void
reload(struct daemon *d)
{
	struct diag diag = {0};
	struct config *c;
	struct waiter *ws;

	if (d->next != NULL) {
		d->reload_again = true;
		return;
	}
	ws = d->queued;
	d->queued = NULL;
	log_info("reloading %s", d->conf_path);
	c = nft_priv_active() ? load_config_priv(d->conf_path, &diag)
			      : load_config(d->conf_path, &diag);
	if (c == NULL) {
		d->cmd.reloads_failed++;
		reload_refused(&ws, &diag, NULL);
		diag_finish(&diag);
		return;
	}
	if (strcmp(c->table, server_config(d->srv)->table) != 0) {
		d->cmd.reloads_failed++;
		reload_refused(&ws, NULL,
			"nftables table cannot change while running (restart "
			"dnsfenced)");
		config_free(c);
		return;
	}
	warn_ended(c, util_wall_s(), log_warn_line);
	d->next = c;
	d->waiting = ws;
	install_start(d);
}

/* ---- until: rules that end by the wall clock ------------------------------ */

/* The timer at the next until of the running configuration, on the wall
 * clock: CLOCK_REALTIME with TFD_TIMER_ABSTIME fires at that wall instant
 * (after a suspend too, at once on resume if it passed meanwhile), and
 * TFD_TIMER_CANCEL_ON_SET wakes us when the clock is set, to look again.
 * After a failed install, the retry is 1 s later. */
static void
until_arm(struct daemon *d)
{
	struct itimerspec its = {0};
	int64_t next = config_next_until(server_config(d->srv));

	if (next != 0 && d->until_failed && next < util_wall_s() + 1)
		next = util_wall_s() + 1;
	its.it_value.tv_sec = (time_t)next;
	if (timerfd_settime(d->until_fd,
		    TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its,
		    NULL) < 0)
		log_warn("timerfd_settime");
}

static void
until_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;
	uint64_t n;

	(void)ev;
	if (read(fd, &n, sizeof(n)) < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		if (errno != ECANCELED)
			log_warn("reading the until timer");
		else
			log_info("the wall clock was set: looking at the "
				 "until times again");
	}
	if (running_has_ended(d, util_wall_s())) {
		/* Now, or after the install in flight. */
		d->expire = true;
		install_start(d);
	} else {
		until_arm(d);
	}
}

/* ---- our table changed behind our back ------------------------------------ */

static void
damage_cb(const char *what, void *arg)
{
	struct daemon *d = arg;

	if (!admit_is_broken(d->admit))
		log_warnx("table inet %s: %s by someone else; answers are "
			  "SERVFAIL until it is reinstalled",
			server_config(d->srv)->table, what);
	admit_broken(d->admit, what);
	if (!evtimer_pending(d->ev_repair, NULL))
		evtimer_add(d->ev_repair, &wait_tv);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct names {
	char **v;
	size_t n;
};

static bool
set_exists(const char *set, void *arg)
{
	struct names *ns = arg;

	return ns->n > 0 &&
		bsearch(&set, ns->v, ns->n, sizeof(*ns->v), cmp_str) != NULL;
}

/* The names of the sets our table has now. */
static int
read_set_names(const char *table, struct names *ns)
{
	struct nftnl_set_list *l;
	struct nftnl_set_list_iter *it;
	struct nftnl_set *s;

	if (nft_dump_sets(table, &l) < 0)
		return -1;
	if (l == NULL)
		return 0;
	it = nftnl_set_list_iter_create(l);
	while ((s = nftnl_set_list_iter_next(it)) != NULL) {
		ns->v = xreallocarray(ns->v, ns->n + 1, sizeof(*ns->v));
		ns->v[ns->n++] = xstrdup(nftnl_set_get_str(s, NFTNL_SET_NAME));
	}
	nftnl_set_list_iter_destroy(it);
	nftnl_set_list_free(l);
	if (ns->n > 0)
		qsort(ns->v, ns->n, sizeof(*ns->v), cmp_str);
	return 0;
}

static void
names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

static void
repair_done(int err, const char *msg, void *arg)
{
	struct daemon *d = arg;

	admit_plan_done(d->admit, d->plan, err == 0);
	d->plan = NULL;
	d->installing = false;
	if (err != 0)
		log_warnx("reinstalling table inet %s failed: %s",
			server_config(d->srv)->table, msg);
	else if (!admit_is_broken(d->admit))
		log_info("reinstalled table inet %s with its live elements",
			server_config(d->srv)->table);
	if (d->exiting)
		return;
	if ((d->next != NULL || d->expire) && !admit_is_broken(d->admit)) {
		/* A reload or an until waited for us (answers are parked
		 * since). */
		d->installing = true;
		reload_send(-1, 0, d);
	} else if (admit_is_broken(d->admit)) {
		struct timeval tv = {.tv_usec = err ? 200000 : 2000};

		evtimer_add(d->ev_repair, &tv);
	}
	/* A flush asked for while the table was broken or being repaired
	 * waited for this. */
	flush_next(d);
}

/* Reinstall the table as the running configuration wants it, with every
 * element still live, in one transaction. */
static void
repair(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;
	const struct config *c = server_config(d->srv);
	struct names ns = {0};
	struct nft_batch *b;

	(void)fd;
	(void)ev;
	if (d->installing || !admit_idle(d->admit)) {
		if (!d->installing)
			evtimer_add(d->ev_repair, &wait_tv);
		return; /* repair_done or reload_done comes back here */
	}
	/* Settle every notification already queued first. */
	nft_mon_dispatch(d->mon);
	if (read_set_names(c->table, &ns) < 0 ||
		(b = ruleset_build(d->nft, c, NULL)) == NULL) {
		struct timeval tv = {.tv_usec = 200000};

		log_warn("reading table inet %s", c->table);
		evtimer_add(d->ev_repair, &tv);
		goto out;
	}
	d->plan = admit_restore(d->admit, c, set_exists, &ns, b);
	if (d->plan == NULL) {
		struct timeval tv = {.tv_usec = 200000};

		nft_batch_free(b);
		evtimer_add(d->ev_repair, &tv);
		goto out;
	}
	d->installing = true;
	nft_batch_send(b, repair_done, d);
out:
	names_free(&ns);
}

static void
nft_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	if (nft_dispatch(d->nft) == 0)
		return;
	if (!nft_gone(d->nft)) {
		log_warn("netlink");
		return;
	}
	/* Nothing can be admitted any more: answers are SERVFAIL until we
	 * are gone (systemd restarts dnsfenced; the table stays). */
	log_warnx("the privileged process is gone: exiting");
	d->exiting = d->lost_priv = true;
	event_base_loopbreak(d->base);
}

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	nft_expire(d->nft, NFT_TIMEOUT_MS);
}

/* Read what learning VMs used from the kernel (not while the table is
 * being replaced or repaired: its sets may be missing then). */
static void
learn_timo(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)ev;
	if (d->installing || admit_is_broken(d->admit))
		return;
	learn_refresh(d->learn, server_config(d->srv), d->admit, util_now_ms());
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
	const struct admit_stats *as = admit_stats(d->admit);

	log_info("admission: %llu answers, %llu needing no change, %llu "
		 "batches, %llu elements, %llu failed batches, %llu refused "
		 "(set full)",
		(unsigned long long)as->requests, (unsigned long long)as->noop,
		(unsigned long long)as->batches,
		(unsigned long long)as->elements,
		(unsigned long long)as->failures, (unsigned long long)as->full);
	log_info("exiting on signal %d; table inet %s stays in place", (int)sig,
		server_config(d->srv)->table);
	d->exiting = true;
	event_base_loopbreak(d->base);
}

static void
start_done(int err, const char *msg, void *arg)
{
	int *rc = arg;

	*rc = err;
	if (err == ENOBUFS || err == ETIMEDOUT)
		log_warnx("installing the nftables table: the kernel's answer "
			  "was lost (%s); whether it was installed is unknown",
			msg);
	else if (err != 0)
		log_warnx("installing the nftables table failed, nothing was "
			  "changed: %s",
			msg);
}

static void
mon_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)ev;
	nft_mon_dispatch(d->mon);
}

/* Before start-up installs anything: elements may be refreshed in place,
 * or need delete + add (kernels before 6.12)? */
static bool
want_deladd(void)
{
	const char *force = getenv("DNSFENCE_FORCE_DELADD");
	int r;

	if (force != NULL && strcmp(force, "1") == 0) {
		log_info("element timeouts: delete + add (forced)");
		return true;
	}
	r = elems_probe_timeout_update();
	log_info("element timeouts: %s",
		r == 1 ? "updated in place on re-add"
			: r == 0
			? "delete + add (this kernel keeps the old timeout "
			  "on re-add)"
			: "delete + add (the kernel could not be probed)");
	return r != 1;
}

/* The table in one transaction, with the elements a previous run left
 * adopted and, in the same transaction, those the configuration no
 * longer admits removed. */
static int
install(struct daemon *d)
{
	struct nft_batch *b;
	struct admit_plan *plan;
	struct names ns = {0};
	int rc = -1;

	if ((d->nft = nft_open()) == NULL)
		return -1;
	d->admit = admit_new(d->nft, d->base, d->conf->table, d->deladd);
	/* Listening before the install: no change to the table from now on
	 * goes unseen. */
	d->mon = nft_mon_open(d->conf->table, nft_portid(d->nft), damage_cb, d);
	if (d->mon == NULL)
		return -1;
	admit_set_monitor(d->admit, d->mon);
	if (read_set_names(d->conf->table, &ns) < 0) {
		log_warn("reading table inet %s", d->conf->table);
		return -1;
	}
	rc = admit_adopt(d->admit, d->conf, set_exists, &ns);
	names_free(&ns);
	if (rc < 0)
		return -1;
	rc = -1;
	if ((b = ruleset_build(d->nft, d->conf, NULL)) == NULL)
		return -1;
	plan = admit_prune(d->admit, NULL, d->conf, b);
	nft_batch_send(b, start_done, &rc);
	if (rc == -1 && nft_wait(d->nft, NFT_TIMEOUT_MS) < 0 && rc == -1)
		log_warnx("installing the nftables table: no answer from the "
			  "kernel");
	admit_plan_done(d->admit, plan, rc == 0);
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
	d->srv = server_new(d->base, d->nft, d->admit, d->conf, ctx);
	if (d->srv == NULL) {
		ub_ctx_delete(ctx);
		return -1;
	}
	server_set_learn(d->srv, d->learn);
	d->conf = NULL; /* the server's now */
	return 0;
}

/* ---- dnsfencectl ---------------------------------------------------------- */

static void
waiter_gone(struct ctl_conn *cc, void *arg)
{
	struct waiter *w = arg;

	(void)cc;
	w->cc = NULL;
}

/* `reload`: as SIGHUP; the answer comes when the new configuration is in
 * force (or with its problems). */
static void
ctl_reload(struct ctl_conn *cc, bool json, void *arg)
{
	struct daemon *d = arg;
	struct waiter *w = xcalloc(1, sizeof(*w));

	w->cc = cc;
	w->json = json;
	w->next = d->queued;
	d->queued = w;
	ctl_on_close(cc, waiter_gone, w);
	reload(d);
}

static void
flush_gone(struct ctl_conn *cc, void *arg)
{
	struct flushreq *f = arg;

	(void)cc;
	f->cc = NULL;
}

static void
flush_done(int err, const char *msg, void *arg)
{
	struct daemon *d = arg;
	struct flushreq *f = d->flushing;

	admit_plan_done(d->admit, d->flush_plan, err == 0);
	d->flush_plan = NULL;
	d->flushing = NULL;
	d->installing = false;
	if (err == 0)
		log_info("flushed VM %s: %zu elements removed", f->vm, f->n);
	else
		log_warnx("flushing VM %s failed: %s", f->vm, msg);
	if (f->cc != NULL) {
		if (err != 0)
			ctl_err(f->cc, "dnsfencectl: flush %s failed: %s\n",
				f->vm, msg);
		if (f->json) {
			ctl_out(f->cc, "{\"vm\":");
			ctl_json_str(f->cc, f->vm);
			if (err == 0)
				ctl_out(f->cc, ",\"removed\":%zu}\n", f->n);
			else
				ctl_out(f->cc, ",\"removed\":null}\n");
		} else if (err == 0) {
			ctl_out(f->cc, "%zu elements of %s removed\n", f->n,
				f->vm);
		}
		ctl_on_close(f->cc, NULL, NULL);
		ctl_end(f->cc, err ? 1 : 0);
	}
	free(f);
	server_reload_end(d->srv);
	if (d->exiting)
		return;
	if (admit_is_broken(d->admit) && !evtimer_pending(d->ev_repair, NULL))
		evtimer_add(d->ev_repair, &wait_tv);
	else if (d->next != NULL || d->expire)
		install_start(d);
	flush_next(d);
}

/* Once no admission batch is in flight (answers wait meanwhile), one
 * transaction deletes every element of the VM. */
static void
flush_send(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;
	struct nft_batch *b;

	(void)fd;
	(void)ev;
	if (!admit_idle(d->admit)) {
		evtimer_add(d->ev_flush, &wait_tv);
		return;
	}
	b = nft_batch_new(d->nft);
	d->flush_plan =
		admit_flush(d->admit, d->flushing->vm, b, &d->flushing->n);
	if (d->flushing->n == 0) {
		nft_batch_free(b);
		flush_done(0, NULL, d);
		return;
	}
	nft_batch_send(b, flush_done, d);
}

/* The next flush, when nothing else is being installed (a reload, an
 * until or a repair call this again when they are done). */
static void
flush_next(struct daemon *d)
{
	if (d->flushing != NULL || d->flushq == NULL || d->installing ||
		d->exiting || admit_is_broken(d->admit))
		return;
	d->flushing = d->flushq;
	d->flushq = d->flushing->next;
	d->installing = true;
	server_reload_begin(d->srv);
	flush_send(-1, 0, d);
}

static void
ctl_flush(struct ctl_conn *cc, const char *vm, bool json, void *arg)
{
	struct daemon *d = arg;
	const struct config *c = server_config(d->srv);
	struct flushreq *f, **pp;

	if (config_vm(c, vm) == NULL) {
		ctl_err(cc,
			"dnsfencectl: no VM named %s in the configuration\n",
			vm);
		ctl_end(cc, 1);
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->d = d;
	f->cc = cc;
	f->json = json;
	snprintf(f->vm, sizeof(f->vm), "%s", vm);
	for (pp = &d->flushq; *pp; pp = &(*pp)->next)
		;
	*pp = f;
	ctl_on_close(cc, flush_gone, f);
	flush_next(d);
}

/* `suggest`: what the VM used, read from the kernel now. */
static void
ctl_suggest(struct ctl_conn *cc, const char *name, bool json, void *arg)
{
	struct daemon *d = arg;
	const struct config *c = server_config(d->srv);
	const struct vm *vm = config_vm(c, name);
	char *text;

	if (vm == NULL) {
		ctl_err(cc,
			"dnsfencectl: no VM named %s in the configuration\n",
			name);
		ctl_end(cc, 1);
		return;
	}
	if (!vm->learn) {
		struct learn_stats ls = learn_stats(d->learn, vm->name);

		/* A policy of nothing would cut the VM off when loaded. */
		if (ls.names == 0 && ls.uses == 0) {
			ctl_err(cc,
				"dnsfencectl: %s is not in mode: learn, and "
				"nothing was learned from it: no policy to "
				"suggest\n",
				vm->name);
			ctl_end(cc, 1);
			return;
		}
	}
	if (!d->installing && !admit_is_broken(d->admit) &&
		learn_refresh(d->learn, c, d->admit, util_now_ms()) < 0)
		ctl_err(cc,
			"dnsfencectl: warning: the seen sets could not "
			"be read now; what was read before is used\n");
	text = learn_suggest(d->learn, vm);
	if (json) {
		ctl_out(cc, "{\"vm\":");
		ctl_json_str(cc, vm->name);
		ctl_out(cc, ",\"policy\":");
		ctl_json_str(cc, text);
		ctl_out(cc, "}\n");
	} else {
		ctl_write(cc, text, strlen(text));
	}
	free(text);
	ctl_end(cc, 0);
}

static void
status_more(struct ctl_conn *cc, bool json, void *arg)
{
	struct daemon *d = arg;
	const struct config *c = server_config(d->srv);
	int64_t now = util_wall_s();
	size_t n = config_untils(c, now, NULL, 0);
	struct until_info *ui = xcalloc(n + 1, sizeof(*ui));
	char t[32];

	config_untils(c, now, ui, n);
	if (json) {
		ctl_out(cc, ",\"until\":[");
		for (size_t i = 0; i < n; i++) {
			ctl_out(cc, "%s{\"vm\":", i ? "," : "");
			ctl_json_str(cc, ui[i].vm);
			ctl_out(cc, ",\"rule\":");
			ctl_json_str(cc, ui[i].text);
			ctl_out(cc, ",\"until\":\"%s\",\"left\":%lld}",
				policy_time_str(ui[i].until, t, sizeof(t)),
				(long long)(ui[i].until - now));
		}
		ctl_out(cc, "],\"learning\":{");
	} else if (n > 0) {
		ctl_out(cc, "\ntemporary rules (until):\n");
		for (size_t i = 0; i < n; i++)
			ctl_out(cc, "  %-20s allow %-40s ends %s (in %lld s)\n",
				ui[i].vm, ui[i].text,
				policy_time_str(ui[i].until, t, sizeof(t)),
				(long long)(ui[i].until - now));
	}
	free(ui);
	for (size_t i = 0, k = 0; i < c->nvms; i++) {
		struct learn_stats ls;

		if (!c->vms[i].learn)
			continue;
		ls = learn_stats(d->learn, c->vms[i].name);
		if (json) {
			ctl_out(cc, "%s", k ? "," : "");
			ctl_json_str(cc, c->vms[i].name);
			ctl_out(cc,
				":{\"names\":%llu,\"uses\":%llu,\"dropped\":"
				"%llu}",
				(unsigned long long)ls.names,
				(unsigned long long)ls.uses,
				(unsigned long long)(ls.names_dropped +
					ls.uses_dropped + ls.addrs_dropped));
		} else {
			if (k == 0)
				ctl_out(cc, "\nlearning (mode: learn):\n");
			ctl_out(cc,
				"  %-20s %llu names, %llu uses recorded "
				"(%llu dropped at the limits)\n",
				c->vms[i].name, (unsigned long long)ls.names,
				(unsigned long long)ls.uses,
				(unsigned long long)(ls.names_dropped +
					ls.uses_dropped + ls.addrs_dropped));
		}
		k++;
	}
	if (json)
		ctl_out(cc, "}");
}

static void
metrics_more(struct metrics_out *m, void *arg)
{
	struct daemon *d = arg;
	const struct config *c = server_config(d->srv);

	metrics_head(m, "dnsfence_until_rules", "gauge",
		"Allow rules with an until still ahead.");
	metrics_printf(m, "dnsfence_until_rules %zu\n",
		config_untils(c, util_wall_s(), NULL, 0));
	metrics_head(m, "dnsfence_learn_names", "gauge",
		"Names recorded for a learning VM.");
	for (size_t i = 0; i < c->nvms; i++)
		if (c->vms[i].learn)
			metrics_printf(m,
				"dnsfence_learn_names{vm=\"%s\"} %llu\n",
				c->vms[i].name,
				(unsigned long long)learn_stats(d->learn,
					c->vms[i].name)
					.names);
	metrics_head(m, "dnsfence_learn_uses", "gauge",
		"Destinations (address, protocol, port) a learning VM used.");
	for (size_t i = 0; i < c->nvms; i++)
		if (c->vms[i].learn)
			metrics_printf(m,
				"dnsfence_learn_uses{vm=\"%s\"} %llu\n",
				c->vms[i].name,
				(unsigned long long)learn_stats(d->learn,
					c->vms[i].name)
					.uses);
	metrics_head(m, "dnsfence_learn_dropped", "counter",
		"Learning records dropped at the per-VM limits (oldest first).");
	for (size_t i = 0; i < c->nvms; i++) {
		struct learn_stats ls;
		static const char *const what[] = {"names", "addresses",
			"uses"};

		if (!c->vms[i].learn)
			continue;
		ls = learn_stats(d->learn, c->vms[i].name);
		uint64_t v[] = {ls.names_dropped, ls.addrs_dropped,
			ls.uses_dropped};

		for (size_t k = 0; k < ARRAY_SIZE(v); k++)
			metrics_printf(m,
				"dnsfence_learn_dropped_total{vm=\"%s\","
				"what=\"%s\"} %llu\n",
				c->vms[i].name, what[k],
				(unsigned long long)v[k]);
	}
}

/* The control socket, before `ready`: once systemd hears READY=1,
 * dnsfencectl works. */
static int
control_start(struct daemon *d)
{
	const struct config *c = server_config(d->srv);
	char *err = NULL;

	d->cmd = (struct ctlcmd){
		.srv = d->srv,
		.admit = d->admit,
		.conf_path = d->conf_path,
		.started = util_wall_s(),
		.deladd = d->deladd,
		.reload = ctl_reload,
		.flush = ctl_flush,
		.suggest = ctl_suggest,
		.status_more = status_more,
		.metrics_more = metrics_more,
		.arg = d,
	};
	d->ev_flush = evtimer_new(d->base, flush_send, d);
	d->ctl = control_new(d->base, c->control, c->control_gid,
		ctlcmd_dispatch, &d->cmd, &err);
	if (d->ctl == NULL) {
		log_warnx("control socket %s: %s", c->control, err);
		free(err);
		return -1;
	}
	return 0;
}

static void
control_stop(struct daemon *d)
{
	control_free(d->ctl);
	d->ctl = NULL;
	waiters_end(&d->queued, 0, NULL);
	waiters_end(&d->waiting, 0, NULL);
	while (d->flushq) {
		struct flushreq *f = d->flushq;

		d->flushq = f->next;
		free(f);
	}
	free(d->flushing);
	d->flushing = NULL;
	if (d->ev_flush)
		event_free(d->ev_flush);
}

static void
run(struct daemon *d)
{
	struct timeval tv = {.tv_sec = 1};
	struct timeval learn_tv = {.tv_sec = LEARN_REFRESH_S};

	d->ev_nft = event_new(d->base, nft_fd(d->nft), EV_READ | EV_PERSIST,
		nft_cb, d);
	d->ev_mon = event_new(d->base, nft_mon_fd(d->mon), EV_READ | EV_PERSIST,
		mon_cb, d);
	d->ev_reload = evtimer_new(d->base, reload_send, d);
	d->ev_repair = evtimer_new(d->base, repair, d);
	event_add(d->ev_mon, NULL);
	d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->ev_timo = event_new(d->base, -1, EV_PERSIST, timo_cb, d);
	d->ev_learn = event_new(d->base, -1, EV_PERSIST, learn_timo, d);
	event_add(d->ev_learn, &learn_tv);
	d->ev_until = event_new(d->base, d->until_fd, EV_READ | EV_PERSIST,
		until_cb, d);
	event_add(d->ev_until, NULL);
	until_arm(d);
	event_add(d->ev_nft, NULL);
	event_add(d->ev_hup, NULL);
	event_add(d->ev_term, NULL);
	event_add(d->ev_int, NULL);
	event_add(d->ev_timo, &tv);
	log_info("ready: %zu VM policies, table inet %s, DNS on %zu "
		 "addresses",
		server_config(d->srv)->nvms, server_config(d->srv)->table,
		server_config(d->srv)->nlisten);
	if (nft_priv_send(PRIV_READY, NULL, 0) < 0)
		log_warn("telling the privileged process we serve");
	event_base_dispatch(d->base);
	event_free(d->ev_nft);
	event_free(d->ev_mon);
	event_free(d->ev_reload);
	event_free(d->ev_repair);
	event_free(d->ev_hup);
	event_free(d->ev_term);
	event_free(d->ev_int);
	event_free(d->ev_timo);
	event_free(d->ev_learn);
	event_free(d->ev_until);
}

int
main(int argc, char **argv)
{
	struct daemon d = {.conf_path = DNSFENCE_DEFAULT_CONFIG,
		.until_fd = -1};
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
	d.loaded = load_config(d.conf_path, &diag);
	if (d.loaded == NULL) {
		print_problems(&diag);
		diag_finish(&diag);
		return 1;
	}
	if (check) {
		warn_ended(d.loaded, util_wall_s(), print_stderr);
		if (verbose)
			config_dump(d.loaded, stdout);
		config_free(d.loaded);
		return 0;
	}
	warn_ended(d.loaded, util_wall_s(), log_warn_line);
	signal(SIGPIPE, SIG_IGN);
	/* The kernel is probed here, with CAP_NET_ADMIN; from the fork on
	 * this process is the engine, and the parent the privileged
	 * process, which never returns. */
	d.deladd = want_deladd();
	if (privsep_start(d.conf_path, d.loaded, sd_notify_ready) < 0) {
		config_free(d.loaded);
		return 1;
	}
	d.conf = config_at(d.loaded, util_wall_s());
	if ((d.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	d.learn = learn_new();
	d.until_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d.until_fd < 0)
		fatal("timerfd_create");
	if (install(&d) < 0 || start_server(&d) < 0 || control_start(&d) < 0) {
		control_stop(&d);
		nft_close(d.nft);
		server_free(d.srv);
		nft_mon_close(d.mon);
		admit_free(d.admit);
		learn_free(d.learn);
		config_free(d.conf);
		config_free(d.loaded);
		close(d.until_fd);
		event_base_free(d.base);
		return 1;
	}
	privsep_drop();
	run(&d);
	/* Batches in flight complete (cancelled) while the queries waiting
	 * on them still exist. */
	nft_close(d.nft);
	/* dnsfencectl clients still waiting are told the daemon exits. */
	control_stop(&d);
	admit_plan_done(d.admit, d.plan, false);
	admit_plan_done(d.admit, d.flush_plan, false);
	server_free(d.srv);
	admit_free(d.admit);
	learn_free(d.learn);
	nft_mon_close(d.mon);
	ub_ctx_delete(d.next_ctx);
	config_free(d.next);
	config_free(d.inst);
	config_free(d.loaded);
	close(d.until_fd);
	event_base_free(d.base);
	return d.lost_priv ? 1 : 0;
}
