/*
 * vc.h -- the Virtualization Center over SIP (vc_): hotdeskd answers the
 * calls a PBX or proxy routes to it for "*30...", prompts, collects the
 * secret code as DTMF and applies the same decisions as the webhook.
 *
 * Owns: one UDP SIP socket, one RTP socket per call from a port range, the
 * dialogs and the INVITE/BYE transactions of a user agent server (RFC 3261),
 * prompt pacing every 20 ms, key presses (RFC 4733, SIP INFO), and the
 * decision workers that call the service.  Does not own: the rules, the
 * try limits and the events (svc_star30, the same engine as
 * POST /pbx/v1/star30), SIP parsing (sipmsg.c), SDP (sdp.c), RTP (rtp.c),
 * prompt files (prompt.c).
 *
 * Threads: one engine thread owns every call, socket and timer; two worker
 * threads run the decisions (an Argon2id verify takes tens of ms and must
 * not delay the 20 ms pacing).  They meet only in two queues guarded by
 * one mutex (vc.lock, taken for queue operations only; the service lock is
 * taken by workers, never while holding vc.lock).
 *
 * A call's life (the function for each transition in vc.c):
 *
 *   INVITE ─> DECIDING (100, 180 sent; first decision queued: on_invite)
 *     ├─ result ─> ANSWERED (200 + SDP, retransmitted until ACK: on_result)
 *     │     └─ ACK ─> ACTIVE (playlist plays: on_ack)
 *     │           ├─ prompt ends, code wanted ─> COLLECTING (tick)
 *     │           │     └─ '#' ─> DECIDING again (on_key), result ─> ACTIVE
 *     │           └─ outcome prompt ends ─> BYE sent ─> CLOSED (tick)
 *     ├─ CANCEL ─> 487 ─> CLOSED (on_cancel)
 *     └─ error/refusal ─> 4xx/5xx ─> CLOSED
 *   BYE from the caller at any time ─> 200 ─> CLOSED; CLOSED lingers
 *   64*T1 to absorb retransmissions, then the slot is freed.
 */
#ifndef HD_VC_H
#define HD_VC_H

#include <stddef.h>

#include "config.h"
#include "service.h"

struct vc_opts {
	const char *bind;            /* "ip:port" (port 0: OS-chosen) */
	const char *contact_host;    /* NULL: the bind host (not a wildcard) */
	const struct cfg_netlist *networks; /* who may send requests (copied) */
	const char *caller_header;   /* NULL: P-Asserted-Identity, then From */
	const char *prefix;          /* dialed prefix, e.g. "*30" */
	int rtp_min, rtp_max;        /* RTP port range */
	const char *prompts;         /* prompt folder (prompt.h) */
	const char *language;        /* default language */
	int code_timeout_s;          /* silence before a call ends while collecting */
	int max_call_s;              /* longest call */
	int max_calls;               /* concurrent calls, lingering ones included */
	int t1_ms;                   /* RFC 3261 T1 */
	/* The decision: svc_star30 in the daemon.  Returns SVC_OK or not. */
	int (*star30)(void *arg, const struct svc_star30_req *r, struct svc_star30_res *res);
	void *star30_arg;
	/* Optional: the prompt language for a caller (e.g. its organization's);
	 * writes it into buf and returns buf, or returns NULL for the default. */
	const char *(*language_of)(void *arg, const char *caller, char *buf, size_t len);
	void *language_arg;
};

struct vc;

/* Loads the prompts, binds the SIP socket and starts the threads.  NULL
 * with a message in err on failure. */
struct vc *vc_start(const struct vc_opts *o, char *err, size_t errlen);

/* The SIP port bound. */
int vc_port(const struct vc *v);

/* Stops the threads (calls in progress end without BYE), frees all.
 * NULL-safe. */
void vc_stop(struct vc *v);

#endif /* HD_VC_H */
