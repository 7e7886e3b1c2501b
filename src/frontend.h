/* The DNS frontend: UDP and TCP listeners on every listen address. A query
 * arrives with who sent it (address, and for UDP the interface it came in
 * on); the answer goes back the way it came. */
#ifndef DNSFENCE_FRONTEND_H
#define DNSFENCE_FRONTEND_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct frontend;
struct fe_tcp;

/** One query's way back to its client. */
struct fe_client {
	struct frontend *fe;
	struct ipaddr src;
	char ifname[IF_NAMESIZE]; /* "" when unknown (TCP) */
	bool tcp;
	/* UDP */
	int fd;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	/* TCP */
	struct fe_tcp *conn;
	struct fe_client *pool_next; /* the frontend's, while not in use */
};

typedef void (*fe_query_cb)(struct fe_client *cl, const uint8_t *pkt,
	size_t len, void *arg);

/** The DNS-over-TCP connections of one VM, counted by the frontend
 * (limits: tcp-clients-per-vm). The owner (the server) keeps it alive as
 * long as the frontend. */
struct fe_tcp_owner {
	uint32_t conns;	  /* open now */
	uint64_t refused; /* closed at accept: its cap, or every slot taken */
	uint64_t evicted; /* closed to give its slot to a VM holding fewer */
};

/** Whose is a new connection from src? NULL: nobody's (no VM has that
 * address), and it is closed at once, before anything is read. */
typedef struct fe_tcp_owner *(
	*fe_owner_cb)(const struct ipaddr *src, void *arg);

struct fe_stats {
	uint64_t tcp_unknown; /* connections from addresses of no VM */
	uint64_t tcp_full;    /* refused: every slot taken (tcp-clients) */
};

/** Bind every listen address of c (UDP and TCP). Every TCP connection is
 * owned (owner); its queries go to cb. NULL and a log line if any address
 * cannot be bound. */
struct frontend *frontend_new(struct event_base *base, const struct config *c,
	fe_query_cb cb, fe_owner_cb owner, void *arg);
/** Take c's TCP limits (a reload); open connections stay. */
void frontend_set_limits(struct frontend *fe, const struct config *c);
const struct fe_stats *frontend_stats(const struct frontend *fe);
void frontend_free(struct frontend *fe);

/** Send the answer (if pkt is not NULL) and release cl. */
void frontend_reply(struct fe_client *cl, const uint8_t *pkt, size_t len);

#endif
