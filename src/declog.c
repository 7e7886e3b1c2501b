#include "declog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* A VM's allowance of journal lines: a token bucket. */
struct allowance {
	uint64_t at_ms;	 /* when tokens was last brought up to date */
	uint32_t tokens; /* in thousandths of a line */
	uint64_t held;	 /* lines held back since the last one logged */
};

/* Failures (SERVFAIL, at warning level) have an allowance of their own:
 * a VM's flood of answered names never hides why one of them failed. */
struct bucket {
	char vm[VM_NAME_MAX + 1];
	struct allowance ok, fail;
	struct bucket *next;
};

#define BUCKET_SLOTS 256
#define BUCKETS_MAX 65536 /* past this, VMs share one allowance */

struct dl_follower {
	declog_cb cb;
	void *arg;
	struct dl_follower *next;
};

struct declog {
	struct dl_entry *ring;
	size_t head, n; /* next slot to write; entries held */
	struct bucket *slots[BUCKET_SLOTS];
	size_t nbuckets;
	struct bucket shared;
	uint64_t suppressed;
	struct dl_follower *followers;
};

struct declog *
declog_new(void)
{
	struct declog *d = xcalloc(1, sizeof(*d));

	d->ring = xcalloc(DL_SIZE, sizeof(*d->ring));
	d->shared.ok.tokens = d->shared.fail.tokens = DL_BURST * 1000;
	return d;
}

void
declog_free(struct declog *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < BUCKET_SLOTS; i++) {
		while (d->slots[i]) {
			struct bucket *b = d->slots[i];

			d->slots[i] = b->next;
			free(b);
		}
	}
	while (d->followers) {
		struct dl_follower *f = d->followers;

		d->followers = f->next;
		free(f);
	}
	free(d->ring);
	free(d);
}

static struct bucket *
bucket_of(struct declog *d, const char *vm)
{
	uint32_t h = 2166136261u;
	struct bucket *b;

	for (const char *p = vm; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (b = d->slots[h % BUCKET_SLOTS]; b; b = b->next)
		if (strcmp(b->vm, vm) == 0)
			return b;
	if (d->nbuckets >= BUCKETS_MAX)
		return &d->shared;
	b = xcalloc(1, sizeof(*b));
	snprintf(b->vm, sizeof(b->vm), "%s", vm);
	b->ok.tokens = b->fail.tokens = DL_BURST * 1000;
	b->ok.at_ms = b->fail.at_ms = util_now_ms();
	b->next = d->slots[h % BUCKET_SLOTS];
	d->slots[h % BUCKET_SLOTS] = b;
	d->nbuckets++;
	return b;
}

/* May the VM log a line now? */
static bool
bucket_take(struct allowance *b, uint64_t now)
{
	uint64_t add = (now - b->at_ms) * DL_RATE; /* thousandths */

	if (now > b->at_ms) {
		b->tokens = add >= DL_BURST * 1000 - b->tokens
			? DL_BURST * 1000
			: b->tokens + (uint32_t)add;
		b->at_ms = now;
	}
	if (b->tokens < 1000)
		return false;
	b->tokens -= 1000;
	return true;
}

static void
journal(struct declog *d, const struct dl_entry *e)
{
	struct bucket *b = bucket_of(d, e->vm);
	bool fail = e->verdict == DL_SERVFAIL;
	struct allowance *al = fail ? &b->fail : &b->ok;
	void (*out)(const char *, ...) = fail ? log_warnx : log_info;
	char line[1024];

	if (!bucket_take(al, util_now_ms())) {
		al->held++;
		d->suppressed++;
		return;
	}
	if (al->held > 0) {
		out("VM %s: %llu %s lines not logged (more than %d per "
		    "second)",
			e->vm[0] ? e->vm : "(unknown)",
			(unsigned long long)al->held,
			fail ? "failure" : "decision", DL_RATE);
		al->held = 0;
	}
	out("%s", dl_format_body(e, line, sizeof(line)));
}

void
declog_add(struct declog *d, struct dl_entry *e)
{
	struct timespec ts;
	struct dl_follower *f, *next;

	clock_gettime(CLOCK_REALTIME, &ts);
	e->when_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	d->ring[d->head] = *e;
	d->head = (d->head + 1) % DL_SIZE;
	if (d->n < DL_SIZE)
		d->n++;
	journal(d, e);
	/* A follower may go away from inside its callback. */
	for (f = d->followers; f; f = next) {
		next = f->next;
		f->cb(e, f->arg);
	}
}

void
declog_foreach(const struct declog *d, declog_cb cb, void *arg)
{
	size_t first = (d->head + DL_SIZE - d->n) % DL_SIZE;

	for (size_t i = 0; i < d->n; i++)
		cb(&d->ring[(first + i) % DL_SIZE], arg);
}

struct dl_follower *
declog_follow(struct declog *d, declog_cb cb, void *arg)
{
	struct dl_follower *f = xcalloc(1, sizeof(*f));

	f->cb = cb;
	f->arg = arg;
	f->next = d->followers;
	d->followers = f;
	return f;
}

void
declog_unfollow(struct declog *d, struct dl_follower *f)
{
	for (struct dl_follower **pp = &d->followers; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			free(f);
			return;
		}
	}
}

uint64_t
declog_suppressed(const struct declog *d)
{
	return d->suppressed;
}

const char *
dl_verdict_name(enum dl_verdict v)
{
	static const char *const names[DL_VERDICTS] = {
		[DL_ANSWERED] = "answered",
		[DL_REFUSED] = "refused",
		[DL_SERVFAIL] = "servfail",
		[DL_ERROR] = "error",
	};

	return (unsigned)v < DL_VERDICTS ? names[v] : "?";
}

const char *
dl_type_name(uint16_t qtype, char *buf, size_t len)
{
	static const struct {
		uint16_t t;
		const char *s;
	} types[] = {
		{1, "A"},
		{2, "NS"},
		{5, "CNAME"},
		{6, "SOA"},
		{12, "PTR"},
		{15, "MX"},
		{16, "TXT"},
		{28, "AAAA"},
		{33, "SRV"},
		{43, "DS"},
		{48, "DNSKEY"},
		{64, "SVCB"},
		{65, "HTTPS"},
		{255, "ANY"},
		{252, "AXFR"},
		{251, "IXFR"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (types[i].t == qtype)
			return types[i].s;
	snprintf(buf, len, "TYPE%u", qtype);
	return buf;
}

const char *
dl_stripped_name(int k)
{
	static const char *const names[DL_STRIPPED] = {"private", "reserved",
		"internal"};

	return k >= 0 && k < DL_STRIPPED ? names[k] : "?";
}

/* "; stripped 2 (private)", "; stripped 3 (2 private, 1 reserved)" */
static const char *
dl_format_stripped(const struct dl_entry *e, char *buf, size_t n, size_t len)
{
	uint32_t total = 0;
	int kinds = 0, left;

	for (int k = 0; k < DL_STRIPPED; k++) {
		total += e->stripped[k];
		kinds += e->stripped[k] > 0;
	}
	if (total == 0 || n >= len)
		return buf;
	n += (size_t)snprintf(buf + n, len - n, "; stripped %u (", total);
	left = kinds;
	for (int k = 0; k < DL_STRIPPED && n < len; k++) {
		if (e->stripped[k] == 0)
			continue;
		if (kinds > 1)
			n += (size_t)snprintf(buf + n, len - n, "%u ",
				e->stripped[k]);
		if (n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
				dl_stripped_name(k), --left > 0 ? ", " : ")");
	}
	return buf;
}

const char *
dl_format_body(const struct dl_entry *e, char *buf, size_t len)
{
	char tb[16], ab[INET6_ADDRSTRLEN];
	size_t n;

	n = (size_t)snprintf(buf, len, "VM %s, %s %s: %s (%s)",
		e->vm[0] ? e->vm : "(unknown)", e->name[0] ? e->name : ".",
		dl_type_name(e->qtype, tb, sizeof(tb)),
		dl_verdict_name((enum dl_verdict)e->verdict), e->cause);
	for (uint32_t i = 0; i < e->naddrs && i < DL_ADDRS && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s",
			i ? ", " : "; admitted ",
			policy_addr_str(&e->addrs[i], ab, sizeof(ab)));
	if (e->naddrs > DL_ADDRS && n < len)
		n += (size_t)snprintf(buf + n, len - n, " and %u more",
			e->naddrs - DL_ADDRS);
	if (e->naddrs > 0 && n < len)
		n += (size_t)snprintf(buf + n, len - n, " for %u s",
			e->timeout_s);
	return dl_format_stripped(e, buf, n, len);
}

const char *
dl_time(int64_t when_ms, char *buf, size_t len)
{
	time_t t = (time_t)(when_ms / 1000);
	struct tm tm;
	char ts[32];

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", ts, (int)(when_ms % 1000));
	return buf;
}

const char *
dl_format(const struct dl_entry *e, char *buf, size_t len)
{
	char ts[40];
	int n = snprintf(buf, len, "%s ", dl_time(e->when_ms, ts, sizeof(ts)));

	if (n > 0 && (size_t)n < len)
		dl_format_body(e, buf + n, len - (size_t)n);
	return buf;
}
