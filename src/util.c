#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatal("calloc");
	return p;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	void *q;

	if (size != 0 && n > SIZE_MAX / size)
		fatalx("reallocarray: overflow");
	q = realloc(p, n * size != 0 ? n * size : 1);
	if (q == NULL)
		fatal("realloc");
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatal("strdup");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		fatal("asprintf");
	va_end(ap);
	return s;
}

uint64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
util_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

void
diag_add(struct diag *d, const char *file, int line, int col, const char *fmt,
	...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->msgs = xreallocarray(d->msgs, d->n + 1, sizeof(*d->msgs));
	if (line > 0)
		d->msgs[d->n++] =
			xasprintf("%s:%d:%d: %s", file, line, col, msg);
	else
		d->msgs[d->n++] = xasprintf("%s: %s", file, msg);
}

void
diag_print(const struct diag *d, void (*out)(const char *))
{
	for (size_t i = 0; i < d->n; i++)
		out(d->msgs[i]);
}

void
diag_finish(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->msgs[i]);
	free(d->msgs);
	d->msgs = NULL;
	d->n = 0;
}
