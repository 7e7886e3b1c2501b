/* DNS messages: bounds-checked parsing of queries and of answers, the walk
 * that finds the addresses an answer admits, and building the message the
 * client gets (TTLs capped, DNSSEC records only when asked for, EDNS with
 * Extended DNS Errors, truncation for UDP). Every read checks the length
 * left first; compression pointers may only point backwards. */
#ifndef DNSFENCE_DNSWIRE_H
#define DNSFENCE_DNSWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define DNS_HDRLEN 12
#define DNS_MAXNAME 255 /* wire form */
#define DNS_MAXMSG 65535
#define DNS_OUR_UDP 1232 /* the EDNS buffer size we advertise */
#define DNS_MAX_RRS 1024

enum {
	DNS_T_A = 1,
	DNS_T_NS = 2,
	DNS_T_CNAME = 5,
	DNS_T_SOA = 6,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
	DNS_T_OPT = 41,
	DNS_T_DS = 43,
	DNS_T_RRSIG = 46,
	DNS_T_NSEC = 47,
	DNS_T_DNSKEY = 48,
	DNS_T_NSEC3 = 50,
	DNS_T_SVCB = 64,
	DNS_T_HTTPS = 65,
	DNS_T_ANY = 255,
};

enum {
	DNS_R_NOERROR = 0,
	DNS_R_FORMERR = 1,
	DNS_R_SERVFAIL = 2,
	DNS_R_NXDOMAIN = 3,
	DNS_R_NOTIMP = 4,
	DNS_R_REFUSED = 5,
	DNS_R_BADVERS = 16,
};

/* Extended DNS Error info codes (RFC 8914). */
enum {
	EDE_NONE = -1,
	EDE_OTHER = 0,
	EDE_DNSSEC_BOGUS = 6,
	EDE_BLOCKED = 15,
	EDE_PROHIBITED = 18,
	EDE_NOT_SUPPORTED = 21,
};

#define DNS_F_QR 0x8000
#define DNS_F_AA 0x0400
#define DNS_F_TC 0x0200
#define DNS_F_RD 0x0100
#define DNS_F_RA 0x0080
#define DNS_F_AD 0x0020
#define DNS_F_CD 0x0010

struct dns_query {
	uint16_t id;
	uint16_t flags;
	uint8_t qname_wire[DNS_MAXNAME]; /* as the client wrote it */
	size_t qname_wire_len;
	char qname[NAME_MAX_LEN +
		2];    /* lower case, no trailing dot; "" = root */
	bool qname_ok; /* qname is a host name policy can match */
	uint16_t qtype, qclass;
	bool edns;
	bool do_bit;
	uint16_t udp_size; /* 512 without EDNS */
};

/** Parse a query. Returns -1 when the packet deserves no answer at all
 * (shorter than a header, or a response); otherwise the rcode to answer
 * with: DNS_R_NOERROR (q is complete), FORMERR, NOTIMP or BADVERS (q->id
 * and q->flags are set, the question only when it parsed). */
int dnswire_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q);

/** Build an answer carrying no records: rcode, EDE (or EDE_NONE) with an
 * optional text. Returns the length written, 0 if out is too small. */
size_t dnswire_error(const struct dns_query *q, int rcode, int ede,
	const char *ede_text, uint8_t *out, size_t outlen);

/** One address an answer admits. */
struct dns_addr {
	struct ipaddr a;
};

/** What the walk of an answer found. */
struct dns_answer {
	int rcode;
	uint32_t min_ttl;	/* smallest TTL along the chain */
	struct dns_addr *addrs; /* A/AAAA and HTTPS/SVCB hints, deduplicated */
	size_t naddrs;
	bool truncated_addrs; /* more than max_addrs were present */
};

/** Walk a full answer message (from the resolver) for the question name
 * qname_wire: follow CNAMEs in the answer section, collect every A/AAAA
 * (and HTTPS/SVCB ipv4hint/ipv6hint) reached, at most max_addrs. -1 if the
 * message is malformed (ans then holds nothing). Free ans with
 * dnswire_answer_finish(). */
int dnswire_walk(const uint8_t *pkt, size_t len, const uint8_t *qname_wire,
	size_t qname_len, size_t max_addrs, struct dns_answer *ans);
void dnswire_answer_finish(struct dns_answer *ans);

/** Build the client's answer from the resolver's message: the client's ID
 * and question, RD/CD as the client sent them, RA set, AD only when the
 * client asked (DO or AD), every TTL first counted down by age seconds
 * (an answer kept that long: never below 0) and then capped at ttl_cap,
 * RRSIG/NSEC/NSEC3
 * only when the client set DO, the resolver's OPT replaced by ours (with
 * an Extended DNS Error unless ede is EDE_NONE), and, when the result
 * exceeds maxlen, TC with the answer sections dropped. Returns the
 * length, or 0 if the resolver's message is malformed. */
size_t dnswire_build_answer(const struct dns_query *q, const uint8_t *pkt,
	size_t len, bool secure, uint32_t ttl_cap, uint32_t age, int ede,
	const char *ede_text, size_t maxlen, uint8_t *out, size_t outlen);

/** What the DNS rebinding guard makes of one address of an answer: 0
 * keep it, or a reason (> 0, the caller's) to remove it. */
typedef int (*dnswire_guard_fn)(const struct ipaddr *a, void *arg);

/** An address removed from an answer, once however often it appeared. */
struct dns_removed {
	struct ipaddr a;
	int why; /* what the guard said */
};

struct dns_strip {
	uint8_t *pkt; /* the message without them; NULL: nothing removed */
	size_t len;
	struct dns_removed *removed;
	size_t nremoved;
};

/** The resolver's message pkt without the addresses guard refuses, in
 * every section and of every class: each A and AAAA record holding one is
 * removed; an SVCB/HTTPS record loses them from its ipv4hint/ipv6hint,
 * and the parameter goes when none is left (the whole record when that
 * parameter is listed in its `mandatory`); an RRSIG covering an RRset
 * that lost anything goes too (it no longer signs it). Everything else
 * is kept as it is (names re-encoded, TTLs untouched). out->pkt is NULL
 * when nothing is removed (then pkt is the answer as it is); else a
 * message that dnswire_walk and dnswire_build_answer take as the
 * resolver's. Returns 0, or -1 if pkt is malformed (an SVCB/HTTPS rdata
 * that does not parse included) or the result does not fit a message.
 * Free out with dnswire_strip_finish(). */
int dnswire_strip(const uint8_t *pkt, size_t len, dnswire_guard_fn guard,
	void *arg, struct dns_strip *out);
void dnswire_strip_finish(struct dns_strip *s);

/** The smallest TTL of a message's records (the OPT record's field holds
 * flags, not a TTL): -1 if the message is malformed, INT64_MAX if it has
 * no record. */
int64_t dnswire_ttl_min(const uint8_t *pkt, size_t len);

/** Wire name -> lower-case presentation without the trailing dot. */
int dnswire_name_to_str(const uint8_t *wire, size_t len, char *out,
	size_t outlen);

#endif
