/*
 * notify.h -- resync NOTIFY client transactions over one UDP socket (notify_).
 *
 * Owns: one non-blocking UDP socket (or an injected send function for
 * tests) and any number of concurrent RFC 3261 17.1.2 non-INVITE client
 * transactions, each carrying one out-of-dialog NOTIFY (SPEC 5).  Does not
 * own: which devices to resync, retries across transactions (backoff for an
 * unsynced device is the service layer's), name resolution (targets are
 * numeric addresses: the caller resolves), the clock (now_ms is passed in;
 * only notify_run_until_idle reads CLOCK_MONOTONIC).
 *
 * One transaction, states and the function for each transition:
 *
 *   notify_send ──> TRYING ──1xx (notify_input)──> PROCEEDING
 *                     │  Timer E (notify_tick): retransmit, interval
 *                     │  doubles up to T2 (stays T2 once PROCEEDING)
 *                     ├─ 401/407 first time, credentials given
 *                     │    (notify_input): new branch, CSeq+1, same Call-ID
 *                     │    and From tag, timers restart: a new TRYING
 *                     ├─ final 2xx-6xx (notify_input) ──> done(status)
 *                     ├─ Timer F (notify_tick) ──> done(0, "timeout")
 *                     └─ transport error (notify_tick) ──> done(-1)
 *
 * Invariants:
 *   1. done is called exactly once per id returned by notify_send, from
 *      notify_tick or notify_input (never from notify_send), after the
 *      transaction was removed: done may call notify_send, not notify_free.
 *   2. A response matches a transaction only by its top Via branch, CSeq
 *      number and method NOTIFY (RFC 3261 17.1.3); anything else is ignored.
 *   3. Passwords are copied once, used only to compute a digest, and wiped
 *      with sodium_memzero when the transaction ends; they are never
 *      logged (this module never logs) nor put into a result.
 */
#ifndef HD_NOTIFY_H
#define HD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "sip.h"

/* How datagrams leave.  Tests inject one; NULL in notify_opts means the
 * module's own UDP socket. */
struct notify_ops {
	/* Sends len bytes to the numeric host:port.  Returns 0, or -1 on a
	 * transport error (the transaction then ends with status -1). */
	int (*send)(void *arg, const char *host, int port, const void *buf,
	    size_t len);
	void *arg;
};

struct notify_result {
	uint64_t id;          /* as returned by notify_send */
	int status;           /* SIP final status, 0 timeout, -1 error */
	char reason[128];     /* reason phrase, "timeout" or an error text */
	int attempts;         /* datagrams sent, retransmissions included */
	int requests;         /* distinct requests: 1, or 2 after a challenge */
	long long elapsed_ms; /* from notify_send to the end */
};

struct notify_opts {
	/* Local address: numeric IPv4 or IPv6, port 0 = OS-chosen.  With
	 * ops set no socket is opened and bind_port is written in Via and
	 * Contact as given (it must then be > 0). */
	const char *bind_host;
	int bind_port;
	/* Host written in Via/From/Contact; NULL = bind_host (which must
	 * then not be a wildcard address). */
	const char *contact_host;
	const char *from_user;        /* NULL = "hotdeskd" */
	/* Optional "host:port" or "[v6]:port" (port defaults to 5060):
	 * every NOTIFY is sent there, with a Route header. */
	const char *outbound_proxy;
	/* Timers in ms; 0 = RFC 3261 defaults (500, 4000, 64*T1). */
	int t1_ms, t2_ms, timer_f_ms;
	const struct notify_ops *ops; /* NULL = real UDP socket */
	void (*done)(void *arg, const struct notify_result *r);
	void *done_arg;
};

/* One resync.  Every string is borrowed for the call only (copied). */
struct notify_target {
	const char *host;          /* numeric IPv4/IPv6 address */
	int port;                  /* 0 = 5060 */
	const char *user;          /* Request-URI user part, may be NULL */
	const char *event;         /* Event header value, required */
	const char *subscription_state; /* optional; NULL = "terminated" */
	const char *content_type;  /* optional, with body */
	const char *body;
	const char *auth_user;     /* optional digest credentials */
	const char *auth_password;
	/* With credentials: the challenges they may answer (sip.h); a 401/407
	 * that does not fit ends the transaction with its status. */
	struct sip_auth_policy auth_policy;
};

struct notify;

/* Creates the module; opens and binds the socket unless opts->ops is set.
 * Returns NULL with err filled on a bad option or a socket error (or out of
 * memory).  opts is copied; its strings need not outlive the call. */
struct notify *notify_new(const struct notify_opts *opts, char *err,
    size_t errlen);

/* Closes the socket and frees every pending transaction without calling
 * done for them, wiping their passwords.  NULL-safe.  Not from done. */
void notify_free(struct notify *n);

/* Starts one NOTIFY transaction and sends its first datagram at now_ms.
 * Returns 0 and sets *id (may be NULL), or -1 when the target is invalid
 * (non-numeric host, CR/LF in a value, ...) or memory runs out: then done
 * will not be called.  A send failure is not an error here: it is
 * reported through done with status -1 at the next notify_tick. */
int notify_send(struct notify *n, const struct notify_target *t,
    long long now_ms, uint64_t *id);

/* Fires the timers due at now_ms, soonest first, at most max (a caller
 * that shares n between threads holds its lock for a bounded time; 0 =
 * every one): retransmissions, Timer F, queued transport errors.  Calls
 * done for the transactions that end.  Returns how many fired: fewer
 * than max when none is due any more. */
size_t notify_tick(struct notify *n, long long now_ms, size_t max);

/* Feeds one received datagram.  Returns 1 when it matched a transaction,
 * 0 when it was ignored (garbage, unknown branch, a request). */
int notify_input(struct notify *n, const char *pkt, size_t len,
    long long now_ms);

/* The socket to poll for POLLIN, or -1 with injected ops. */
int notify_poll_fd(const struct notify *n);

/* Reads the datagrams waiting on the socket, at most max (a caller that
 * shares n between threads holds its lock for a bounded time; 0 = 1024),
 * and feeds each to notify_input.  Returns how many were read, or -1 on a
 * socket error. */
int notify_recv(struct notify *n, long long now_ms, int max);

/* Milliseconds from now_ms until the next timer (0 when one is due), or
 * -1 when nothing is pending. */
long long notify_next_timeout_ms(const struct notify *n, long long now_ms);

/* Number of transactions in progress. */
size_t notify_pending(const struct notify *n);

/* The local port NOTIFYs are sent from (the OS's choice when 0 was asked). */
int notify_local_port(const struct notify *n);

/* CLOCK_MONOTONIC in milliseconds. */
long long notify_now_ms(void);

/* Blocking helper for tools and tests: polls the socket and drives timers
 * with the real clock until nothing is pending or max_ms have passed.
 * Returns the number of transactions still pending (0 = idle), or -1 on a
 * socket error. */
int notify_run_until_idle(struct notify *n, int max_ms);

#endif /* HD_NOTIFY_H */
