/* The running service: the frontend's queries through policy, libunbound
 * and admission to their answers, and the configuration generations that
 * reloads swap (queries in flight finish on the generation they began on). */
#ifndef DNSFENCE_SERVER_H
#define DNSFENCE_SERVER_H

#include <stdint.h>

#include "config.h"
#include "nft.h"

struct event_base;
struct ub_ctx;
struct server;

/* Seconds a query may take before the VM gets SERVFAIL. */
#define QUERY_TIMEOUT_S 10

struct server_stats {
	uint64_t queries, refused_unknown, refused_policy, servfail_bogus,
		servfail_insecure, servfail_upstream, servfail_admit,
		servfail_limit, formerr, answered;
};

struct admit;
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
const struct config *server_config(const struct server *s);
struct admit *server_admit(struct server *s);
const struct server_stats *server_stats(const struct server *s);
void server_free(struct server *s);

#endif
