/* The protocol between dnsfenced's engine (unprivileged and chrooted: VM
 * packets, upstream DNS, libunbound) and its privileged process (the
 * netlink sockets), over two socketpairs of type SOCK_STREAM:
 *
 *   batch  engine -> PRIV_BATCH, PRIV_READY; privileged -> PRIV_DONE
 *   sync   engine -> PRIV_DUMP, PRIV_CT_DUMP, PRIV_CT_DEL, PRIV_LOAD;
 *          privileged -> PRIV_DATA*, then PRIV_RESULT or PRIV_CONFIG
 *
 * The engine reads the kernel's notifications of changes to our table
 * itself, on a socket the privileged process subscribed before the fork
 * (nft.h: nft_mon_socket): reading it needs no capability.
 *
 * The privileged process reads what the engine sends as untrusted input
 * (a compromised engine writes anything): every frame is bounded, every
 * field checked, and nothing the engine wrote reaches the kernel as it
 * is. A transaction's element messages are parsed, each element checked
 * against the privileged process's own configuration (privcheck.h) and
 * written anew; rules, chains and sets are only ever built by the
 * privileged process itself, from its own copy of the configuration, when
 * the engine asks for an install of a generation it loaded.
 *
 * A frame: an 8-byte header, then its payload.
 *   0 length of the payload (32 bits)   4 type (16 bits)   6 zero (16)
 * Integers in host byte order: both ends are one program on one machine.
 */
#ifndef DNSFENCE_PRIVPROTO_H
#define DNSFENCE_PRIVPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elems.h"

struct config;
struct vm;
struct nft_batch;

#define PRIV_HDR 8
#define PRIV_FRAME_MAX (64u << 20) /* a configuration record fits */
#define PRIV_OPS_MAX 262144	   /* element operations in one batch */
#define PRIV_COMMENT_MAX 255
#define PRIV_MSG_MAX 1024 /* a DONE's or a RESULT's text */

enum priv_type {
	/* engine -> privileged */
	PRIV_BATCH = 1, /* a transaction: element changes, maybe an install */
	PRIV_READY,	/* the engine serves: tell systemd */
	PRIV_DUMP,	/* read part of our table */
	PRIV_CT_DUMP,	/* read the conntrack table of a family */
	PRIV_CT_DEL,	/* delete one conntrack entry */
	PRIV_LOAD,	/* read the configuration files again */
	/* privileged -> engine */
	PRIV_DONE = 100, /* a transaction's outcome */
	PRIV_DATA,	 /* netlink messages of a dump */
	PRIV_RESULT,	 /* the outcome of a sync request */
	PRIV_CONFIG,	 /* a generation and its cfgfs record */
};

/** Frame header: 0 and the payload length and type (hdr holds PRIV_HDR
 * bytes), -1 when it is malformed (a non-zero reserved field, a payload
 * over PRIV_FRAME_MAX). */
int priv_header(const uint8_t *hdr, uint32_t *len, uint16_t *type);
/** A whole frame of type, its payload a then b (either may be empty),
 * malloc'd. */
uint8_t *priv_frame(uint16_t type, const void *a, size_t alen, const void *b,
	size_t blen, size_t *len);

/* ---- PRIV_BATCH -----------------------------------------------------------
 * seq (32) flags (32) gen (32) zero (32) at (64), then one nf_tables batch
 * as nft_batch builds it: BATCH_BEGIN, any number of NEWSETELEM and
 * DELSETELEM messages for sets of our table, BATCH_END. */
#define PRIV_BATCH_FIXED 24
#define PRIV_F_INSTALL 1u   /* first build the rules of generation gen at */
#define PRIV_F_WITH_PREV 2u /* ... as a change of the installed ones */

struct priv_op {
	uint8_t del; /* else add */
	int idx;     /* the VM's set: set_index() */
	const struct vm *vm;
	struct elem_key k;
	uint64_t timeout_ms;		    /* add */
	char comment[PRIV_COMMENT_MAX + 1]; /* add; "" for none */
};

/* One element message: its operations are ops[first .. first + n). */
struct priv_msg {
	uint8_t del;
	size_t first, n;
};

struct priv_batch {
	uint32_t seq, flags, gen;
	int64_t at;
	struct priv_msg *msgs;
	size_t nmsgs;
	struct priv_op *ops;
	size_t nops;
};

/** The fixed fields of a PRIV_BATCH payload (0, or -1 if cut or its
 * reserved field is not zero). */
int priv_batch_head(const uint8_t *p, size_t len, struct priv_batch *out);

/** Parse and check a PRIV_BATCH payload: a well-formed batch (begin,
 * element messages of family inet for table, end; no other message),
 * each set one of a VM's sets, each element one set idx could hold.
 * Additions are checked against c (privcheck_add: the VM's policy, the
 * rebinding guard, the timeout bound); deletions name a set of a VM of c
 * or of prev (may be NULL: a VM leaving in an install). 0, or -1 with
 * why. Free with priv_batch_free(). */
int priv_batch_parse(const uint8_t *p, size_t len, const char *table,
	const struct config *c, const struct config *prev,
	struct priv_batch *out, char *why, size_t whylen);
void priv_batch_free(struct priv_batch *pb);
/** Write the batch's element messages anew into b, in their order. */
void priv_batch_emit(const struct priv_batch *pb, const char *table,
	struct nft_batch *b);

/* ---- PRIV_DUMP: kind (16) family (16) set name length (16) zero (16),
 * the set's name (PRIV_DUMP_ELEMS only). The table is always ours. */
enum priv_dump {
	PRIV_DUMP_SETS = 1,
	PRIV_DUMP_CHAINS,
	PRIV_DUMP_RULES,
	PRIV_DUMP_ELEMS
};

int priv_dump_parse(const uint8_t *p, size_t len, int *kind, char *set,
	size_t setlen);

/* ---- PRIV_CT_DUMP: family (32). PRIV_CT_DEL: 1 to PRIV_CTDEL_MAX
 * entries, each its length (16) then: family (8) has_zone (8) zone (16)
 * id (32), the CTA_TUPLE_ORIG nest's payload; answered with PRIV_DATA, a
 * status byte per entry (0 deleted or gone, else an errno), then
 * PRIV_RESULT. */
#define PRIV_CTDEL_MAX 4096
#define PRIV_TUPLE_MAX 256
struct priv_ctdel {
	int family;
	bool has_zone;
	uint16_t zone;
	uint32_t id;
	uint8_t tuple[PRIV_TUPLE_MAX];
	size_t len;
};
int priv_ctdump_parse(const uint8_t *p, size_t len, int *family);
/** One entry (without its length). */
int priv_ctdel_parse(const uint8_t *p, size_t len, struct priv_ctdel *out);
/** Append one entry, its length first, to buf (room for
 * 2 + 8 + PRIV_TUPLE_MAX bytes); the bytes written. */
size_t priv_ctdel_put(uint8_t *buf, const struct priv_ctdel *d);
/** May this connection be ended: its original source an address of a VM
 * of c (the purge judges only VMs' connections), c with conntrack-purge
 * on? NULL if so, else why not. */
const char *priv_ctdel_check(const struct config *c, const struct priv_ctdel *d,
	char *why, size_t whylen);

/* ---- PRIV_DONE: seq (32) err (32) text. PRIV_RESULT: err (32) text.
 * PRIV_CONFIG: gen (32) zero (32), the record (empty when the files had
 * problems: the engine finds them again from the record... of nothing;
 * see dnsfenced.c). */
int priv_done_parse(const uint8_t *p, size_t len, uint32_t *seq, int *err,
	char *msg, size_t msglen);
uint8_t *priv_done_build(uint32_t seq, int err, const char *msg, size_t *len);
int priv_result_parse(const uint8_t *p, size_t len, int *err, char *msg,
	size_t msglen);
uint8_t *priv_result_build(int err, const char *msg, size_t *len);

#endif
