/* dnsfencectl's commands, as the daemon answers them: status, list, why,
 * log, metrics read the running state; reload, flush and suggest go
 * through hooks the daemon gives, since they change or read what only it
 * holds. Every answer is a human table, or one JSON document with -j. */
#ifndef DNSFENCE_CTLCMD_H
#define DNSFENCE_CTLCMD_H

#include <stdbool.h>
#include <stdint.h>

#include "control.h"

struct server;
struct admit;
struct metrics_out;

struct ctlcmd {
	struct server *srv;
	struct admit *admit;
	const char *conf_path;
	int64_t started; /* wall clock, seconds */
	bool deladd;	 /* the kernel keeps old timeouts (delete + add) */
	uint64_t reloads_ok, reloads_failed;
	/* The daemon's part. Each ends cc itself, now or when done. */
	void (*reload)(struct ctl_conn *cc, bool json, void *arg);
	void (*flush)(struct ctl_conn *cc, const char *vm, bool json,
		void *arg);
	void (*suggest)(struct ctl_conn *cc, const char *vm, bool json,
		void *arg);
	/* Extra lines for `status` and samples for `metrics` from the
	 * daemon's other parts (temporary rules, learning), or NULL. */
	void (*status_more)(struct ctl_conn *cc, bool json, void *arg);
	void (*metrics_more)(struct metrics_out *m, void *arg);
	void *arg;
};

/** The control_cmd_cb: arg is a struct ctlcmd. */
void ctlcmd_dispatch(struct ctl_conn *cc, const struct ctl_request *rq,
	void *arg);

/* Metrics, for metrics_more: a family's TYPE and HELP lines (counters
 * named by family; the format decides how the lines spell it), then its
 * samples (counters' end in _total), label values through
 * metrics_label. */
void metrics_head(struct metrics_out *m, const char *name, const char *type,
	const char *help);
void metrics_printf(struct metrics_out *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void metrics_label(struct metrics_out *m, const char *s);

/** Write s as a JSON string (quoted, escaped), or null when s is NULL. */
void ctl_json_str(struct ctl_conn *cc, const char *s);

#endif
