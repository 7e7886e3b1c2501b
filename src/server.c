#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>

#include "admit.h"
#include "anscache.h"
#include "declog.h"
#include "dnswire.h"
#include "frontend.h"
#include "learn.h"
#include "log.h"
#include "resolver.h"

/* The `sec` of ub_resolve_event's callback (unbound-event.h: "0 if
 * insecure, 1 if bogus, 2 if DNSSEC secure"); libunbound names no
 * constants for them. */
enum ub_sec {
	UB_SEC_INSECURE = 0,
	UB_SEC_BOGUS = 1,
	UB_SEC_SECURE = 2,
};

#define VMC_SLOTS 1024 /* buckets of the per-VM counters */
#define QUERY_POOL 256 /* queries kept for reuse */
#define PKT_KEEP 4096  /* the largest answer buffer a kept query keeps */
#define AA_STACK 16    /* addresses admitted without an allocation */

/* A configuration and the libunbound context built from it. */
struct gen {
	struct config *conf;
	struct ub_ctx *ctx;
	/* libunbound's answers in front of it: goes with ctx, whose
	 * validation made them, to the next generation when ctx does */
	struct anscache *cache;
	int refs;
	struct gen *next; /* retired, waiting for its last query */
};

struct query {
	struct server *srv;
	struct gen *gen;
	struct fe_client *cl; /* NULL once answered */
	struct dns_query q;
	const struct vm *vm;
	struct verdict v;
	struct server_vm_stats *vc; /* its VM's, once known */
	bool counted; /* libunbound has it: in vc->inflight and s->upstream */
	uint32_t timeout_s; /* of the elements admitted */
	struct dns_addr dl_addrs[DL_ADDRS];
	uint32_t dl_naddrs;
	/* addresses the rebinding guard removed from the answer, by class:
	 * private, reserved, internal (enum addr_class - 1) */
	uint32_t stripped[DL_STRIPPED];
	int refs;     /* the pipeline's, and callbacks' in progress */
	uint8_t *pkt; /* the resolver's answer, copied */
	size_t len;
	size_t pkt_size; /* pkt's allocation, kept with a pooled query */
	enum ub_sec sec;
	uint32_t cap;
	uint32_t age;	    /* s: from the answer cache, that old */
	struct event *timo; /* made once, kept with a pooled query */
	/* s->queries; next also links the pool */
	struct query *prev, *next;
	struct query *parked; /* next query waiting out a reload */
};

struct server {
	struct event_base *base;
	struct nft *nft;
	struct admit *admit;
	struct learn *learn; /* the caller's, or NULL */
	struct frontend *fe;
	struct gen *gen;
	struct gen *retired;
	struct event *reap_ev, *sweep_ev;
	/* Each VM's counters their own allocation: queries hold them. */
	struct server_vm_stats **counts;
	size_t ncounts;
	struct vmc *vmc[VMC_SLOTS];
	struct declog *log;
	struct query *queries;
	struct query *pool; /* queries done, for the next ones */
	size_t npool;
	bool reloading;
	struct query *parked;	/* answers waiting for the reload's outcome */
	struct server_stats st; /* st.upstream: queries libunbound has */
	uint8_t out[DNS_MAXMSG];
	uint8_t cached[DNS_MAXMSG]; /* an answer from the cache */
};

/* ---- generations --------------------------------------------------------- */

static struct gen *
gen_new(struct config *c, struct ub_ctx *ctx, struct anscache *cache)
{
	struct gen *g = xcalloc(1, sizeof(*g));

	g->conf = c;
	g->ctx = ctx;
	if (cache == NULL &&
		(cache = anscache_create(resolver_msg_cache_bytes(c))) == NULL)
		fatalx("out of memory for the answer cache");
	g->cache = cache;
	g->refs = 1;
	return g;
}

static void
gen_free(struct gen *g)
{
	if (g->ctx != NULL) /* NULL: passed on to the next generation */
		ub_ctx_delete(g->ctx);
	anscache_destroy(g->cache);
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

/* The VM has its answer (the query itself may live on: libunbound still
 * working after the timeout, or admission). */
static void
answered(struct query *q)
{
	q->cl = NULL;
}

/* libunbound is done with the query (it called back, or never took it):
 * from now on it costs libunbound nothing, so it no longer counts against
 * queries-per-vm. Not before: a VM answered SERVFAIL at the timeout while
 * libunbound still works on its queries could otherwise keep sending
 * more, without bound. */
static void
uncount(struct query *q)
{
	if (!q->counted)
		return;
	q->counted = false;
	q->vc->inflight--;
	q->srv->st.upstream--;
}

static void timo_cb(evutil_socket_t fd, short ev, void *arg);

/* A query's struct, its timer and its answer's buffer serve the next
 * ones: a cache hit allocates none of them. The pool is bounded, and so
 * is a buffer kept in it. */
static struct query *
query_get(struct server *s)
{
	struct query *q = s->pool;
	struct event *timo;
	uint8_t *pkt;
	size_t size;

	if (q == NULL) {
		q = xcalloc(1, sizeof(*q));
		if ((q->timo = evtimer_new(s->base, timo_cb, q)) == NULL)
			fatalx("out of memory for a query's timer");
		return q;
	}
	s->pool = q->next;
	s->npool--;
	timo = q->timo;
	pkt = q->pkt;
	size = q->pkt_size;
	memset(q, 0, sizeof(*q));
	q->timo = timo;
	q->pkt = pkt;
	q->pkt_size = size;
	return q;
}

static void
query_destroy(struct query *q)
{
	event_free(q->timo);
	free(q->pkt);
	free(q);
}

static void
query_put(struct server *s, struct query *q)
{
	if (s->npool >= QUERY_POOL) {
		query_destroy(q);
		return;
	}
	if (q->pkt_size > PKT_KEEP) {
		free(q->pkt);
		q->pkt = NULL;
		q->pkt_size = 0;
	}
	q->next = s->pool;
	s->pool = q;
	s->npool++;
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
	uncount(q);
	if (q->prev)
		q->prev->next = q->next;
	else
		s->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	evtimer_del(q->timo);
	verdict_finish(&q->v);
	gen_unref(s, q->gen);
	query_put(s, q);
}

/* Causes that are not SERVFAIL (enum srv_cause). */
#define WHY_ANSWER (-1)
#define WHY_POLICY (-2)
#define WHY_ERROR (-3)
#define WHY_RATE (-4)

struct allowing {
	size_t v[64];
	size_t n;
};

static bool
allowing_cb(size_t i, void *arg)
{
	struct allowing *al = arg;

	if (al->n < sizeof(al->v) / sizeof(al->v[0]))
		al->v[al->n++] = i;
	return true;
}

static int
size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* What the answer for the policy's name rules says admitted it: the
 * first matching rules, in the order of the file. */
static void
allow_text(const struct vm *vm, const char *name, char *buf, size_t len)
{
	struct allowing al = {.n = 0};
	size_t n = 0;

	if (vm->learn || vm->default_allow) {
		snprintf(buf, len,
			vm->learn ? "mode: learn" : "default: allow");
		return;
	}
	buf[0] = '\0';
	policy_match(vm, false, name, allowing_cb, &al);
	qsort(al.v, al.n, sizeof(al.v[0]), size_cmp);
	for (size_t i = 0; i < al.n && n < len; i++) {
		const struct rule *r = &vm->allow[al.v[i]];

		n += (size_t)snprintf(buf + n, len - n, "%s%s",
			n ? ", " : "allow ",
			r->pat.kind == MATCH_ALL	      ? "*"
				: r->pat.kind == MATCH_SUFFIX ? "*."
							      : "");
		if (n < len && r->pat.kind != MATCH_ALL)
			n += (size_t)snprintf(buf + n, len - n, "%s",
				r->pat.name);
	}
}

/* The query has its answer: count it for its VM, and log the decision. */
static void
record(struct query *q, int why, int rcode, const char *text)
{
	struct server *s = q->srv;
	enum srv_result r = why == WHY_ANSWER ? RES_ANSWERED
		: why == WHY_POLICY	      ? RES_REFUSED
		: why == WHY_ERROR	      ? RES_ERROR
		: why == WHY_RATE	      ? RES_RATELIMITED
					      : RES_SERVFAIL;
	struct dl_entry e;

	if (q->vc != NULL) {
		q->vc->result[r]++;
		if (r == RES_SERVFAIL)
			q->vc->servfail[why]++;
		q->vc->admitted += q->dl_naddrs;
		for (int k = 0; k < DL_STRIPPED; k++)
			q->vc->stripped[k] += q->stripped[k];
	}
	memset(&e, 0, sizeof(e));
	if (q->vm != NULL)
		snprintf(e.vm, sizeof(e.vm), "%s", q->vm->name);
	if (q->q.qname_ok)
		snprintf(e.name, sizeof(e.name), "%s", q->q.qname);
	e.qtype = q->q.qtype;
	e.verdict = r == RES_ANSWERED ? DL_ANSWERED
		: r == RES_REFUSED    ? DL_REFUSED
		: r == RES_SERVFAIL   ? DL_SERVFAIL
				      : DL_ERROR;
	e.rcode = (uint8_t)rcode;
	if (why == WHY_ANSWER && q->vm != NULL)
		allow_text(q->vm, e.name, e.cause, sizeof(e.cause));
	else if (why == WHY_POLICY && q->vm != NULL && q->vm->dns_deny)
		snprintf(e.cause, sizeof(e.cause),
			"REFUSED: dns: deny in its policy");
	else if (why == WHY_POLICY)
		snprintf(e.cause, sizeof(e.cause), "%s: not in its policy",
			rcode == DNS_R_NXDOMAIN ? "NXDOMAIN" : "REFUSED");
	else if (r == RES_SERVFAIL)
		snprintf(e.cause, sizeof(e.cause), "%s: %s",
			server_cause_name((enum srv_cause)why),
			text ? text : "?");
	else
		snprintf(e.cause, sizeof(e.cause), "%s", text ? text : "?");
	e.naddrs = q->dl_naddrs;
	e.timeout_s = q->timeout_s;
	memcpy(e.stripped, q->stripped, sizeof(e.stripped));
	for (uint32_t i = 0; i < q->dl_naddrs && i < DL_ADDRS; i++)
		e.addrs[i] = q->dl_addrs[i].a;
	declog_add(s->log, &e);
}

static void
reply_error(struct query *q, int why, int rcode, int ede, const char *text)
{
	size_t n;

	if (q->cl == NULL)
		return;
	q->dl_naddrs = 0;
	memset(q->stripped, 0, sizeof(q->stripped)); /* nothing was served */
	record(q, why, rcode, text);
	n = dnswire_error(&q->q, rcode, ede, text, q->srv->out,
		sizeof(q->srv->out));
	frontend_reply(q->cl, n ? q->srv->out : NULL, n);
	answered(q);
}

/* The Extended DNS Error text of an answer the guard changed ("" when it
 * did not). */
static const char *
stripped_text(const struct query *q, char *buf, size_t len)
{
	static const char *const what[DL_STRIPPED] =
		{"private (no allow-private)", "reserved",
			"of a VM or of dnsfence"};
	const char *sep = "";
	uint32_t total = 0;
	size_t n;

	for (int k = 0; k < DL_STRIPPED; k++)
		total += q->stripped[k];
	buf[0] = '\0';
	if (total == 0)
		return buf;
	n = (size_t)snprintf(buf, len,
		"dnsfence removed %u address%s (DNS rebinding guard): ", total,
		total == 1 ? "" : "es");
	for (int k = 0; k < DL_STRIPPED && n < len; k++) {
		if (q->stripped[k] == 0)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%u %s", sep,
			q->stripped[k], what[k]);
		sep = ", ";
	}
	return buf;
}

static void
reply_answer(struct query *q)
{
	char ede[160];
	size_t n;

	if (q->cl == NULL)
		return;
	/* An answer the guard changed: no AD (it is not the data that was
	 * signed), and EDE 15 saying why addresses are missing. */
	stripped_text(q, ede, sizeof(ede));
	n = dnswire_build_answer(&q->q, q->pkt, q->len,
		q->sec == UB_SEC_SECURE && ede[0] == '\0', q->cap, q->age,
		ede[0] ? EDE_BLOCKED : EDE_NONE, ede[0] ? ede : NULL,
		max_answer(q), q->srv->out, sizeof(q->srv->out));
	if (n == 0) {
		reply_error(q, SF_MALFORMED, DNS_R_SERVFAIL, EDE_OTHER,
			"malformed answer from the resolver");
		return;
	}
	q->srv->st.answered++;
	record(q, WHY_ANSWER, DNS_R_NOERROR, NULL);
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
		snprintf(text, sizeof(text),
			"dnsfence could not admit the "
			"addresses: %s",
			msg);
		reply_error(q, SF_ADMISSION, DNS_R_SERVFAIL, EDE_OTHER, text);
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
	const struct vm *vm = config_vm(c, q->vm->name);

	if (q->gen != s->gen) {
		s->gen->refs++;
		gen_unref(s, q->gen);
		q->gen = s->gen;
	}
	verdict_finish(&q->v);
	memset(&q->v, 0, sizeof(q->v));
	if (vm == NULL) {
		s->st.refused_unknown++;
		reply_error(q, WHY_ERROR, DNS_R_REFUSED, EDE_PROHIBITED,
			"no dnsfence policy for this address any more");
		return false;
	}
	q->vm = vm;
	return decide(q);
}

/* mode: learn: the name and the addresses its answer gives, so that the
 * addresses the VM then uses map back to names after their elements are
 * gone. */
static void
learn_answer(struct query *q, const struct dns_answer *ans)
{
	struct ipaddr *a;

	if (q->srv->learn == NULL || !q->vm->learn || !q->q.qname_ok)
		return;
	a = xcalloc(ans->naddrs + 1, sizeof(*a));
	for (size_t i = 0; i < ans->naddrs; i++)
		a[i] = ans->addrs[i].a;
	learn_name(q->srv->learn, q->vm->name, q->q.qname, a, ans->naddrs,
		util_now_ms());
	free(a);
}

struct guarding {
	const struct config *c;
	const struct verdict *v;
};

/* The DNS rebinding guard: an address stays in the answer when the rules
 * admit it (its class, the verdict's allow-private); else its class. */
static int
guard_cb(const struct ipaddr *a, void *arg)
{
	const struct guarding *g = arg;
	enum addr_class cl = config_addr_class(g->c, a);

	return policy_verdict_ports(g->v, cl) != NULL ? 0 : (int)cl;
}

/* The answer without what the guard refuses; -1 if it is malformed. */
static int
strip_answer(struct query *q, const struct config *c)
{
	struct guarding g = {.c = c, .v = &q->v};
	struct dns_strip st;

	memset(q->stripped, 0, sizeof(q->stripped));
	if (dnswire_strip(q->pkt, q->len, guard_cb, &g, &st) < 0)
		return -1;
	for (size_t i = 0; i < st.nremoved; i++)
		if (st.removed[i].why >= 1 && st.removed[i].why <= DL_STRIPPED)
			q->stripped[st.removed[i].why - 1]++;
	if (st.pkt != NULL) {
		free(q->pkt);
		q->pkt = st.pkt;
		q->len = st.len;
		q->pkt_size = st.len; /* at least */
		st.pkt = NULL;
	}
	dnswire_strip_finish(&st);
	return 0;
}

/* Admit the answer's addresses (the rules in force now decide which, and
 * for which ports); true when admission took over the query. */
static bool
admit_answer(struct query *q)
{
	const struct config *c;
	struct dns_answer ans;
	struct admit_addr aa_stack[AA_STACK], *aa;
	char text[128];

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
		reply_error(q, SF_INSECURE, DNS_R_SERVFAIL, EDE_OTHER,
			"insecure answer; this name requires DNSSEC");
		return false;
	}
	if (strip_answer(q, c) < 0 ||
		dnswire_walk(q->pkt, q->len, q->q.qname_wire,
			q->q.qname_wire_len, c->limits.addrs_per_answer,
			&ans) < 0) {
		reply_error(q, SF_MALFORMED, DNS_R_SERVFAIL, EDE_OTHER,
			"malformed answer from the resolver");
		return false;
	}
	/* An answer from the cache: its TTLs have run that long (always
	 * less than the smallest of them). */
	ans.min_ttl = ans.min_ttl > q->age ? ans.min_ttl - q->age : 0;
	if (ans.truncated_addrs) {
		q->srv->st.servfail_limit++;
		snprintf(text, sizeof(text),
			"more than %u addresses in one answer (limits: "
			"addresses-per-answer)",
			c->limits.addrs_per_answer);
		reply_error(q, SF_LIMITS, DNS_R_SERVFAIL, EDE_OTHER, text);
		dnswire_answer_finish(&ans);
		return false;
	}
	learn_answer(q, &ans);
	/* The VM is never handed a TTL longer than the elements live. */
	q->cap = policy_ttl_cap(&c->ttl, ans.naddrs > 0, ans.min_ttl);
	if (ans.naddrs == 0) {
		reply_answer(q);
		dnswire_answer_finish(&ans);
		return false;
	}
	q->timeout_s = policy_ttl_element(&c->ttl, ans.min_ttl);
	q->dl_naddrs = (uint32_t)ans.naddrs;
	memcpy(q->dl_addrs, ans.addrs,
		(ans.naddrs < DL_ADDRS ? ans.naddrs : DL_ADDRS) *
			sizeof(*q->dl_addrs));
	/* Each address with the ports of the rules that let it through. */
	aa = ans.naddrs <= AA_STACK ? aa_stack
				    : xcalloc(ans.naddrs, sizeof(*aa));
	for (size_t i = 0; i < ans.naddrs; i++) {
		aa[i].a = ans.addrs[i].a;
		aa[i].ports = policy_verdict_ports(&q->v,
			config_addr_class(c, &aa[i].a));
		if (aa[i].ports == NULL) { /* the guard let it through */
			if (aa != aa_stack)
				free(aa);
			dnswire_answer_finish(&ans);
			reply_error(q, SF_MALFORMED, DNS_R_SERVFAIL, EDE_OTHER,
				"internal error: an address the policy does "
				"not admit");
			return false;
		}
	}
	admit_request(q->srv->admit, c, q->vm, q->q.qname, aa, ans.naddrs,
		q->timeout_s, admit_done, q);
	if (aa != aa_stack)
		free(aa);
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
		reply_error(q, SF_UPSTREAM, DNS_R_SERVFAIL, EDE_OTHER,
			"resolution failed");
		return false;
	}
	if (sec == UB_SEC_BOGUS) {
		/* Bogus: never used, whatever the client's CD bit says. */
		s->st.servfail_bogus++;
		reply_error(q, SF_BOGUS, DNS_R_SERVFAIL, EDE_DNSSEC_BOGUS, why);
		return false;
	}
	if (len >= 12 && (pkt[3] & 0xF) == DNS_R_SERVFAIL) {
		/* A failure libunbound remembers (for 5 s after it gave up)
		 * comes back as a packet with rcode 0 here and SERVFAIL in
		 * its header: the same failure, said the same way. */
		s->st.servfail_upstream++;
		reply_error(q, SF_UPSTREAM, DNS_R_SERVFAIL, EDE_OTHER,
			"resolution failed (a failure the resolver cached)");
		return false;
	}
	if (len > q->pkt_size) {
		free(q->pkt);
		q->pkt = xcalloc(1, len);
		q->pkt_size = len;
	}
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

/* The name libunbound is asked (the root as "."). */
static const char *
qname_of(const struct query *q)
{
	return q->q.qname[0] ? q->q.qname : ".";
}

static void
resolve_cb(void *arg, int rcode, void *pkt, int len, int sec, char *why,
	int ratelimited)
{
	struct query *q = arg;

	uncount(q);
	/* Validated (secure or insecure), as the answer cache keeps them;
	 * whatever the VM's policy makes of it, the next asker's may differ. */
	if (rcode == 0 && pkt != NULL && len > 0 && sec != UB_SEC_BOGUS)
		anscache_put(q->gen->cache, qname_of(q), q->q.qtype,
			q->q.qclass, pkt, (size_t)len, sec, util_now_ms());
	q->refs++; /* admission may finish inside resolved() */
	if (!resolved(q, rcode, pkt, len > 0 ? (size_t)len : 0, sec, why))
		query_unref(q);
	query_unref(q);
}

/* An answer libunbound gave before, still within its TTLs: the same way
 * as a fresh one (policy, guard, admission: resolved()), counted down
 * by its age; libunbound is not asked, and the timer is armed only if
 * admission still has it. The query's own reference goes here, as
 * resolve_cb's does. */
static bool
from_cache(struct query *q)
{
	struct server *s = q->srv;
	uint32_t age;
	int sec;
	size_t n = anscache_get(q->gen->cache, qname_of(q), q->q.qtype,
		q->q.qclass, util_now_ms(), s->cached, sizeof(s->cached), &sec,
		&age);

	if (n == 0)
		return false;
	s->st.cache_hits++;
	q->age = age;
	q->refs++;
	if (!resolved(q, 0, s->cached, n, sec, NULL)) {
		query_unref(q);
	} else if (q->cl != NULL) {
		/* Admission has it: the query's bound holds for it as for an
		 * answer from libunbound. */
		struct timeval tv = {.tv_sec = QUERY_TIMEOUT_S};

		evtimer_add(q->timo, &tv);
	}
	query_unref(q);
	return true;
}

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct query *q = arg;

	/* Answer now; the query itself goes when its callbacks are done. */
	q->srv->st.servfail_upstream++;
	reply_error(q, SF_TIMEOUT, DNS_R_SERVFAIL, EDE_OTHER,
		"resolution timed out");
}

/* ---- queries ------------------------------------------------------------- */

/* A VM's counters, found by name in a hash: every query looks its VM's
 * up. With its query-rate bucket: like the counters, it stays with the
 * VM's name across reloads. */
struct vmc {
	struct server_vm_stats st;
	uint64_t tokens; /* thousandths of a query */
	uint64_t tokens_ms;
	struct vmc *next;
};

static struct vmc *
vm_count(struct server *s, const char *name)
{
	uint32_t h = 2166136261u;
	struct vmc *v;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h %= VMC_SLOTS;
	for (v = s->vmc[h]; v; v = v->next)
		if (strcmp(v->st.name, name) == 0)
			return v;
	/* Queries in flight point at their VM's counters: growing the
	 * array must not move them. */
	v = xcalloc(1, sizeof(*v));
	snprintf(v->st.name, sizeof(v->st.name), "%s", name);
	v->next = s->vmc[h];
	s->vmc[h] = v;
	s->counts =
		xreallocarray(s->counts, s->ncounts + 1, sizeof(*s->counts));
	s->counts[s->ncounts++] = &v->st;
	v->tokens = UINT64_MAX; /* a full bucket, whatever the burst */
	return v;
}

/* The VM's token bucket (limits: query-rate, query-burst): may it ask
 * one more? Every query counts, those its policy refuses too: each costs
 * us a read, a decision and an answer. */
static bool
rate_take(struct vmc *v, const struct limits *l, uint64_t now)
{
	uint64_t cap = (uint64_t)l->query_burst * 1000;

	if (now > v->tokens_ms) {
		uint64_t add = (now - v->tokens_ms) * l->query_rate;

		v->tokens = add >= cap || v->tokens >= cap - add
			? cap
			: v->tokens + add;
		v->tokens_ms = now;
	}
	if (v->tokens > cap) /* a new VM, or the burst made smaller */
		v->tokens = cap;
	if (v->tokens < 1000)
		return false;
	v->tokens -= 1000;
	return true;
}

/* Why libunbound may not take one more query of the VM now, or NULL.
 * The last eighth of upstream-queries is kept for the VMs holding few
 * (fewer than a 64th of it, or than 4: one stuck query of a VM asking one
 * at a time must not shut it out): those that filled the rest
 * wait for their own queries, and the others still get theirs through. */
static const char *
over_limits(struct server *s, struct server_vm_stats *vc,
	const struct limits *l)
{
	uint32_t few = l->upstream / 64 > 4 ? l->upstream / 64 : 4;

	if (vc->inflight >= l->inflight_per_vm) {
		vc->over_inflight++;
		return "too many queries in flight (limits: queries-per-vm)";
	}
	if (s->st.upstream >= l->upstream ||
		(s->st.upstream >= l->upstream - l->upstream / 8 &&
			vc->inflight >= few)) {
		vc->over_upstream++;
		return "too many queries in flight for all VMs (limits: "
		       "upstream-queries)";
	}
	return NULL;
}

static bool
decide(struct query *q)
{
	const struct dns_query *dq = &q->q;
	char buf[128];

	if (q->vm->dns_deny) {
		/* Before anything else: this VM is answered nothing. */
		q->srv->st.refused_policy++;
		log_debug("VM %s, %s: dns: deny in its policy", q->vm->name,
			dq->qname);
		snprintf(buf, sizeof(buf),
			"the dnsfence policy of %s denies DNS (dns: deny)",
			q->vm->name);
		reply_error(q, WHY_POLICY, DNS_R_REFUSED, EDE_PROHIBITED, buf);
		return false;
	}
	if (dq->qclass != 1) {
		reply_error(q, WHY_ERROR, DNS_R_REFUSED, EDE_NOT_SUPPORTED,
			"only class IN");
		return false;
	}
	if (dq->qtype == DNS_T_ANY || dq->qtype == 251 || dq->qtype == 252) {
		/* RFC 8482: no ANY; zone transfers are not ours to give. */
		reply_error(q, WHY_ERROR, DNS_R_REFUSED, EDE_NOT_SUPPORTED,
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
		reply_error(q, WHY_POLICY,
			q->vm->unlisted == UNLISTED_NXDOMAIN ? DNS_R_NXDOMAIN
							     : DNS_R_REFUSED,
			EDE_BLOCKED, buf);
		return false;
	}
	return true;
}

/* A TCP connection belongs to the VM of its source address (no interface
 * check: a spoofed source cannot complete the handshake); from any other
 * address it is closed at accept, before it costs a query. */
static struct fe_tcp_owner *
owner_cb(const struct ipaddr *src, void *arg)
{
	struct server *s = arg;
	const struct config *c = s->gen->conf;
	const struct vm *vm = policy_find_vm(c->vms, c->nvms, src, NULL);

	return vm == NULL ? NULL : &vm_count(s, vm->name)->st.tcp;
}

static void
query_cb(struct fe_client *cl, const uint8_t *pkt, size_t len, void *arg)
{
	struct server *s = arg;
	struct query *q = query_get(s);
	const struct config *c = s->gen->conf;
	struct timeval tv = {.tv_sec = QUERY_TIMEOUT_S};
	const char *over;
	struct vmc *v;
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
			reply_error(q, WHY_ERROR, rc, EDE_NONE, NULL);
		}
		query_unref(q);
		return;
	}
	q->vm = policy_find_vm(c->vms, c->nvms, &cl->src,
		cl->tcp ? NULL : cl->ifname);
	if (q->vm == NULL) {
		s->st.refused_unknown++;
		reply_error(q, WHY_ERROR, DNS_R_REFUSED, EDE_PROHIBITED,
			"no dnsfence policy for this address");
		query_unref(q);
		return;
	}
	v = vm_count(s, q->vm->name);
	q->vc = &v->st;
	q->vc->queries++;
	if (!rate_take(v, &c->limits, util_now_ms())) {
		/* REFUSED, not dropped: the source is the VM's own (no one
		 * else is reflected at), and a stub told REFUSED stops where
		 * one told nothing retries, adding to the load. */
		reply_error(q, WHY_RATE, DNS_R_REFUSED, EDE_OTHER,
			"over this VM's query rate (limits: query-rate, "
			"query-burst)");
		query_unref(q);
		return;
	}
	if (!decide(q)) {
		query_unref(q);
		return;
	}
	if ((over = over_limits(s, q->vc, &c->limits)) != NULL) {
		s->st.servfail_limit++;
		reply_error(q, SF_LIMITS, DNS_R_SERVFAIL, EDE_OTHER, over);
		query_unref(q);
		return;
	}
	/* After the limits, as a hit in libunbound's own cache was: a VM
	 * over them is told so whatever it asks. */
	if (from_cache(q))
		return;
	q->vc->inflight++;
	s->st.upstream++;
	q->counted = true;
	/* The client's CD bit is not passed on: validation is always on.
	 * For a cache hit (as for local data) the callback runs inside this
	 * call, and the query may be answered and done before it returns:
	 * held until then. */
	q->refs++;
	if ((rc = ub_resolve_event(q->gen->ctx, qname_of(q), q->q.qtype,
		     q->q.qclass, q, resolve_cb, NULL)) != 0) {
		/* UB_INITFAIL: libunbound could not set up its worker on our
		 * event base (it does so at a context's first query) or could
		 * not finalize the context. In the first case libunbound
		 * 1.17 (libworker_setup -> libworker_delete -> comm_base_delete
		 * -> event_base_free) has already freed s->base, our own
		 * event loop's: returning to it is a use after free. Nothing
		 * can be served without a worker either way: end here, before
		 * libevent touches the freed base. */
		if (rc == UB_INITFAIL)
			fatalx("VM %s, %s: libunbound: %s; our event base may "
			       "be gone with it, the engine ends",
				q->vm->name, q->q.qname, ub_strerror(rc));
		log_warnx("VM %s, %s: libunbound: %s", q->vm->name, q->q.qname,
			ub_strerror(rc));
		reply_error(q, SF_UPSTREAM, DNS_R_SERVFAIL, EDE_OTHER,
			"resolver error");
		query_unref(q);
	} else if (q->cl != NULL) {
		/* Not answered at once: libunbound or admission still has
		 * it. (A hit answered inside the call never needs a timer.) */
		evtimer_add(q->timo, &tv);
	}
	query_unref(q);
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
	s->fe = frontend_new(base, c, query_cb, owner_cb, s);
	if (s->fe == NULL) {
		free(s);
		return NULL;
	}
	s->gen = gen_new(c, ctx, NULL);
	s->admit = admit;
	s->log = declog_new();
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
	struct anscache *cache = NULL;

	if (ctx == NULL) {
		/* The same resolver settings: the running context (and its
		 * cache, and ours in front of it) passes to the new
		 * generation. Queries in flight on it still complete, the
		 * old generation only no longer deletes it. */
		ctx = old->ctx;
		old->ctx = NULL;
		cache = old->cache;
		old->cache = NULL;
	}
	s->gen = gen_new(c, ctx, cache);
	frontend_set_limits(s->fe, c);
	old->next = s->retired;
	s->retired = old;
	gen_unref(s, old);
	admit_retain(s->admit, c);
}

void
server_set_learn(struct server *s, struct learn *l)
{
	s->learn = l;
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

void
server_cache_stats(const struct server *s, struct anscache_stats *st)
{
	anscache_stats(s->gen->cache, st);
}

const struct server_stats *
server_stats(const struct server *s)
{
	return &s->st;
}

const struct fe_stats *
server_fe_stats(const struct server *s)
{
	return frontend_stats(s->fe);
}

size_t
server_vm_stats(const struct server *s,
	const struct server_vm_stats *const **out)
{
	*out = (const struct server_vm_stats *const *)s->counts;
	return s->ncounts;
}

struct declog *
server_declog(struct server *s)
{
	return s->log;
}

const char *
server_result_name(enum srv_result r)
{
	static const char *const names[RES_COUNT] = {
		[RES_ANSWERED] = "answered",
		[RES_REFUSED] = "refused",
		[RES_SERVFAIL] = "servfail",
		[RES_ERROR] = "error",
		[RES_RATELIMITED] = "ratelimited",
	};

	return (unsigned)r < RES_COUNT ? names[r] : "?";
}

const char *
server_cause_name(enum srv_cause c)
{
	static const char *const names[SF_COUNT] = {
		[SF_BOGUS] = "bogus",
		[SF_INSECURE] = "insecure",
		[SF_UPSTREAM] = "upstream",
		[SF_TIMEOUT] = "timeout",
		[SF_ADMISSION] = "admission",
		[SF_LIMITS] = "limits",
		[SF_MALFORMED] = "malformed",
	};

	return (unsigned)c < SF_COUNT ? names[c] : "?";
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
		gen_free(g); /* its context is gone already */
	}
	while (s->pool) {
		q = s->pool;
		s->pool = q->next;
		query_destroy(q);
	}
	event_free(s->reap_ev);
	event_free(s->sweep_ev);
	for (size_t i = 0; i < VMC_SLOTS; i++) {
		while (s->vmc[i]) {
			struct vmc *v = s->vmc[i];

			s->vmc[i] = v->next;
			free(v);
		}
	}
	free(s->counts);
	declog_free(s->log);
	free(s);
}
