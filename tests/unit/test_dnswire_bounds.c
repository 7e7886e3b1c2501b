/* Parser bounds: packets whose lengths point past their end, each in a
 * heap buffer of exactly its size (so valgrind or ASan sees any read past
 * it), must be refused, and a refused packet must yield nothing. */
#include <stdlib.h>

#include "check.h"
#include "dnswire.h"

static uint8_t *
exact(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n);

	if (b == NULL)
		abort();
	memcpy(b, p, n);
	return b;
}

static void
test_label_past_end(void)
{
	/* a query whose only label says 5 bytes, and 2 follow */
	static const uint8_t pkt[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0,
		0, 0, 5, 'a', 'b'};
	uint8_t *b = exact(pkt, sizeof(pkt));
	struct dns_query q;

	CHECK(dnswire_parse_query(b, sizeof(pkt), &q) != DNS_R_NOERROR);
	free(b);
}

static void
test_rdata_past_end(void)
{
	/* a.  IN A, answered with an A record of rdlength 4 and 2 bytes */
	static const uint8_t pkt[] = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0,
		0, 0,
		/* question */
		1, 'a', 0, 0, 1, 0, 1,
		/* answer: a. A IN 300, 4 bytes said */
		0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0};
	static const uint8_t qname[] = {1, 'a', 0};
	uint8_t *b = exact(pkt, sizeof(pkt));
	struct dns_answer a;

	CHECK(dnswire_walk(b, sizeof(pkt), qname, sizeof(qname), 100, &a) < 0);
	CHECK(a.naddrs == 0);
	dnswire_answer_finish(&a);
	free(b);
}

int
main(void)
{
	test_label_past_end();
	test_rdata_past_end();
	return check_done("dnswire-bounds");
}
