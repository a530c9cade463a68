/*
 * resync.h -- the rules of the resync engine: a confirmed SIP NOTIFY to
 * every phone whose configuration changed (SPEC 5).
 *
 * Owns: the decision of when to NOTIFY which device where (states,
 * backoff, target choice, which device a registration belongs to), as
 * pure functions (resync.c: no store handle, clock, thread or I/O).  The
 * thread that carries the decisions out with a struct notify (notify.h)
 * is resync_engine.h.  Does not own: the outbox rows' creation
 * (service.c writes a 'pending' row for every changed device in the
 * change's own transaction), rendering (publish.c), SIP transactions
 * (notify.c).  The store is only touched under the service lock, through
 * svc_locked or from the service's hooks; the lock is never held while a
 * datagram is sent or a name resolved.
 *
 * One device's resync row (store_resync, sql/002_publish.sql):
 *
 *            change committed (service.c outbox_one)
 *                         |
 *                         v
 *   +------------->  pending  --resync_step: SEND--> notified --+
 *   |                   |                               |  ^     |
 *   | outbox_one        | resync_confirm_*              |  |     | resync_step:
 *   | (a new change)    v                               |  +-----+ SEND again after
 *   +-------------- synced <---- resync_confirm_* ------+        | timeout*2^(n-1)
 *                      ^                                         |
 *                      +------ resync_confirm_* --- stale <------+ resync_step:
 *                                                                 GIVE_UP after
 *                                                                 `retries` NOTIFYs
 * Invariants:
 *   1. attempts counts the NOTIFYs decided for the row's version; a row
 *      with attempts >= retries is never sent again (it goes stale).
 *   2. A row is synced only on evidence from the phone itself: a fetch of
 *      at least the row's version (version != 0), or a registration with
 *      the identity it must carry now, resolved to the device by its
 *      User-Agent MAC or its own contact address (never by identity alone:
 *      the phone a moved extension is leaving registers that identity too).
 *   3. The target is never the moved extension's address of record: it is
 *      the contact the device itself registered last (device_contact),
 *      else its last fetch's address on port 5060, else its static contact.
 *   4. Passwords are copied only into a send job, wiped after notify_send.
 *   5. A row changes with its event ("resync.sent", "resync.synced", ...)
 *      or not at all: a round of results and fetches, or a registration,
 *      whose writes fail is rolled back whole (the rows wait as they were;
 *      the phones' next fetches count again).
 *
 * Times: rows are in seconds (the store's clock); NOTIFY timers in ms.
 */
#ifndef HD_RESYNC_H
#define HD_RESYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "store.h" /* struct store_resync, a plain row */
#include "world.h"

struct resync_policy {
	int timeout_s; /* wait for confirmation after the first NOTIFY; doubles */
	int retries;   /* NOTIFYs before a device is stale */
};

enum resync_action {
	RESYNC_WAIT,    /* nothing to do now */
	RESYNC_SEND,    /* send a NOTIFY now (row updated: notified, attempts+1) */
	RESYNC_GIVE_UP, /* row became stale */
};

/* Seconds to wait for confirmation after NOTIFY number `attempts` (1 =
 * the first): timeout_s * 2^(attempts-1), capped at one day.  Cannot fail. */
long long resync_backoff_s(const struct resync_policy *p, int attempts);

/* Decides what row needs at now and updates it: SEND (state notified,
 * attempts + 1, next_at = now + backoff), GIVE_UP (state stale,
 * next_at 0), or WAIT (row unchanged: not due, or synced/stale). */
enum resync_action resync_step(struct store_resync *row, const struct resync_policy *p,
                               long long now);

/* Records the outcome of a NOTIFY in row (last_result, last_at = now):
 * status is a SIP final status, 0 for a timeout, -1 for an error (reason
 * then says which).  Returns true for a 2xx.  The state is unchanged. */
bool resync_record_result(struct store_resync *row, int status, const char *reason,
                          long long now);

/* A fetch of `version`: marks the row synced when its version is known
 * and reached.  Returns true when the row changed. */
bool resync_confirm_fetch(struct store_resync *row, unsigned long long fetched);

/* How a registration was matched to a device (invariant 2). */
enum resync_how { RESYNC_BY_NONE, RESYNC_BY_UA, RESYNC_BY_ADDRESS, RESYNC_BY_IDENTITY };
const char *resync_how_name(enum resync_how h); /* "ua", "address", "identity", "" */

/* A registration with identity reg_user, resolved `how`: marks the row
 * synced when that proves the phone carries expected_user (the identity
 * the device must carry now).  Returns true when the row changed. */
bool resync_confirm_registration(struct store_resync *row, const char *reg_user,
                                 const char *expected_user, enum resync_how how);

/* What a registration says, to find the device it belongs to. */
struct resync_reg_in {
	const char *sip_user;       /* the identity registered */
	const char *ua_mac;         /* MAC from the User-Agent, or NULL/"" */
	hd_id addr_dev;             /* device whose last contact has this address, or 0 */
	const char *addr_prev_user; /* identity that device registered there last */
};

/* The device the registering phone is: the one named by the User-Agent's
 * MAC; else the device that registered from this address before, when the
 * identity is the one it had there or the one it must carry now; else the
 * device carrying sip_user now (virt_calling_device).  NULL when none;
 * *how says which rule matched. */
const struct hd_dev *resync_reg_device(const struct world *w, const struct resync_reg_in *in,
                                       enum resync_how *how);

/* The identity device d must be registered with now: its carried
 * extension's sip_user, or its parking account (NULL when it has none). */
const char *resync_expected_user(const struct world *w, const struct hd_dev *d);

/*
 * Splits a SIP URI ("sip:user@host:port;params", optionally in <...>,
 * "sip:host", "[v6]", an "ip" or "ip:port" without scheme) into user,
 * host (no brackets) and port (0 when absent).  sips: is refused (we only
 * send over UDP).  Returns 0, or -1 when it is not such a URI or a part
 * does not fit.
 */
int resync_parse_uri(const char *uri, char *user, size_t userlen, char *host, size_t hostlen,
                     int *port);

enum resync_source { RESYNC_TGT_NONE, RESYNC_TGT_REGISTRATION, RESYNC_TGT_FETCH,
                     RESYNC_TGT_STATIC };
const char *resync_source_name(enum resync_source s); /* "registration", ... */

struct resync_target_in {
	const char *reg_contact;     /* device_contact.contact, or NULL */
	long long reg_expires_at;    /* ignored (expired) when <= now */
	const char *fetch_source;    /* "ip" of the last configuration fetch, or NULL/"" */
	const char *static_contact;  /* the device's static contact URI, or NULL */
	long long now;
	const struct cfg_netlist *nets; /* [sip] notify_networks; NULL/empty = any */
};

struct resync_target {
	enum resync_source source;
	char user[128]; /* Request-URI user part, may be "" */
	char host[256]; /* numeric address, or a name for a static contact */
	int port;       /* 5060 when the URI had none */
};

/* Picks the target of invariant 3 (a candidate that does not parse is
 * skipped).  Returns 0, or -1 (out->source NONE) when there is none. */
int resync_pick_target(const struct resync_target_in *in, struct resync_target *out);

/*
 * Whether a NOTIFY may go to the numeric address host, port port: NULL
 * when it may, else a short reason.  Refused: a host that is not a numeric
 * address; "this network" 0.0.0.0/8, multicast 224.0.0.0/4, the reserved
 * 240.0.0.0/4 (with the broadcast 255.255.255.255), the unspecified ::,
 * IPv6 multicast ff00::/8 (IPv4-mapped IPv6 judged as IPv4); a port below
 * 1024 (5060 and 5061 are above); with a non-empty nets, an address
 * outside every listed network, or the broadcast address of a listed IPv4
 * network of /30 or wider.  Pure.
 */
const char *resync_target_refused(const char *host, int port, const struct cfg_netlist *nets);

/* Writes "sip:user@host:port" (IPv6 bracketed) of t into buf, for events
 * and the API; "(too long)" when it does not fit. */
void resync_target_uri(const struct resync_target *t, char *buf, size_t len);

/* Whether row is in state s ("pending", "notified", "synced", "stale"). */
bool resync_state_is(const struct store_resync *row, const char *s);
/* Sets row's state to s (one of the four names). */
void resync_set_state(struct store_resync *row, const char *s);
/* Whether h is a numeric IPv4 or IPv6 address (no name resolved). */
bool resync_numeric_host(const char *h);

#endif /* HD_RESYNC_H */
