/* libFuzzer target: a resolver's answer message, walked for addresses and
 * rebuilt for a client, at several client buffer sizes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dnswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t qname[] = "\3www\7example";
	struct dns_query q = {.id = 1,
		.flags = 0x0100,
		.qtype = 1,
		.qclass = 1,
		.edns = true,
		.do_bit = size & 1,
		.udp_size = 1232};
	struct dns_answer a;
	static uint8_t out[DNS_MAXMSG];

	memcpy(q.qname_wire, qname, sizeof(qname));
	q.qname_wire_len = sizeof(qname);
	if (dnswire_walk(data, size, qname, sizeof(qname), 64, &a) == 0)
		dnswire_answer_finish(&a);
	dnswire_build_answer(&q, data, size, true, 300, 512, out, sizeof(out));
	dnswire_build_answer(&q, data, size, false, 86400, sizeof(out), out,
		sizeof(out));
	return 0;
}
