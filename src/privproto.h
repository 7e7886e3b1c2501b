/* The protocol between dnsfenced's engine (unprivileged: VM packets,
 * upstream DNS) and its privileged process (the netlink socket), over a
 * socketpair of type SOCK_STREAM. Frames are length-prefixed and bounded;
 * the privileged process parses what the engine sends as untrusted input
 * (a compromised engine writes anything), and checks every element
 * against its own configuration (privcheck.h) before the kernel sees it.
 *
 * A frame: a 8-byte header, then its payload.
 *   0 length of the payload (32 bits)   4 type (16 bits)   6 zero (16)
 * Integers in host byte order: both ends are one program on one machine.
 */
#ifndef DNSFENCE_PRIVPROTO_H
#define DNSFENCE_PRIVPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elems.h"

#define PRIV_HDR 8
#define PRIV_FRAME_MAX (64u << 20) /* a configuration record fits */
#define PRIV_ELEMS_MAX 65536	   /* element operations in one request */
#define PRIV_COMMENT_MAX 255
#define PRIV_MSG_MAX 1024 /* a DONE's text */

enum priv_type {
	/* engine -> privileged */
	PRIV_ELEMS = 1, /* seq, element operations: one transaction */
	/* privileged -> engine */
	PRIV_DONE = 100, /* seq, err, text: the transaction's outcome */
	PRIV_CONFIG,	 /* generation, time, a cfgfs record */
};

enum priv_op { PRIV_OP_ADD = 1, PRIV_OP_DEL };

/* One element operation. vm and comment point into the frame. */
struct priv_elem {
	uint8_t op;  /* enum priv_op */
	uint8_t idx; /* the VM's set: set_index() */
	const char *vm;
	struct elem_key k;
	uint64_t timeout_ms; /* PRIV_OP_ADD */
	const char *comment; /* PRIV_OP_ADD; "" for none */
};

/** Frame header: 0 and the payload length and type when a whole header
 * is there (hdr holds PRIV_HDR bytes), -1 when it is malformed (a
 * non-zero reserved field, a payload over PRIV_FRAME_MAX). */
int priv_header(const uint8_t *hdr, uint32_t *len, uint16_t *type);

/* PRIV_ELEMS payload: seq (32), count (32), then count entries:
 *   op (8) idx (8) vm length (8) comment length (8) family (8) kind (8)
 *   proto (8) zero (8) lo (16) hi (16) addr (16 bytes) timeout_ms (64)
 *   then the VM name and the comment (no NULs in either). */
struct priv_elems {
	uint32_t seq;
	size_t n;
	struct priv_elem *v; /* malloc'd; names copied out of the frame */
	char *strings;	     /* backing store of every vm and comment */
};

/** Parse a PRIV_ELEMS payload. 0, or -1 with why: a bad count, a cut
 * entry, an unknown op or index, an empty or too long VM name, a name or
 * comment holding a NUL or a byte below 0x20, an address family other
 * than AF_INET/AF_INET6, bytes after the last entry. Free with
 * priv_elems_free(). */
int priv_elems_parse(const uint8_t *p, size_t len, struct priv_elems *out,
	char *why, size_t whylen);
void priv_elems_free(struct priv_elems *e);

/** Append one entry to a PRIV_ELEMS frame being built in *buf (grown as
 * needed; *len its length, the header's length field is kept up to
 * date). Start a frame with priv_elems_begin(). -1 if vm or comment is
 * too long or the frame would exceed its bounds. */
void priv_elems_begin(uint8_t **buf, size_t *len, uint32_t seq);
int priv_elems_add(uint8_t **buf, size_t *len, const struct priv_elem *e);

/* PRIV_DONE payload: seq (32), err (32, 0 or an errno), text length (16),
 * zero (16), text. */
int priv_done_parse(const uint8_t *p, size_t len, uint32_t *seq, int *err,
	char *msg, size_t msglen);
/** A whole PRIV_DONE frame, malloc'd; msg cut at PRIV_MSG_MAX. */
uint8_t *priv_done_build(uint32_t seq, int err, const char *msg, size_t *len);

#endif
