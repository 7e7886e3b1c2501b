/* Small helpers shared by every module: checked allocation, a list of
 * diagnostics in FILE:LINE:COLUMN form. */
#ifndef DNSFENCE_UTIL_H
#define DNSFENCE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
/** Milliseconds on the monotonic clock. */
uint64_t util_now_ms(void);
/** Whole seconds of UTC wall time (CLOCK_REALTIME), rounded down: what
 * a rule's `until` is compared with. */
int64_t util_wall_s(void);

char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grow *arr (of *n elements) by one zeroed element and return it. */
#define ARRAY_PUSH(arr, n) \
	((arr) = xreallocarray((arr), (n) + 1, sizeof(*(arr))), \
		memset(&(arr)[(n)], 0, sizeof(*(arr))), &(arr)[(n)++])

/** Every problem found while loading, in the order found. */
struct diag {
	char **msgs;
	size_t n;
};

void diag_add(struct diag *d, const char *file, int line, int col,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void diag_print(const struct diag *d, void (*out)(const char *));
void diag_finish(struct diag *d);

#endif
