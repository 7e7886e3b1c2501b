/* libFuzzer target: the privileged process's request parser (privproto.c),
 * on what a compromised engine could send it, and the engine's parser of
 * the privileged process's DONE replies.
 *
 * Invariants (abort() when broken):
 * - a parsed PRIV_ELEMS payload has 1..PRIV_ELEMS_MAX entries, each with
 *   a known op, a set index below SET_COUNT, family AF_INET or AF_INET6,
 *   a VM name of 1..VM_NAME_MAX bytes and a comment of at most
 *   PRIV_COMMENT_MAX bytes, neither holding a control character, and a
 *   delete without timeout or comment;
 * - it re-encodes (priv_elems_begin/add) to exactly the input's bytes;
 * - a parsed DONE re-encodes to the input too. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"
#include "privproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", \
				__FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static void
text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	INVARIANT(n <= max);
	for (size_t i = 0; i < n; i++)
		INVARIANT((unsigned char)s[i] >= 0x20 &&
			(unsigned char)s[i] != 0x7f);
}

static void
check_elems(const uint8_t *data, size_t size)
{
	struct priv_elems e;
	char why[128];
	uint8_t *buf;
	size_t len;

	if (priv_elems_parse(data, size, &e, why, sizeof(why)) < 0)
		return;
	INVARIANT(e.n >= 1 && e.n <= PRIV_ELEMS_MAX);
	priv_elems_begin(&buf, &len, e.seq);
	for (size_t i = 0; i < e.n; i++) {
		const struct priv_elem *x = &e.v[i];

		INVARIANT(x->op == PRIV_OP_ADD || x->op == PRIV_OP_DEL);
		INVARIANT(x->idx < SET_COUNT);
		INVARIANT(x->k.family == AF_INET || x->k.family == AF_INET6);
		INVARIANT(strlen(x->vm) >= 1);
		text_ok(x->vm, VM_NAME_MAX);
		text_ok(x->comment, PRIV_COMMENT_MAX);
		if (x->op == PRIV_OP_DEL)
			INVARIANT(x->timeout_ms == 0 && x->comment[0] == 0);
		INVARIANT(priv_elems_add(&buf, &len, x) == 0);
	}
	INVARIANT(len == PRIV_HDR + size);
	INVARIANT(memcmp(buf + PRIV_HDR, data, size) == 0);
	free(buf);
	priv_elems_free(&e);
}

static void
check_done(const uint8_t *data, size_t size)
{
	char msg[PRIV_MSG_MAX + 1];
	uint32_t seq;
	int err;
	uint8_t *buf;
	size_t len;

	if (priv_done_parse(data, size, &seq, &err, msg, sizeof(msg)) < 0)
		return;
	buf = priv_done_build(seq, err, msg, &len);
	INVARIANT(len == PRIV_HDR + size);
	INVARIANT(memcmp(buf + PRIV_HDR, data, size) == 0);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t len;
	uint16_t type;

	check_elems(data, size);
	check_done(data, size);
	if (size >= PRIV_HDR && priv_header(data, &len, &type) == 0)
		INVARIANT(len <= PRIV_FRAME_MAX);
	return 0;
}
