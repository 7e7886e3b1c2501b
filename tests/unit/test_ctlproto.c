/* The control protocol's wire format: round trips, and every way a
 * request or a reply frame header can be wrong. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "ctlproto.h"

/* A raw request: header fields as given, then the payload. */
static size_t
raw(uint8_t *buf, int ver, int cmd, uint32_t flags, const char *payload,
	size_t plen)
{
	buf[0] = (uint8_t)ver;
	buf[1] = (uint8_t)cmd;
	buf[2] = (uint8_t)(plen >> 8);
	buf[3] = (uint8_t)plen;
	buf[4] = (uint8_t)(flags >> 24);
	buf[5] = (uint8_t)(flags >> 16);
	buf[6] = (uint8_t)(flags >> 8);
	buf[7] = (uint8_t)flags;
	memcpy(buf + CTL_REQ_HDR, payload, plen);
	return CTL_REQ_HDR + plen;
}

static bool
parses(const uint8_t *buf, size_t len, const char *want_why)
{
	struct ctl_request rq;
	const char *why = NULL;
	int rc = ctl_request_parse(&rq, buf, len, &why);

	if (want_why == NULL)
		return rc == 0;
	if (rc == 0 || why == NULL || strcmp(why, want_why) != 0) {
		fprintf(stderr, "  wanted '%s', got rc %d '%s'\n", want_why, rc,
			why ? why : "");
		return false;
	}
	return true;
}

static void
test_names(void)
{
	CHECK(ctl_cmd_by_name("status") == CTL_STATUS);
	CHECK(ctl_cmd_by_name("metrics") == CTL_METRICS);
	CHECK(ctl_cmd_by_name("Status") == 0);
	CHECK(ctl_cmd_by_name("") == 0);
	CHECK_STR(ctl_cmd_name(CTL_WHY), "why");
	CHECK(ctl_cmd_name(0) == NULL);
	CHECK(ctl_cmd_name(CTL_METRICS + 1) == NULL);
	for (int c = CTL_STATUS; c <= CTL_METRICS; c++)
		CHECK(ctl_cmd_by_name(ctl_cmd_name(c)) == (enum ctl_cmd)c);
}

static void
test_argc(void)
{
	static const int lo[] = {0, 0, 0, 2, 0, 1, 0, 1, 0};
	static const int hi[] = {0, 0, 1, 3, 0, 1, 0, 1, 0};

	for (int c = CTL_STATUS; c <= CTL_METRICS; c++)
		for (int n = -1; n <= CTL_ARGS_MAX + 1; n++)
			CHECK(ctl_argc_ok(c, n) == (n >= lo[c] && n <= hi[c]));
	CHECK(!ctl_argc_ok(0, 0));
	CHECK(!ctl_argc_ok(99, 0));
}

static void
test_roundtrip(void)
{
	const char *args[] = {"work", "192.0.2.1", "tcp/443"};
	uint8_t buf[CTL_REQ_MAX];
	struct ctl_request rq;
	const char *why;
	int n;

	n = ctl_request_encode(buf, sizeof(buf), CTL_WHY, CTL_F_JSON, 3, args);
	CHECK(n == CTL_REQ_HDR + 5 + 10 + 8);
	CHECK(ctl_request_len(buf, &why) == n);
	CHECK(ctl_request_parse(&rq, buf, (size_t)n, &why) == 0);
	CHECK(rq.cmd == CTL_WHY && rq.flags == CTL_F_JSON && rq.argc == 3);
	CHECK_STR(rq.argv[0], "work");
	CHECK_STR(rq.argv[2], "tcp/443");
	CHECK((const uint8_t *)rq.argv[0] == buf + CTL_REQ_HDR);

	n = ctl_request_encode(buf, sizeof(buf), CTL_LOG, CTL_F_FOLLOW, 0,
		NULL);
	CHECK(n == CTL_REQ_HDR);
	CHECK(ctl_request_parse(&rq, buf, (size_t)n, &why) == 0);
	CHECK(rq.cmd == CTL_LOG && rq.flags == CTL_F_FOLLOW && rq.argc == 0);

	/* an empty argument is still an argument */
	n = ctl_request_encode(buf, sizeof(buf), CTL_LIST, 0, 1,
		(const char *[]){""});
	CHECK(n == CTL_REQ_HDR + 1);
	CHECK(ctl_request_parse(&rq, buf, (size_t)n, &why) == 0);
	CHECK(rq.argc == 1 && rq.argv[0][0] == '\0');
}

static void
test_encode_refuses(void)
{
	char long_arg[CTL_ARG_MAX + 2];
	const char *a[] = {long_arg};
	uint8_t buf[CTL_REQ_MAX];

	memset(long_arg, 'a', sizeof(long_arg) - 1);
	long_arg[sizeof(long_arg) - 1] = '\0';
	CHECK(ctl_request_encode(buf, sizeof(buf), CTL_FLUSH, 0, 1, a) < 0);
	long_arg[CTL_ARG_MAX] = '\0';
	CHECK(ctl_request_encode(buf, sizeof(buf), CTL_FLUSH, 0, 1, a) ==
		CTL_REQ_HDR + CTL_ARG_MAX + 1);
	CHECK(ctl_request_encode(buf, 20, CTL_FLUSH, 0, 1, a) < 0);
	CHECK(ctl_request_encode(buf, sizeof(buf), CTL_FLUSH, 0, 0, a) < 0);
	CHECK(ctl_request_encode(buf, sizeof(buf), 0, 0, 0, a) < 0);
	CHECK(ctl_request_encode(buf, sizeof(buf), CTL_STATUS, CTL_F_FOLLOW, 0,
		      a) < 0);
	CHECK(ctl_request_encode(buf, sizeof(buf), CTL_STATUS, 0x4, 0, a) < 0);
}

static void
test_parse_refuses(void)
{
	uint8_t b[CTL_REQ_MAX + 64];
	char big[CTL_REQ_MAX];
	size_t n;

	n = raw(b, CTL_VERSION, CTL_STATUS, 0, "", 0);
	CHECK(parses(b, n, NULL));
	CHECK(parses(b, n - 1, "request truncated"));
	CHECK(parses(b, 0, "request truncated"));
	b[n] = 0;
	CHECK(parses(b, n + 1, "trailing bytes after the request"));

	n = raw(b, 2, CTL_STATUS, 0, "", 0);
	CHECK(parses(b, n, "unsupported protocol version"));
	n = raw(b, 0, CTL_STATUS, 0, "", 0);
	CHECK(parses(b, n, "unsupported protocol version"));
	n = raw(b, CTL_VERSION, 0, 0, "", 0);
	CHECK(parses(b, n, "unknown command"));
	n = raw(b, CTL_VERSION, CTL_METRICS + 1, 0, "", 0);
	CHECK(parses(b, n, "unknown command"));
	n = raw(b, CTL_VERSION, CTL_STATUS, 0x4, "", 0);
	CHECK(parses(b, n, "bad flags"));
	n = raw(b, CTL_VERSION, CTL_STATUS, 0x80000000u, "", 0);
	CHECK(parses(b, n, "bad flags"));
	n = raw(b, CTL_VERSION, CTL_LIST, CTL_F_FOLLOW, "", 0);
	CHECK(parses(b, n, "bad flags"));
	n = raw(b, CTL_VERSION, CTL_LOG, CTL_F_FOLLOW | CTL_F_JSON, "", 0);
	CHECK(parses(b, n, NULL));

	/* arity */
	n = raw(b, CTL_VERSION, CTL_STATUS, 0, "x", 2);
	CHECK(parses(b, n, "wrong number of arguments"));
	n = raw(b, CTL_VERSION, CTL_WHY, 0, "vm", 3);
	CHECK(parses(b, n, "wrong number of arguments"));
	n = raw(b, CTL_VERSION, CTL_WHY, 0, "a\0b\0c\0d", 8);
	CHECK(parses(b, n, "wrong number of arguments"));
	n = raw(b, CTL_VERSION, CTL_WHY, 0, "a\0b\0c\0d\0e", 10);
	CHECK(parses(b, n, "too many arguments"));

	/* termination and length of arguments */
	n = raw(b, CTL_VERSION, CTL_FLUSH, 0, "vm", 2);
	CHECK(parses(b, n, "argument not NUL-terminated"));
	n = raw(b, CTL_VERSION, CTL_WHY, 0, "a\0b", 3);
	CHECK(parses(b, n, "argument not NUL-terminated"));
	memset(big, 'v', sizeof(big));
	big[CTL_ARG_MAX + 1] = '\0';
	n = raw(b, CTL_VERSION, CTL_FLUSH, 0, big, CTL_ARG_MAX + 2);
	CHECK(parses(b, n, "argument too long"));
	big[CTL_ARG_MAX] = '\0';
	n = raw(b, CTL_VERSION, CTL_FLUSH, 0, big, CTL_ARG_MAX + 1);
	CHECK(parses(b, n, NULL));

	/* whole frame bound, from the header alone */
	memset(big, 'v', sizeof(big));
	big[CTL_REQ_MAX - CTL_REQ_HDR - 1] = '\0';
	n = raw(b, CTL_VERSION, CTL_FLUSH, 0, big, CTL_REQ_MAX - CTL_REQ_HDR);
	CHECK(parses(b, n, "argument too long"));
	n = raw(b, CTL_VERSION, CTL_FLUSH, 0, big,
		CTL_REQ_MAX - CTL_REQ_HDR + 1);
	CHECK(parses(b, n, "request too long"));
	b[2] = 0xff;
	b[3] = 0xff;
	CHECK(parses(b, n, "request too long"));
}

static bool
frame_ok(const uint8_t *h, const char *want_why)
{
	struct ctl_frame f;
	const char *why = NULL;
	int rc = ctl_frame_parse(&f, h, &why);

	if (want_why == NULL)
		return rc == 0;
	return rc < 0 && why != NULL && strcmp(why, want_why) == 0;
}

static void
test_frames(void)
{
	uint8_t h[CTL_FRAME_HDR];
	struct ctl_frame f;
	const char *why;

	ctl_frame_encode(h, CTL_FRAME_OUT, 0, 1234);
	CHECK(ctl_frame_parse(&f, h, &why) == 0);
	CHECK(f.kind == CTL_FRAME_OUT && f.len == 1234 && f.status == 0);
	ctl_frame_encode(h, CTL_FRAME_END, 3, 0);
	CHECK(ctl_frame_parse(&f, h, &why) == 0);
	CHECK(f.kind == CTL_FRAME_END && f.status == 3 && f.len == 0);
	ctl_frame_encode(h, CTL_FRAME_ERR, 0, CTL_FRAME_MAX);
	CHECK(frame_ok(h, NULL));

	h[7] = 1; /* CTL_FRAME_MAX + 1 */
	CHECK(frame_ok(h, "frame too long"));
	ctl_frame_encode(h, CTL_FRAME_OUT, 0, 10);
	h[0] = 2;
	CHECK(frame_ok(h, "unsupported protocol version"));
	ctl_frame_encode(h, CTL_FRAME_OUT, 0, 10);
	h[1] = 0;
	CHECK(frame_ok(h, "unknown frame kind"));
	h[1] = 4;
	CHECK(frame_ok(h, "unknown frame kind"));
	ctl_frame_encode(h, CTL_FRAME_OUT, 0, 10);
	h[2] = 1;
	CHECK(frame_ok(h, "reserved bits set"));
	ctl_frame_encode(h, CTL_FRAME_OUT, 0, 10);
	h[3] = 1;
	CHECK(frame_ok(h, "reserved bits set"));
	ctl_frame_encode(h, CTL_FRAME_END, 4, 0);
	CHECK(frame_ok(h, "exit status out of range"));
	ctl_frame_encode(h, CTL_FRAME_END, 0, 0);
	h[7] = 1;
	CHECK(frame_ok(h, "end frame with a payload"));
}

int
main(void)
{
	test_names();
	test_argc();
	test_roundtrip();
	test_encode_refuses();
	test_parse_refuses();
	test_frames();
	return check_done("ctlproto");
}
