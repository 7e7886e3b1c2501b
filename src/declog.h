/* The decision log: a bounded ring of the latest answers dnsfenced gave
 * (time, VM, name, type, verdict, cause, the addresses admitted and for
 * how long), read by `dnsfencectl log` and followed by `log -f`. The same
 * lines go to the journal at info level, at most DL_RATE per second per
 * VM (with DL_BURST in hand), so that no VM can flood the log; lines held
 * back are counted and said once the VM may log again. */
#ifndef DNSFENCE_DECLOG_H
#define DNSFENCE_DECLOG_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define DL_SIZE 4096 /* decisions kept */
#define DL_ADDRS 8   /* addresses kept per decision (the count is whole) */
#define DL_CAUSE 120
#define DL_STRIPPED 3 /* classes of removed addresses (enum addr_class - 1) */
#define DL_RATE 5     /* journal lines per second per VM */
#define DL_BURST 20

enum dl_verdict {
	DL_ANSWERED, /* the resolver's answer, its addresses admitted */
	DL_REFUSED,  /* by policy (REFUSED or NXDOMAIN, as `unlisted` says) */
	DL_SERVFAIL,
	DL_ERROR, /* REFUSED/FORMERR/NOTIMP for other reasons */
	DL_VERDICTS
};

struct dl_entry {
	int64_t when_ms;	  /* wall clock (CLOCK_REALTIME) */
	char vm[VM_NAME_MAX + 1]; /* "" when no policy names the client */
	char name[256];		  /* "" when the query could not be read */
	uint16_t qtype;
	uint8_t verdict; /* enum dl_verdict */
	uint8_t rcode;
	char cause[DL_CAUSE];
	uint32_t
		timeout_s; /* the elements' lifetime (answers with addresses) */
	uint32_t naddrs;   /* admitted; only the first DL_ADDRS are kept */
	struct ipaddr addrs[DL_ADDRS];
	/* removed from the answer by the DNS rebinding guard: private,
	 * reserved, internal */
	uint32_t stripped[DL_STRIPPED];
};

struct declog;
typedef void (*declog_cb)(const struct dl_entry *e, void *arg);

struct declog *declog_new(void);
void declog_free(struct declog *d);

/** Record e (its when_ms is set here) and tell every follower; the line
 * goes to the journal unless e's VM is over its rate. */
void declog_add(struct declog *d, struct dl_entry *e);
/** Every decision kept, oldest first. */
void declog_foreach(const struct declog *d, declog_cb cb, void *arg);

struct dl_follower;
/** cb is called with every decision added from now on. */
struct dl_follower *declog_follow(struct declog *d, declog_cb cb, void *arg);
void declog_unfollow(struct declog *d, struct dl_follower *f);

/** Journal lines held back by the rate limit, in total. */
uint64_t declog_suppressed(const struct declog *d);

const char *dl_verdict_name(enum dl_verdict v);
/** One line, without a newline: "2026-12-06T10:00:00.123Z VM work,
 * www.example.com A: answered (allow *.example.com); admitted 192.0.2.10
 * for 305 s; stripped 2 (1 private, 1 reserved)". dl_format_body: the
 * same without the time (the journal has its own). */
const char *dl_format(const struct dl_entry *e, char *buf, size_t len);
const char *dl_format_body(const struct dl_entry *e, char *buf, size_t len);
/** The name of a class of stripped addresses (0 .. DL_STRIPPED-1). */
const char *dl_stripped_name(int k);
/** RFC 3339 UTC with milliseconds. */
const char *dl_time(int64_t when_ms, char *buf, size_t len);
/** The record type's mnemonic (A, AAAA, HTTPS...) or TYPEnnn. */
const char *dl_type_name(uint16_t qtype, char *buf, size_t len);

#endif
