/* libFuzzer target: the control protocol's parsers (ctlproto.c), on what
 * the daemon reads (a request) and what dnsfencectl reads (reply frame
 * headers).
 *
 * Invariants (abort() when broken):
 * - a parsed request has a known command, flags valid for it, and an
 *   argument count within CTL_ARGS_MAX and ctl_argc_ok;
 * - every argv lies inside the input and is NUL-terminated there, at most
 *   CTL_ARG_MAX bytes long;
 * - the request re-encodes to exactly the input's bytes, and its header
 *   alone announces exactly the input's length;
 * - a parsed reply header re-encodes to the same 8 bytes, within
 *   CTL_FRAME_MAX, with a status only on END and at most CTL_STATUS_MAX;
 * - the input read as a stream of reply frames: every accepted frame lies
 *   within the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

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
check_request(const uint8_t *data, size_t size)
{
	uint8_t again[CTL_REQ_MAX];
	struct ctl_request rq;
	const char *why = NULL;
	int n;

	if (ctl_request_parse(&rq, data, size, &why) < 0) {
		INVARIANT(why != NULL);
		return;
	}
	INVARIANT(size >= CTL_REQ_HDR && size <= CTL_REQ_MAX);
	INVARIANT(ctl_cmd_name(rq.cmd) != NULL);
	INVARIANT(ctl_flags_ok(rq.cmd, rq.flags));
	INVARIANT(rq.argc >= 0 && rq.argc <= CTL_ARGS_MAX);
	INVARIANT(ctl_argc_ok(rq.cmd, rq.argc));
	for (int i = 0; i < rq.argc; i++) {
		const uint8_t *a = (const uint8_t *)rq.argv[i];
		size_t room;

		INVARIANT(a >= data + CTL_REQ_HDR && a < data + size);
		room = (size_t)(data + size - a);
		INVARIANT(memchr(a, '\0', room) != NULL);
		INVARIANT(strlen(rq.argv[i]) <= CTL_ARG_MAX);
	}
	INVARIANT(ctl_request_len(data, &why) == (int)size);
	n = ctl_request_encode(again, sizeof(again), rq.cmd, rq.flags, rq.argc,
		rq.argv);
	INVARIANT(n == (int)size);
	INVARIANT(memcmp(again, data, size) == 0);
}

static void
check_frames(const uint8_t *data, size_t size)
{
	uint8_t again[CTL_FRAME_HDR];
	struct ctl_frame f;
	const char *why;
	size_t off = 0;

	while (size - off >= CTL_FRAME_HDR) {
		if (ctl_frame_parse(&f, data + off, &why) < 0)
			return;
		INVARIANT(f.kind >= CTL_FRAME_OUT && f.kind <= CTL_FRAME_END);
		INVARIANT(f.len <= CTL_FRAME_MAX);
		INVARIANT(f.status >= 0 && f.status <= CTL_STATUS_MAX);
		INVARIANT(f.kind == CTL_FRAME_END ||
			(f.status == 0 && f.len <= CTL_FRAME_MAX));
		INVARIANT(f.kind != CTL_FRAME_END || f.len == 0);
		ctl_frame_encode(again, f.kind, f.status, f.len);
		INVARIANT(memcmp(again, data + off, CTL_FRAME_HDR) == 0);
		if (f.kind == CTL_FRAME_END ||
			f.len > size - off - CTL_FRAME_HDR)
			return;
		off += CTL_FRAME_HDR + f.len;
		INVARIANT(off <= size);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_request(data, size);
	check_frames(data, size);
	return 0;
}
