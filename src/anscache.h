/* The answer cache in front of libunbound: libunbound's own validated
 * answers, kept per question for as long as their TTLs last, so that a
 * question asked again costs neither libunbound's event path nor an
 * allocation. Only what libunbound called secure or insecure is kept,
 * with that status; bogus answers and failures never are (libunbound
 * keeps those itself). A hit returns the message as libunbound gave it
 * and its age in whole seconds, by which every TTL is counted down on
 * the way out (dnswire_build_answer) and for admission, as libunbound's
 * cache would; it goes through the same policy, guard and admission as a
 * fresh answer. One
 * cache per libunbound context: a reload starts an empty one. */
#ifndef DNSFENCE_ANSCACHE_H
#define DNSFENCE_ANSCACHE_H

#include <stddef.h>
#include <stdint.h>

/* The bound of a cache, in bytes of messages and names (libunbound's
 * msg-cache-size default). */
#define ANSCACHE_BYTES (4u << 20)

struct anscache;

struct anscache_stats {
	uint64_t hits, misses, stored, evicted;
	size_t entries, bytes;
};

/** An empty cache holding at most max_bytes; NULL if out of memory. */
struct anscache *anscache_create(size_t max_bytes);
/** anscache_destroy(NULL) does nothing. */
void anscache_destroy(struct anscache *c);

/** Keep libunbound's answer pkt to (qname, qtype, qclass), seen at
 * now_ms, of status sec (2 secure, 0 insecure; anything else is not
 * kept); so are not messages that do not parse, that are not NOERROR or
 * NXDOMAIN, or whose smallest TTL is 0. A newer answer replaces an older
 * one. qname: lower case, as the query parser writes it. */
void anscache_put(struct anscache *c, const char *qname, uint16_t qtype,
	uint16_t qclass, const uint8_t *pkt, size_t len, int sec,
	uint64_t now_ms);

/** The answer to (qname, qtype, qclass) at now_ms, copied into out (cap
 * bytes) as it was kept, its status in *sec and in *age the whole
 * seconds since then (always below its smallest TTL): its length, or 0
 * when there is none (an answer whose smallest TTL has run out is
 * dropped). */
size_t anscache_get(struct anscache *c, const char *qname, uint16_t qtype,
	uint16_t qclass, uint64_t now_ms, uint8_t *out, size_t cap, int *sec,
	uint32_t *age);

void anscache_stats(const struct anscache *c, struct anscache_stats *st);

#endif
