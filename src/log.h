/* Logging: stderr always, syslog too when stderr is not a terminal. */
#ifndef DNSFENCE_LOG_H
#define DNSFENCE_LOG_H

#include <stdarg.h>

/** Set up logging; verbosity 0 = info, 1+ = debug. */
void log_init(const char *ident, int verbosity);

/* log_warn appends strerror(errno); log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
