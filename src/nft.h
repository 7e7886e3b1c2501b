/* The netlink socket to nf_tables. Every change goes through a batch (one
 * transaction); a batch is sent without blocking and completes later, when
 * the kernel has acknowledged its last message, with the first error the
 * kernel reported (and the object it concerned) or 0. That asynchronous
 * request -> completion shape lets the socket move to a privileged process
 * later without changing callers. */
#ifndef DNSFENCE_NFT_H
#define DNSFENCE_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nlmsghdr;
struct nft;
struct nft_batch;

/** Called once per sent batch: err is 0 or a positive errno; msg names the
 * failing object and carries the kernel's extended ACK text. */
typedef void (*nft_done_cb)(int err, const char *msg, void *arg);

struct nft *nft_open(void);
void nft_close(struct nft *n);
int nft_fd(const struct nft *n);

struct nft_batch *nft_batch_new(struct nft *n);
void nft_batch_free(struct nft_batch *b);
/** Start a message in the batch; room for at least `room` bytes of
 * payload. `what` names the object for error messages. */
struct nlmsghdr *nft_batch_msg(struct nft_batch *b, uint16_t type,
	uint16_t family, uint16_t flags, size_t room, const char *what);
/** Send and take ownership; cb runs from nft_dispatch() (or at once, with
 * an error, if sending failed). An empty batch completes at once with 0. */
void nft_batch_send(struct nft_batch *b, nft_done_cb cb, void *arg);

/** Read whatever the kernel sent; run completions. -1 on socket error. */
int nft_dispatch(struct nft *n);
/** Block until every pending batch has completed or timeout_ms passed. */
int nft_wait(struct nft *n, int timeout_ms);
/** Fail batches older than max_ms (lost ACKs must not hang queries). */
void nft_expire(struct nft *n, int max_ms);

/** Our port id: the kernel's notifications of our own changes carry it. */
uint32_t nft_portid(const struct nft *n);

/* Changes made to our table by anyone else (`nft flush ruleset`, a restart
 * of nftables.service, `nft delete element`): the kernel's notifications
 * (NFNLGRP_NFTABLES) on a socket of their own, so that a burst of them
 * never crowds out the ACKs the admission path waits for. */
struct nft_mon;
/** what: the kind of change seen, for the log. */
typedef void (*nft_mon_cb)(const char *what, void *arg);
struct nft_mon *nft_mon_open(const char *table, uint32_t own_portid,
	nft_mon_cb cb, void *arg);
int nft_mon_fd(const struct nft_mon *m);
/** Read every pending notification; cb runs once per foreign change of
 * our table, and once (with "lost notifications") if the kernel had to
 * drop some. */
void nft_mon_dispatch(struct nft_mon *m);
void nft_mon_close(struct nft_mon *m);
/** The notification socket nft_mon_open() reads, subscribed: the
 * privileged process makes it for the engine before the fork. -1 on
 * error. */
int nft_mon_socket(void);

/* Synchronous dumps over a short-lived socket, for start-up and reload. */
struct nftnl_set_list;
struct nftnl_chain_list;
/** Sets of table (family inet); NULL list (and 0) when there is no such
 * table, -1 on error. */
int nft_dump_sets(const char *table, struct nftnl_set_list **out);
int nft_dump_chains(const char *table, struct nftnl_chain_list **out);
struct nftnl_rule_list;
/** Every rule of `inet table` (with its counters); *out NULL and 0 when
 * there is no such table. */
int nft_dump_rules(const char *table, struct nftnl_rule_list **out);
/** Elements of one set, added to s (which names table and set). */
struct nftnl_set;
int nft_dump_elems(struct nftnl_set *s);

/* ---- privilege separation (privproto.h) ---------------------------------
 * In the engine, after nft_use_priv(), nothing here opens a netlink
 * socket: nft_open() returns an object that talks to the privileged
 * process, batches are checked there and written anew, and dumps are
 * made there of our own table only. nft_mon_open() reads the kernel's
 * notifications on the socket the privileged process opened for it. */
/** mon_fd: a notification socket (nft_mon_socket()); portid: that of
 * the privileged process's transactions, whose notifications are ours. */
void nft_use_priv(int batch_fd, int sync_fd, int mon_fd, uint32_t portid);
bool nft_priv_active(void);
bool nft_is_priv(const struct nft *n);
/** The privileged process is gone (its channel closed or it broke the
 * protocol): nothing can be admitted any more. */
bool nft_gone(const struct nft *n);
/** This batch installs generation gen of the configuration as in force
 * at second at; the privileged process builds the rules itself (as a
 * change of those it installed last, with_prev) before the batch's
 * element messages. */
void nft_batch_install(struct nft_batch *b, uint32_t gen, int64_t at,
	bool with_prev);
/** A frame on the batch channel (PRIV_READY). */
int nft_priv_send(int type, const void *p, size_t len);
/** PRIV_LOAD: the privileged process reads the files again; *rec is the
 * PRIV_CONFIG payload (free it). */
int nft_priv_load(uint8_t **rec, uint32_t *len);
/** The privileged process: a dump of our table's sets, chains, rules or
 * one set's elements (enum priv_dump), the kernel's messages as they came
 * (malloc'd). -1 with errno (ENOENT: no such table or set). */
int nft_dump_collect(int kind, const char *table, const char *set,
	uint8_t **out, size_t *len);

/* ---- conntrack ------------------------------------------------------------ */
struct nft_ct;
struct priv_ctdel;
typedef int (*nft_msg_cb)(const struct nlmsghdr *nlh, void *data);
struct nft_ct *nft_ct_open(void);
void nft_ct_close(struct nft_ct *ct);
/** Every entry of a family's table, each message to cb (MNL_CB_*). */
int nft_ct_dump(struct nft_ct *ct, int family, nft_msg_cb cb, void *data);
int nft_ct_collect(struct nft_ct *ct, int family, uint8_t **out, size_t *len);
/** Delete one entry by its original tuple and id; an entry gone
 * meanwhile counts as deleted. */
int nft_ct_delete(struct nft_ct *ct, const struct priv_ctdel *d);
/** Delete n entries (through the privileged process: in frames of up to
 * PRIV_CTDEL_MAX); st[i] 0 when deleted or gone, else an errno. -1 only
 * if none could be asked. */
int nft_ct_delete_many(struct nft_ct *ct, const struct priv_ctdel *d, size_t n,
	uint8_t *st);

#endif
