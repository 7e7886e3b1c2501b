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
};

typedef void (*fe_query_cb)(struct fe_client *cl, const uint8_t *pkt,
	size_t len, void *arg);

/** Bind every listen address of c (UDP and TCP). NULL and a log line if
 * any cannot be bound. */
struct frontend *frontend_new(struct event_base *base, const struct config *c,
	fe_query_cb cb, void *arg);
void frontend_free(struct frontend *fe);

/** Send the answer (if pkt is not NULL) and release cl. */
void frontend_reply(struct fe_client *cl, const uint8_t *pkt, size_t len);

#endif
