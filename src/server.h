/* The running service: the frontend's queries through policy, libunbound
 * and admission to their answers, and the configuration generations that
 * reloads swap (queries in flight finish on the generation they began on). */
#ifndef DNSFENCE_SERVER_H
#define DNSFENCE_SERVER_H

#include <stdint.h>

#include "config.h"
#include "frontend.h"
#include "nft.h"

struct event_base;
struct ub_ctx;
struct server;

/* Seconds a query may take before the VM gets SERVFAIL. */
#define QUERY_TIMEOUT_S 10

struct server_stats {
	uint32_t upstream; /* queries libunbound is working on, every VM's */
	uint64_t queries, refused_unknown, refused_policy, servfail_bogus,
		servfail_insecure, servfail_upstream, servfail_admit,
		servfail_limit, formerr, answered;
	uint64_t cache_hits; /* questions answered from the answer cache */
};

/* What became of a query, per VM (contract: `status`, metrics). */
enum srv_result {
	RES_ANSWERED, /* the resolver's answer */
	RES_REFUSED,  /* by policy: REFUSED or NXDOMAIN, as `unlisted` says */
	RES_SERVFAIL,
	RES_ERROR,	 /* FORMERR, class not IN, ANY and zone transfers */
	RES_RATELIMITED, /* REFUSED: over its query-rate */
	RES_COUNT
};

/* Why a query got SERVFAIL. */
enum srv_cause {
	SF_BOGUS,
	SF_INSECURE, /* under require-dnssec */
	SF_UPSTREAM, /* resolution failed */
	SF_TIMEOUT,
	SF_ADMISSION, /* the addresses could not be put in the sets */
	SF_LIMITS, /* queries-per-vm, upstream-queries, addresses-per-answer */
	SF_MALFORMED, /* the resolver's answer could not be rebuilt */
	SF_COUNT
};

const char *server_result_name(enum srv_result r);
const char *server_cause_name(enum srv_cause c);

struct server_vm_stats {
	char name[VM_NAME_MAX + 1];
	/* queries libunbound is working on, until it calls back (answered
	 * or not: queries-per-vm) */
	uint32_t inflight;
	uint64_t queries;
	uint64_t result[RES_COUNT];
	uint64_t servfail[SF_COUNT];
	uint64_t admitted; /* addresses in answers it was given */
	/* SERVFAIL at the limits on queries libunbound works on: its own
	 * (queries-per-vm), every VM's (upstream-queries) */
	uint64_t over_inflight, over_upstream;
	/* addresses the rebinding guard removed from them: private,
	 * reserved, internal (enum addr_class - 1) */
	uint64_t stripped[3];
	struct fe_tcp_owner tcp; /* its DNS-over-TCP connections */
};

struct admit;
struct declog;
/** Bind the listeners; admission goes through admit (which stays the
 * caller's). Takes ownership of c and ctx on success; NULL on failure. */
struct server *server_new(struct event_base *base, struct nft *nft,
	struct admit *admit, struct config *c, struct ub_ctx *ctx);
/** A reload is being installed: answers wait for its outcome, so that
 * the rules in force decide what they admit. */
void server_reload_begin(struct server *s);
/** ... and it is over (server_swap first, if it succeeded). */
void server_reload_end(struct server *s);
/** Make c/ctx the generation new queries use (after a reload). ctx NULL:
 * c has the running resolver settings (an `until` ended), and the running
 * libunbound context, cache included, goes on serving. */
void server_swap(struct server *s, struct config *c, struct ub_ctx *ctx);
struct learn;
/** Record what VMs in `mode: learn` resolve in l (the caller's; NULL:
 * nothing is recorded). */
void server_set_learn(struct server *s, struct learn *l);
const struct config *server_config(const struct server *s);
struct admit *server_admit(struct server *s);
const struct server_stats *server_stats(const struct server *s);
/** The answer cache's counters and size, now (it starts empty with
 * each new libunbound context). */
struct anscache_stats;
void server_cache_stats(const struct server *s, struct anscache_stats *st);
/** The frontend's counters (TCP connections refused at accept). */
const struct fe_stats *server_fe_stats(const struct server *s);
/** The counters of every VM that has asked anything since start (kept
 * across reloads, so that they only grow), in no particular order. */
size_t server_vm_stats(const struct server *s,
	const struct server_vm_stats *const **out);
/** The decision log (the server's). */
struct declog *server_declog(struct server *s);
void server_free(struct server *s);

#endif
