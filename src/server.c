#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>

#include "admit.h"
#include "dnswire.h"
#include "frontend.h"
#include "log.h"

/* The `sec` of ub_resolve_event's callback (unbound-event.h: "0 if
 * insecure, 1 if bogus, 2 if DNSSEC secure"); libunbound names no
 * constants for them. */
enum ub_sec {
	UB_SEC_INSECURE = 0,
	UB_SEC_BOGUS = 1,
	UB_SEC_SECURE = 2,
};

/* A configuration and the libunbound context built from it. */
struct gen {
	struct config *conf;
	struct ub_ctx *ctx;
	int refs;
	struct gen *next; /* retired, waiting for its last query */
};

struct vmcount {
	char name[VM_NAME_MAX + 1];
	uint32_t n;
};

struct query {
	struct server *srv;
	struct gen *gen;
	struct fe_client *cl; /* NULL once answered */
	struct dns_query q;
	const struct vm *vm;
	struct verdict v;
	struct vmcount *vc;
	int refs;     /* the pipeline's, and callbacks' in progress */
	uint8_t *pkt; /* the resolver's answer, copied */
	size_t len;
	enum ub_sec sec;
	uint32_t cap;
	struct event *timo;
	struct query *prev, *next;
	struct query *parked; /* next query waiting out a reload */
};

struct server {
	struct event_base *base;
	struct nft *nft;
	struct admit *admit;
	struct frontend *fe;
	struct gen *gen;
	struct gen *retired;
	struct event *reap_ev, *sweep_ev;
	/* Each counter its own allocation: queries hold them. */
	struct vmcount **counts;
	size_t ncounts;
	struct query *queries;
	bool reloading;
	struct query *parked; /* answers waiting for the reload's outcome */
	struct server_stats st;
	uint8_t out[DNS_MAXMSG];
};

/* ---- generations --------------------------------------------------------- */

static struct gen *
gen_new(struct config *c, struct ub_ctx *ctx)
{
	struct gen *g = xcalloc(1, sizeof(*g));

	g->conf = c;
	g->ctx = ctx;
	g->refs = 1;
	return g;
}

static void
gen_free(struct gen *g)
{
	if (g->ctx != NULL) /* NULL: passed on to the next generation */
		ub_ctx_delete(g->ctx);
	config_free(g->conf);
	free(g);
}

/* Retired generations are freed from a fresh loop iteration: never delete
 * a libunbound context from inside one of its own callbacks. */
static void
reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct server *s = arg;
	struct gen **pp = &s->retired;

	while (*pp) {
		struct gen *g = *pp;

		if (g->refs > 0) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		gen_free(g);
	}
}

static void
gen_unref(struct server *s, struct gen *g)
{
	if (--g->refs == 0 && g != s->gen)
		event_active(s->reap_ev, 0, 0);
}

/* ---- answers ------------------------------------------------------------- */

static size_t
max_answer(const struct query *q)
{
	return q->cl->tcp ? DNS_MAXMSG : q->q.udp_size;
}

/* The VM has its answer: it no longer counts against its limit, even if
 * libunbound is still working (its callback frees the query later). */
static void
answered(struct query *q)
{
	q->cl = NULL;
	if (q->vc) {
		q->vc->n--;
		q->vc = NULL;
	}
}

static void
query_unref(struct query *q)
{
	struct server *s = q->srv;

	if (--q->refs > 0)
		return;
	if (q->cl)
		frontend_reply(q->cl, NULL, 0);
	answered(q);
	if (q->prev)
		q->prev->next = q->next;
	else
		s->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->timo)
		event_free(q->timo);
	verdict_finish(&q->v);
	free(q->pkt);
	gen_unref(s, q->gen);
	free(q);
}

static void
reply_error(struct query *q, int rcode, int ede, const char *text)
{
	size_t n;

	if (q->cl == NULL)
		return;
	n = dnswire_error(&q->q, rcode, ede, text, q->srv->out,
		sizeof(q->srv->out));
	frontend_reply(q->cl, n ? q->srv->out : NULL, n);
	answered(q);
}

static void
reply_answer(struct query *q)
{
	size_t n;

	if (q->cl == NULL)
		return;
	n = dnswire_build_answer(&q->q, q->pkt, q->len, q->sec == UB_SEC_SECURE,
		q->cap, max_answer(q), q->srv->out, sizeof(q->srv->out));
	if (n == 0) {
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER,
			"malformed answer from the resolver");
		return;
	}
	q->srv->st.answered++;
	frontend_reply(q->cl, q->srv->out, n);
	answered(q);
}

static void
admit_done(int err, const char *msg, void *arg)
{
	struct query *q = arg;

	if (err != 0) {
		char text[300];

		q->srv->st.servfail_admit++;
		log_warnx("VM %s, %s: answer withheld: %s", q->vm->name,
			q->q.qname, msg);
		snprintf(text, sizeof(text),
			"dnsfence could not admit the "
			"addresses: %s",
			msg);
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER, text);
	} else {
		reply_answer(q);
	}
	query_unref(q);
}

static bool decide(struct query *q);

/* The configuration changed while the query was out, or a rule that
 * allowed it has ended since: the answer is judged by the rules in force
 * now, never by the ones it started with. */
static bool
redecide(struct query *q)
{
	struct server *s = q->srv;
	const struct config *c = s->gen->conf;
	const struct vm *vm = policy_vm_by_name(c->vms, c->nvms, q->vm->name);

	if (q->gen != s->gen) {
		s->gen->refs++;
		gen_unref(s, q->gen);
		q->gen = s->gen;
	}
	verdict_finish(&q->v);
	memset(&q->v, 0, sizeof(q->v));
	if (vm == NULL) {
		s->st.refused_unknown++;
		reply_error(q, DNS_R_REFUSED, EDE_PROHIBITED,
			"no dnsfence policy for this address any more");
		return false;
	}
	q->vm = vm;
	return decide(q);
}

/* Admit the answer's addresses (the rules in force now decide which, and
 * for which ports); true when admission took over the query. */
static bool
admit_answer(struct query *q)
{
	const struct config *c;
	struct dns_answer ans;

	/* Answered already (SERVFAIL on timeout): nothing to admit. */
	if (q->cl == NULL)
		return false;
	/* An `until` is exact to the second, whether or not the timer that
	 * installs the configuration without its rule has fired yet. */
	if ((q->gen != q->srv->gen ||
		    (q->v.until != 0 && q->v.until <= util_wall_s())) &&
		!redecide(q))
		return false;
	c = q->gen->conf;
	if (q->v.require_dnssec && q->sec != UB_SEC_SECURE) {
		q->srv->st.servfail_insecure++;
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER,
			"insecure answer; this name requires DNSSEC");
		return false;
	}
	if (dnswire_walk(q->pkt, q->len, q->q.qname_wire, q->q.qname_wire_len,
		    c->limits.addrs_per_answer, &ans) < 0) {
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER,
			"malformed answer from the resolver");
		return false;
	}
	if (ans.truncated_addrs) {
		q->srv->st.servfail_limit++;
		log_warnx("VM %s, %s: more than %u addresses in one answer "
			  "(limits: addresses-per-answer)",
			q->vm->name, q->q.qname, c->limits.addrs_per_answer);
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER,
			"too many addresses in one answer");
		dnswire_answer_finish(&ans);
		return false;
	}
	/* The VM is never handed a TTL longer than the elements live. */
	q->cap = policy_ttl_cap(&c->ttl, ans.naddrs > 0, ans.min_ttl);
	if (ans.naddrs == 0) {
		reply_answer(q);
		dnswire_answer_finish(&ans);
		return false;
	}
	admit_request(q->srv->admit, c, q->vm, q->q.qname, ans.addrs,
		ans.naddrs, &q->v.ports,
		policy_ttl_element(&c->ttl, ans.min_ttl), admit_done, q);
	dnswire_answer_finish(&ans);
	return true;
}

/* Returns true when admission (or a reload in progress) took over the
 * query. */
static bool
resolved(struct query *q, int rcode, const uint8_t *pkt, size_t len, int sec,
	const char *why)
{
	struct server *s = q->srv;

	if (rcode != 0 || pkt == NULL) {
		s->st.servfail_upstream++;
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER, "resolution failed");
		return false;
	}
	if (sec == UB_SEC_BOGUS) {
		/* Bogus: never used, whatever the client's CD bit says. */
		s->st.servfail_bogus++;
		log_info("VM %s, %s: bogus answer refused: %s", q->vm->name,
			q->q.qname, why ? why : "?");
		reply_error(q, DNS_R_SERVFAIL, EDE_DNSSEC_BOGUS, why);
		return false;
	}
	q->pkt = xcalloc(1, len);
	memcpy(q->pkt, pkt, len);
	q->len = len;
	/* Anything not known to be secure counts as insecure. */
	q->sec = sec == UB_SEC_SECURE ? UB_SEC_SECURE : UB_SEC_INSECURE;
	if (s->reloading && q->cl != NULL) {
		/* Which rules admit it is known once the reload is done. */
		q->parked = s->parked;
		s->parked = q;
		return true;
	}
	return admit_answer(q);
}

static void
resolve_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	int ratelimited)
{
	struct query *q = arg;

	q->refs++; /* admission may finish inside resolved() */
	if (!resolved(q, rcode, pkt, len > 0 ? (size_t)len : 0, sec, why))
		query_unref(q);
	query_unref(q);
}

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct query *q = arg;

	/* Answer now; the query itself goes when its callbacks are done. */
	q->srv->st.servfail_upstream++;
	reply_error(q, DNS_R_SERVFAIL, EDE_OTHER, "resolution timed out");
}

/* ---- queries ------------------------------------------------------------- */

static struct vmcount *
vm_count(struct server *s, const char *name)
{
	struct vmcount *vc;

	for (size_t i = 0; i < s->ncounts; i++)
		if (strcmp(s->counts[i]->name, name) == 0)
			return s->counts[i];
	/* Queries in flight point at their VM's counter: growing the array
	 * must not move the counters. */
	vc = xcalloc(1, sizeof(*vc));
	snprintf(vc->name, sizeof(vc->name), "%s", name);
	s->counts =
		xreallocarray(s->counts, s->ncounts + 1, sizeof(*s->counts));
	s->counts[s->ncounts++] = vc;
	return vc;
}

static bool
decide(struct query *q)
{
	const struct dns_query *dq = &q->q;
	char buf[128];

	if (dq->qclass != 1) {
		reply_error(q, DNS_R_REFUSED, EDE_NOT_SUPPORTED,
			"only class IN");
		return false;
	}
	if (dq->qtype == DNS_T_ANY || dq->qtype == 251 || dq->qtype == 252) {
		/* RFC 8482: no ANY; zone transfers are not ours to give. */
		reply_error(q, DNS_R_REFUSED, EDE_NOT_SUPPORTED,
			"ANY and zone transfers are not answered");
		return false;
	}
	if (dq->qname_ok)
		policy_decide(q->vm, dq->qname, util_wall_s(), &q->v);
	if (!q->v.allowed) {
		q->srv->st.refused_policy++;
		log_debug("VM %s, %s: not in its policy", q->vm->name,
			dq->qname);
		snprintf(buf, sizeof(buf), "not in the dnsfence policy of %s",
			q->vm->name);
		reply_error(q,
			q->vm->unlisted == UNLISTED_NXDOMAIN ? DNS_R_NXDOMAIN
							     : DNS_R_REFUSED,
			EDE_BLOCKED, buf);
		return false;
	}
	return true;
}

static void
query_cb(struct fe_client *cl, const uint8_t *pkt, size_t len, void *arg)
{
	struct server *s = arg;
	struct query *q = xcalloc(1, sizeof(*q));
	const struct config *c = s->gen->conf;
	struct timeval tv = {.tv_sec = QUERY_TIMEOUT_S};
	int rc;

	q->srv = s;
	q->cl = cl;
	q->gen = s->gen;
	q->gen->refs++;
	q->refs = 1;
	q->next = s->queries;
	if (s->queries)
		s->queries->prev = q;
	s->queries = q;
	s->st.queries++;
	rc = dnswire_parse_query(pkt, len, &q->q);
	if (rc != DNS_R_NOERROR) {
		if (rc > 0) {
			s->st.formerr++;
			reply_error(q, rc, EDE_NONE, NULL);
		}
		query_unref(q);
		return;
	}
	q->vm = policy_find_vm(c->vms, c->nvms, &cl->src,
		cl->tcp ? NULL : cl->ifname);
	if (q->vm == NULL) {
		s->st.refused_unknown++;
		reply_error(q, DNS_R_REFUSED, EDE_PROHIBITED,
			"no dnsfence policy for this address");
		query_unref(q);
		return;
	}
	if (!decide(q)) {
		query_unref(q);
		return;
	}
	q->vc = vm_count(s, q->vm->name);
	if (q->vc->n >= c->limits.inflight_per_vm) {
		q->vc = NULL;
		s->st.servfail_limit++;
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER,
			"too many queries in flight (limits: queries-per-vm)");
		query_unref(q);
		return;
	}
	q->vc->n++;
	q->timo = evtimer_new(s->base, timo_cb, q);
	evtimer_add(q->timo, &tv);
	/* The client's CD bit is not passed on: validation is always on.
	 * For local data the callback runs inside this call. */
	if ((rc = ub_resolve_event(q->gen->ctx,
		     q->q.qname[0] ? q->q.qname : ".", q->q.qtype, q->q.qclass,
		     q, resolve_cb, NULL)) != 0) {
		log_warnx("VM %s, %s: libunbound: %s", q->vm->name, q->q.qname,
			ub_strerror(rc));
		reply_error(q, DNS_R_SERVFAIL, EDE_OTHER, "resolver error");
		query_unref(q);
	}
}

/* ---- life cycle ----------------------------------------------------------- */

static void
sweep_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct server *s = arg;

	admit_sweep(s->admit);
}

struct server *
server_new(struct event_base *base, struct nft *nft, struct admit *admit,
	struct config *c, struct ub_ctx *ctx)
{
	struct server *s = xcalloc(1, sizeof(*s));
	struct timeval tv = {.tv_sec = 10};

	s->base = base;
	s->nft = nft;
	s->fe = frontend_new(base, c, query_cb, s);
	if (s->fe == NULL) {
		free(s);
		return NULL;
	}
	s->gen = gen_new(c, ctx);
	s->admit = admit;
	s->reap_ev = event_new(base, -1, 0, reap_cb, s);
	s->sweep_ev = event_new(base, -1, EV_PERSIST, sweep_cb, s);
	event_add(s->sweep_ev, &tv);
	return s;
}

void
server_reload_begin(struct server *s)
{
	s->reloading = true;
}

void
server_reload_end(struct server *s)
{
	struct query *q;

	s->reloading = false;
	while ((q = s->parked) != NULL) {
		s->parked = q->parked;
		q->parked = NULL;
		if (!admit_answer(q))
			query_unref(q);
	}
}

void
server_swap(struct server *s, struct config *c, struct ub_ctx *ctx)
{
	struct gen *old = s->gen;

	if (ctx == NULL) {
		/* The same resolver settings: the running context (and its
		 * cache) passes to the new generation. Queries in flight on
		 * it still complete, the old generation only no longer
		 * deletes it. */
		ctx = old->ctx;
		old->ctx = NULL;
	}
	s->gen = gen_new(c, ctx);
	old->next = s->retired;
	s->retired = old;
	gen_unref(s, old);
	admit_retain(s->admit, c);
}

const struct config *
server_config(const struct server *s)
{
	return s->gen->conf;
}

struct admit *
server_admit(struct server *s)
{
	return s->admit;
}

const struct server_stats *
server_stats(const struct server *s)
{
	return &s->st;
}

void
server_free(struct server *s)
{
	struct query *q;

	if (s == NULL)
		return;
	/* Clients first: nobody is answered during shutdown. The frontend
	 * releases what it handed out. */
	for (q = s->queries; q; q = q->next) {
		if (q->cl)
			frontend_reply(q->cl, NULL, 0);
		answered(q);
	}
	frontend_free(s->fe);
	s->fe = NULL;
	/* Deleting a context runs the callbacks of its queries still in
	 * flight (with SERVFAIL), which release those queries; the
	 * generations stay until every context is gone. */
	s->gen->next = s->retired;
	s->retired = s->gen;
	s->gen = NULL;
	for (struct gen *g = s->retired; g; g = g->next) {
		if (g->ctx != NULL)
			ub_ctx_delete(g->ctx);
		g->ctx = NULL;
	}
	while ((q = s->queries) != NULL) { /* none should be left */
		q->refs = 1;
		query_unref(q);
	}
	while (s->retired) {
		struct gen *g = s->retired;

		s->retired = g->next;
		config_free(g->conf);
		free(g);
	}
	event_free(s->reap_ev);
	event_free(s->sweep_ev);
	for (size_t i = 0; i < s->ncounts; i++)
		free(s->counts[i]);
	free(s->counts);
	free(s);
}
