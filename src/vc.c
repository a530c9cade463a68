/*
 * vc.c -- the Virtualization Center over SIP: calls to "*30..." answered,
 * prompted and decided by hotdeskd (see vc.h for the call's states).
 *
 * One engine thread runs a ppoll loop over the SIP socket, the RTP socket
 * of every call and an eventfd that the decision workers signal.  Every
 * 20 ms (an absolute CLOCK_MONOTONIC schedule, so lateness does not add
 * up) it sends one RTP frame to each call with media and runs the timers.
 * Calls live in a fixed table of slots; a slot's generation number makes a
 * late decision for a slot that was reused harmless.
 *
 * Secrets: the digits of a code live in the call until a worker has them;
 * both copies are wiped with sodium_memzero once used.  Nothing here logs a
 * code.
 */
#include "vc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "authlog.h"
#include "errbuf.h"
#include "log.h"
#include "prompt.h"
#include "rtp.h"
#include "sdp.h"
#include "sipmsg.h"
#include "lockorder.h"

#define TICK_NS 20000000LL
#define MAX_CODE 16
#define T2_MS 4000
#define WORKERS 2
#define SIP_MSG_BUF 8192

enum cstate {
	C_FREE,
	C_DECIDING,   /* a decision is queued; not yet answered (first one) */
	C_ANSWERED,   /* 200 sent, waiting for ACK */
	C_ACTIVE,     /* confirmed: playing, collecting or deciding again */
	C_CLOSED,     /* ended: lingers to answer retransmissions */
};

/* What follows the playlist of an active call. */
enum after { AFTER_NONE, AFTER_COLLECT, AFTER_BYE };

struct call {
	enum cstate state;
	unsigned gen;
	long long created, linger_until, end_at;
	/* dialog */
	char call_id[256];
	char local_tag[24];
	char remote_from[512];    /* their From value: our To in requests */
	char local_to[560];       /* their To value + our tag: our From */
	char remote_target[256];
	char routes[4][256];
	size_t nroutes;
	char via_branch[128];     /* of the INVITE, to match CANCEL */
	struct sockaddr_storage sig_peer;
	socklen_t sig_peer_len;
	/* the INVITE's final response, retransmitted until ACK */
	char *resp;
	size_t resp_len;
	bool resp_wants_ack;
	long long resp_next, resp_iv, resp_give_up;
	/* our BYE, retransmitted until answered */
	char *bye;
	size_t bye_len;
	struct sockaddr_storage bye_peer;
	socklen_t bye_peer_len;
	long long bye_next, bye_iv, bye_give_up;
	/* media */
	int rtp_fd, rtp_port;
	struct sockaddr_storage media_peer;
	socklen_t media_peer_len;
	int pt, te_pt;
	uint32_t ssrc, ts;
	uint16_t seq;
	bool media_on, marker;
	struct prompt_play play;
	bool playing;
	enum after after;
	struct rtp_dtmf dtmf;
	/* the INVITE, kept until it has its final response */
	char *invite;
	size_t invite_len;
	struct sdp_offer offer;
	/* engine */
	char caller[128];
	char digits[32];
	char lang[32];
	char code[MAX_CODE + 1];
	size_t ncode;
	char ahead[MAX_CODE + 2]; /* keys typed while a decision runs */
	size_t nahead;
	bool collecting, deciding;
	long long key_deadline;
};

struct job {
	struct job *next;
	size_t slot;
	unsigned gen;
	bool with_code;
	char caller[128], digits[32], call_id[256], code[MAX_CODE + 1], lang[32];
	int rc;
	struct svc_star30_res res;
};

struct vc {
	struct vc_opts o;
	struct cfg_netlist nets;
	char bind_host[64], contact_host[64], prefix[16], caller_header[64];
	char prompts_dir[4096], language[32];
	int sip_fd, ev_fd, port;
	struct prompts *prompts;
	struct call *calls;
	size_t ncalls;
	int next_rtp;
	pthread_t engine, workers[WORKERS];
	bool engine_started;
	size_t nworkers;
	pthread_mutex_t lock;      /* the two queues and stopping */
	pthread_cond_t cond;
	struct job *todo, *todo_tail, *done;
	bool stopping;
	char buf[SIP_MSG_BUF];
};

/* ---- small helpers ------------------------------------------------------ */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
rand_token(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[32];
	size_t i;

	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	randombytes_buf(r, nbytes);
	for (i = 0; i < nbytes; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[2 * nbytes] = '\0';
}

static int
numeric_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char ps[8];

	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_DGRAM;
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0 || ai == NULL)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static bool
same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr, 16) == 0;
}

static int
udp_bind(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	int fd, one = 1;

	if (numeric_addr(host, port, ss, len) != 0)
		return -1;
	if ((fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)ss, *len) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
send_to(int fd, const void *buf, size_t len, const struct sockaddr_storage *ss, socklen_t sl)
{
	/* UDP: a lost datagram is a retransmission's business */
	(void)sendto(fd, buf, len, 0, (const struct sockaddr *)ss, sl);
}

/* ---- call slots --------------------------------------------------------- */

static void
call_release_media(struct call *c)
{
	if (c->rtp_fd >= 0)
		close(c->rtp_fd);
	c->rtp_fd = -1;
	c->media_on = false;
	c->playing = false;
}

static void
call_free(struct call *c)
{
	unsigned gen = c->gen + 1;

	call_release_media(c);
	free(c->resp);
	free(c->bye);
	free(c->invite);
	sodium_memzero(c->code, sizeof(c->code));
	memset(c, 0, sizeof(*c));
	c->rtp_fd = -1;
	c->gen = gen;
	c->state = C_FREE;
}

/* Ends the call; it lingers for 64*T1 to answer retransmissions. */
static void
call_close(struct vc *v, struct call *c, long long now)
{
	call_release_media(c);
	c->collecting = false;
	sodium_memzero(c->code, sizeof(c->code));
	sodium_memzero(c->ahead, sizeof(c->ahead));
	c->ncode = c->nahead = 0;
	c->state = C_CLOSED;
	c->linger_until = now + 64LL * v->o.t1_ms;
}

static struct call *
call_find(struct vc *v, const char *call_id)
{
	size_t i;

	for (i = 0; i < v->ncalls; i++)
		if (v->calls[i].state != C_FREE && strcmp(v->calls[i].call_id, call_id) == 0)
			return &v->calls[i];
	return NULL;
}

static struct call *
call_new(struct vc *v)
{
	size_t i;

	for (i = 0; i < v->ncalls; i++)
		if (v->calls[i].state == C_FREE)
			return &v->calls[i];
	return NULL;
}

/* An RTP socket from the range, even ports first. */
static int
rtp_open(struct vc *v, struct call *c)
{
	int span = v->o.rtp_max - v->o.rtp_min + 1, i;

	for (i = 0; i < span; i += 2) {
		int port = v->o.rtp_min + (v->next_rtp + i) % span;
		struct sockaddr_storage ss;
		socklen_t sl;
		int fd;

		port &= ~1;
		if (port < v->o.rtp_min)
			port += 2;
		if (port > v->o.rtp_max)
			continue;
		if ((fd = udp_bind(v->bind_host, port, &ss, &sl)) >= 0) {
			v->next_rtp = (port - v->o.rtp_min + 2) % span;
			c->rtp_fd = fd;
			c->rtp_port = port;
			return 0;
		}
	}
	return -1;
}

/* ---- responses ---------------------------------------------------------- */

static void
respond(struct vc *v, const struct sipmsg *req, const struct sockaddr_storage *peer,
        socklen_t pl, int status, const char *reason, const char *to_tag)
{
	struct sipmsg_resp r = { 0 };
	char out[4096];
	size_t len;

	r.status = status;
	r.reason = reason;
	r.to_tag = to_tag;
	if (status == 405 || status == 200)
		r.extra = "Allow: INVITE, ACK, BYE, CANCEL, INFO, OPTIONS\r\n";
	if (sipmsg_build_response(req, &r, out, sizeof(out), &len) == 0)
		send_to(v->sip_fd, out, len, peer, pl);
}

/* Stores and sends the INVITE's final response (retransmitted until ACK). */
static void
final_response(struct vc *v, struct call *c, const struct sipmsg *inv, int status,
               const char *reason, const char *sdp, size_t sdp_len, long long now)
{
	struct sipmsg_resp r = { 0 };
	char contact[128];
	char out[SIP_MSG_BUF];
	size_t len;

	r.status = status;
	r.reason = reason;
	r.to_tag = c->local_tag;
	if (status < 300) {
		bool v6 = strchr(v->contact_host, ':') != NULL;

		snprintf(contact, sizeof(contact), "sip:vc@%s%s%s:%d", v6 ? "[" : "",
		         v->contact_host, v6 ? "]" : "", v->port);
		r.contact = contact;
		r.record_route = true;
		r.extra = "Allow: INVITE, ACK, BYE, CANCEL, INFO, OPTIONS\r\n";
		r.content_type = "application/sdp";
		r.body = sdp;
		r.body_len = sdp_len;
	}
	if (sipmsg_build_response(inv, &r, out, sizeof(out), &len) != 0 ||
	    (c->resp = malloc(len)) == NULL) {
		log_error("vc: cannot build a %d response", status);
		call_close(v, c, now);
		return;
	}
	memcpy(c->resp, out, len);
	c->resp_len = len;
	c->resp_wants_ack = true;
	c->resp_iv = v->o.t1_ms;
	c->resp_next = now + c->resp_iv;
	c->resp_give_up = now + 64LL * v->o.t1_ms;
	send_to(v->sip_fd, c->resp, c->resp_len, &c->sig_peer, c->sig_peer_len);
}

/* A final refusal of a new INVITE. */
static void
refuse(struct vc *v, struct call *c, const struct sipmsg *inv, int status,
       const char *reason, long long now)
{
	final_response(v, c, inv, status, reason, NULL, 0, now);
	if (c->state != C_CLOSED)
		call_close(v, c, now);
}

/* ---- playlists ---------------------------------------------------------- */

static void
play(struct vc *v, struct call *c, const enum prompt_id *ids, size_t n, const char *number,
     enum after after)
{
	size_t i;

	prompt_play_init(&c->play, v->prompts, c->lang[0] ? c->lang : NULL, c->pt);
	for (i = 0; i < n; i++) {
		prompt_play_add(&c->play, ids[i]);
		if (ids[i] == PROMPT_EXTENSION && number != NULL)
			prompt_play_add_digits(&c->play, number);
	}
	c->playing = true;
	c->marker = true;
	c->after = after;
	c->collecting = false;
}

/* The playlist that tells the outcome of a decision. */
static void
play_result(struct vc *v, struct call *c, int rc, const struct svc_star30_res *res)
{
	enum prompt_id ids[3];
	size_t n = 0;
	enum after after = AFTER_BYE;

	if (rc != SVC_OK) {
		ids[n++] = PROMPT_UNAVAILABLE;
	} else {
		switch (res->result) {
		case VIRT_NEED_CODE:
			ids[n++] = PROMPT_ENTER_CODE;
			after = AFTER_COLLECT;
			break;
		case VIRT_RETRY:
			ids[n++] = PROMPT_WRONG_CODE;
			ids[n++] = PROMPT_ENTER_CODE;
			after = AFTER_COLLECT;
			break;
		case VIRT_ACCEPTED:
			ids[n++] = PROMPT_EXTENSION;
			ids[n++] = PROMPT_NOW_ON_PHONE;
			ids[n++] = PROMPT_GOODBYE;
			break;
		case VIRT_RETURNED:
			ids[n++] = PROMPT_WELCOME_BACK;
			break;
		case VIRT_NOTHING:
			ids[n++] = PROMPT_NOTHING;
			break;
		case VIRT_HANGUP:
			ids[n++] = PROMPT_WRONG_CODE;
			ids[n++] = PROMPT_GOODBYE;
			break;
		case VIRT_DENIED:
			ids[n++] = res->reason == VIRT_R_LOCKED ? PROMPT_LOCKED : PROMPT_NOT_ALLOWED;
			break;
		}
	}
	play(v, c, ids, n, rc == SVC_OK ? res->extension : NULL, after);
}

/* ---- our BYE ------------------------------------------------------------ */

static void
send_bye(struct vc *v, struct call *c, long long now)
{
	const char *routes[4];
	char branch[40], out[4096], host[128];
	struct sipmsg_req r = { 0 };
	size_t i, len;
	int port = 0;
	const char *next_hop;

	for (i = 0; i < c->nroutes; i++)
		routes[i] = c->routes[i];
	rand_token(branch, 12);
	r.method = "BYE";
	r.ruri = c->remote_target;
	r.routes = routes;
	r.nroutes = c->nroutes;
	r.via_host = v->contact_host;
	r.via_port = v->port;
	r.branch = branch;
	r.from = c->local_to;
	r.to = c->remote_from;
	r.call_id = c->call_id;
	r.cseq = 1;
	next_hop = c->nroutes > 0 ? c->routes[0] : c->remote_target;
	call_release_media(c);
	if (sipmsg_build_request(&r, out, sizeof(out), &len) != 0 ||
	    (c->bye = malloc(len)) == NULL) {
		call_close(v, c, now);
		return;
	}
	memcpy(c->bye, out, len);
	c->bye_len = len;
	/* the next hop: the first route (loose routing) or the remote target;
	 * a name we cannot use numerically falls back to where the INVITE
	 * came from (the proxy) */
	if (sipmsg_uri_parts((struct sipmsg_span){ next_hop, strlen(next_hop) }, NULL, 0, NULL, 0,
	                     host, sizeof(host), &port) != 0 ||
	    numeric_addr(host, port ? port : 5060, &c->bye_peer, &c->bye_peer_len) != 0) {
		memcpy(&c->bye_peer, &c->sig_peer, sizeof(c->sig_peer));
		c->bye_peer_len = c->sig_peer_len;
	}
	c->bye_iv = v->o.t1_ms;
	c->bye_next = now + c->bye_iv;
	c->bye_give_up = now + 64LL * v->o.t1_ms;
	send_to(v->sip_fd, c->bye, c->bye_len, &c->bye_peer, c->bye_peer_len);
	c->state = C_CLOSED;
	c->linger_until = c->bye_give_up;
}

/* ---- decisions ---------------------------------------------------------- */

static void
queue_decision(struct vc *v, struct call *c, bool with_code)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		static const enum prompt_id ids[] = { PROMPT_UNAVAILABLE };

		log_error("vc: out of memory");
		if (c->state == C_ACTIVE)
			play(v, c, ids, 1, NULL, AFTER_BYE);
		return;
	}
	j->slot = (size_t)(c - v->calls);
	j->gen = c->gen;
	j->with_code = with_code;
	snprintf(j->caller, sizeof(j->caller), "%s", c->caller);
	snprintf(j->digits, sizeof(j->digits), "%s", c->digits);
	snprintf(j->call_id, sizeof(j->call_id), "%s", c->call_id);
	if (with_code) {
		memcpy(j->code, c->code, sizeof(j->code));
		sodium_memzero(c->code, sizeof(c->code));
		c->ncode = 0;
	}
	c->deciding = true;
	pthread_mutex_lock(&v->lock);
	if (v->todo_tail != NULL)
		v->todo_tail->next = j;
	else
		v->todo = j;
	v->todo_tail = j;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void *
worker_main(void *arg)
{
	struct vc *v = arg;

	for (;;) {
		struct svc_star30_req r = { 0 };
		struct job *j;
		uint64_t one = 1;

		pthread_mutex_lock(&v->lock);
		while (v->todo == NULL && !v->stopping)
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->todo == NULL) {
			pthread_mutex_unlock(&v->lock);
			return NULL;
		}
		j = v->todo;
		if ((v->todo = j->next) == NULL)
			v->todo_tail = NULL;
		pthread_mutex_unlock(&v->lock);

		r.caller = j->caller;
		r.digits = j->digits;
		r.code = j->with_code ? j->code : NULL;
		r.call_id = j->call_id;
		j->rc = v->o.star30(v->o.star30_arg, &r, &j->res);
		sodium_memzero(j->code, sizeof(j->code));
		if (v->o.language_of != NULL &&
		    v->o.language_of(v->o.language_arg, j->caller, j->lang, sizeof(j->lang)) == NULL)
			j->lang[0] = '\0';

		pthread_mutex_lock(&v->lock);
		j->next = v->done;
		v->done = j;
		pthread_mutex_unlock(&v->lock);
		if (write(v->ev_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno("vc: eventfd");
	}
}


/* Gives the pending INVITE its final response after the first decision:
 * 200 with the SDP answer, or 503 when nothing could be decided. */
static void
answer(struct vc *v, struct call *c, int rc, long long now)
{
	struct sipmsg inv;
	char sdp[1024];
	size_t sdp_len;

	if (c->invite == NULL || sipmsg_parse(c->invite, c->invite_len, &inv) != 0) {
		call_close(v, c, now);
		return;
	}
	if (rc != SVC_OK) {
		refuse(v, c, &inv, 503, "Service Unavailable", now);
	} else if (sdp_build_answer(&c->offer, v->contact_host, c->rtp_port, c->pt,
	                            (uint64_t)randombytes_random(), sdp, sizeof(sdp),
	                            &sdp_len) != 0) {
		refuse(v, c, &inv, 500, "Server Internal Error", now);
	} else {
		final_response(v, c, &inv, 200, "OK", sdp, sdp_len, now);
		if (c->state != C_CLOSED)
			c->state = C_ANSWERED;
	}
	free(c->invite);
	c->invite = NULL;
}

static void on_key(struct vc *v, struct call *c, char key);

/* Keys typed while the last decision ran: they belong to the next code
 * when one is asked for (they interrupt its prompt), else they are
 * dropped. */
static void
replay_typeahead(struct vc *v, struct call *c)
{
	char keys[sizeof(c->ahead)];
	size_t i, n = c->nahead;

	memcpy(keys, c->ahead, sizeof(keys));
	sodium_memzero(c->ahead, sizeof(c->ahead));
	c->nahead = 0;
	for (i = 0; i < n && c->state == C_ACTIVE && c->after == AFTER_COLLECT && !c->deciding; i++)
		on_key(v, c, keys[i]);
	sodium_memzero(keys, sizeof(keys));
}

/* A decision came back (engine thread). */
static void
on_result(struct vc *v, struct job *j, long long now)
{
	struct call *c = &v->calls[j->slot];

	if (c->gen != j->gen || c->state == C_FREE || c->state == C_CLOSED)
		return; /* the call ended meanwhile: the decision stands, nobody listens */
	c->deciding = false;
	if (j->lang[0] != '\0')
		snprintf(c->lang, sizeof(c->lang), "%s", j->lang);
	log_debug("vc: call from %s: %s%s%s", c->caller,
	          j->rc == SVC_OK ? virt_result_name(j->res.result) : "error",
	          j->rc == SVC_OK && j->res.reason != VIRT_R_NONE ? " " : "",
	          j->rc == SVC_OK ? virt_reason_name(j->res.reason) : "");
	if (c->state == C_DECIDING) {
		answer(v, c, j->rc, now);
		if (c->state != C_ANSWERED)
			return;
	}
	/* plays at once when the call is confirmed, else from the ACK on */
	play_result(v, c, j->rc, &j->res);
	replay_typeahead(v, c);
}

/* ---- requests ----------------------------------------------------------- */

static bool
caller_of(struct vc *v, const struct sipmsg *m, char *out, size_t outlen)
{
	struct sipmsg_span h;

	if (v->caller_header[0] != '\0') {
		if (!sipmsg_header(m, v->caller_header, &h))
			return false;
	} else if (!sipmsg_header(m, "P-Asserted-Identity", &h) && !sipmsg_header(m, "From", &h)) {
		return false;
	}
	return sipmsg_uri_parts(h, NULL, 0, out, outlen, NULL, 0, NULL) == 0 && out[0] != '\0';
}

/* Whether m carries a To tag (an in-dialog request). */
static bool
has_to_tag(const struct sipmsg *m)
{
	struct sipmsg_span h;
	char tag[64];

	return sipmsg_header(m, "To", &h) && sipmsg_param(h, "tag", tag, sizeof(tag)) == 1;
}

/* Fills a new call's dialog from its INVITE; false when refused. */
static bool
dialog_init(struct vc *v, struct call *c, const struct sipmsg *m, long long now)
{
	struct sipmsg_span h;
	size_t i;

	if (!sipmsg_header(m, "From", &h) ||
	    sipmsg_copy(h, c->remote_from, sizeof(c->remote_from)) != 0 ||
	    !sipmsg_header(m, "To", &h) || h.n + 16 >= sizeof(c->local_to)) {
		refuse(v, c, m, 400, "Bad From or To", now);
		return false;
	}
	snprintf(c->local_to, sizeof(c->local_to), "%.*s;tag=%s", (int)h.n, h.p, c->local_tag);
	if (!sipmsg_header(m, "Contact", &h) ||
	    sipmsg_uri_parts(h, c->remote_target, sizeof(c->remote_target), NULL, 0, NULL, 0,
	                     NULL) != 0) {
		refuse(v, c, m, 400, "Missing Contact", now);
		return false;
	}
	/* the route set of a UAS: Record-Route in the order received */
	for (i = 0; i < m->nh && c->nroutes < 4; i++)
		if (sipmsg_span_is(m->h[i].name, "Record-Route") &&
		    sipmsg_uri_parts(m->h[i].value, c->routes[c->nroutes], sizeof(c->routes[0]), NULL,
		                     0, NULL, 0, NULL) == 0)
			c->nroutes++;
	if (sipmsg_header(m, "Via", &h))
		(void)sipmsg_param(h, "branch", c->via_branch, sizeof(c->via_branch));
	return true;
}

/* What was dialed and by whom; the offer.  False when refused. */
static bool
call_accept(struct vc *v, struct call *c, const struct sipmsg *m,
            const struct sockaddr_storage *peer, long long now)
{
	char ruri_user[128], err[128];
	struct sipmsg_span h;
	const char *d;
	int pt;

	if (!cfg_netlist_allows(&v->nets, (const struct sockaddr *)peer)) {
		refuse(v, c, m, 403, "Forbidden", now);
		return false;
	}
	if (sipmsg_uri_parts(m->uri, NULL, 0, ruri_user, sizeof(ruri_user), NULL, 0, NULL) != 0 ||
	    strncmp(ruri_user, v->prefix, strlen(v->prefix)) != 0 ||
	    strlen(d = ruri_user + strlen(v->prefix)) >= sizeof(c->digits) ||
	    strspn(d, "0123456789") != strlen(d)) {
		refuse(v, c, m, 404, "Not Found", now);
		return false;
	}
	snprintf(c->digits, sizeof(c->digits), "%s", d);
	if (!caller_of(v, m, c->caller, sizeof(c->caller))) {
		refuse(v, c, m, 403, "Caller Unknown", now);
		return false;
	}
	/* the offer: G.711 or nothing (a delayed offer is not supported) */
	if (!sipmsg_header(m, "Content-Type", &h) || !sipmsg_span_is(h, "application/sdp") ||
	    sdp_parse_offer(m->body.p, m->body.n, &c->offer, err, sizeof(err)) != 0 ||
	    (pt = sdp_choose_codec(&c->offer)) < 0 ||
	    numeric_addr(c->offer.addr, c->offer.port, &c->media_peer, &c->media_peer_len) != 0) {
		refuse(v, c, m, 488, "Not Acceptable Here", now);
		return false;
	}
	c->pt = pt;
	c->te_pt = c->offer.te_pt;
	if (rtp_open(v, c) != 0) {
		log_warn("vc: no free RTP port in %d-%d", v->o.rtp_min, v->o.rtp_max);
		refuse(v, c, m, 503, "Service Unavailable", now);
		return false;
	}
	return true;
}

static void
on_invite(struct vc *v, const struct sipmsg *m, const char *raw, size_t rawlen,
          const struct sockaddr_storage *peer, socklen_t pl, long long now)
{
	char call_id[256];
	struct sipmsg_span h;
	struct call *c;

	if (!sipmsg_header(m, "Call-ID", &h) || sipmsg_copy(h, call_id, sizeof(call_id)) != 0) {
		respond(v, m, peer, pl, 400, "Bad Call-ID", NULL);
		return;
	}
	if ((c = call_find(v, call_id)) != NULL) {
		if (has_to_tag(m)) /* a re-INVITE: the session stays as it is */
			respond(v, m, peer, pl, 488, "Not Acceptable Here", NULL);
		else if (c->resp != NULL) /* a retransmission: the last answer again */
			send_to(v->sip_fd, c->resp, c->resp_len, peer, pl);
		else
			respond(v, m, peer, pl, 100, "Trying", NULL);
		return;
	}
	if (has_to_tag(m)) {
		respond(v, m, peer, pl, 481, "Call/Transaction Does Not Exist", NULL);
		return;
	}
	if ((c = call_new(v)) == NULL) {
		respond(v, m, peer, pl, 503, "Service Unavailable", NULL);
		return;
	}
	c->rtp_fd = -1;
	c->state = C_DECIDING;
	c->created = now;
	c->end_at = now + (long long)v->o.max_call_s * 1000;
	snprintf(c->call_id, sizeof(c->call_id), "%s", call_id);
	rand_token(c->local_tag, 8);
	memcpy(&c->sig_peer, peer, sizeof(*peer));
	c->sig_peer_len = pl;
	c->ssrc = randombytes_random();
	c->seq = (uint16_t)randombytes_random();
	c->ts = randombytes_random();
	if (!dialog_init(v, c, m, now) || !call_accept(v, c, m, peer, now))
		return;
	if ((c->invite = malloc(rawlen)) == NULL) {
		refuse(v, c, m, 500, "Server Internal Error", now);
		return;
	}
	memcpy(c->invite, raw, rawlen);
	c->invite_len = rawlen;
	respond(v, m, peer, pl, 100, "Trying", NULL);
	respond(v, m, peer, pl, 180, "Ringing", c->local_tag);
	queue_decision(v, c, false);
}

static void
on_ack(struct vc *v, struct call *c)
{
	if (c->resp != NULL) {
		free(c->resp);
		c->resp = NULL;
		c->resp_wants_ack = false;
	}
	if (c->state != C_ANSWERED)
		return; /* an ACK of a refusal, or a repeated one */
	c->state = C_ACTIVE;
	c->media_on = true;
	c->marker = true;
	(void)v;
}

static void
on_cancel(struct vc *v, struct call *c, const struct sipmsg *m,
          const struct sockaddr_storage *peer, socklen_t pl, long long now)
{
	struct sipmsg inv;

	respond(v, m, peer, pl, 200, "OK", NULL);
	if (c->state != C_DECIDING || c->invite == NULL)
		return; /* already answered: the caller sends BYE */
	if (sipmsg_parse(c->invite, c->invite_len, &inv) == 0)
		refuse(v, c, &inv, 487, "Request Terminated", now);
	else
		call_close(v, c, now);
	free(c->invite);
	c->invite = NULL;
}

/* A key press, from RTP or INFO. */
static void
on_key(struct vc *v, struct call *c, char key)
{
	if (c->state != C_ACTIVE)
		return;
	if (c->deciding) {
		if (c->nahead < sizeof(c->ahead) - 1)
			c->ahead[c->nahead++] = key;
		return;
	}
	/* barge-in: a key during the prompt that asks for the code */
	if (c->playing && c->after == AFTER_COLLECT) {
		c->playing = false;
		c->collecting = true;
	}
	if (!c->collecting)
		return;
	c->key_deadline = now_ms() + (long long)v->o.code_timeout_s * 1000;
	if (key == '#') {
		if (c->ncode == 0)
			return;
		c->collecting = false;
		queue_decision(v, c, true);
	} else if (key == '*') {
		sodium_memzero(c->code, sizeof(c->code));
		c->ncode = 0;
	} else if (key >= '0' && key <= '9' && c->ncode < MAX_CODE) {
		c->code[c->ncode++] = key;
		c->code[c->ncode] = '\0';
	}
}

static void
on_in_dialog(struct vc *v, struct call *c, const struct sipmsg *m,
             const struct sockaddr_storage *peer, socklen_t pl, long long now)
{
	struct sipmsg_span h;

	if (sipmsg_span_is(m->method, "BYE")) {
		respond(v, m, peer, pl, 200, "OK", NULL);
		if (c->state != C_CLOSED)
			call_close(v, c, now);
	} else if (sipmsg_span_is(m->method, "INFO")) {
		char key = 0;

		if (c->state == C_CLOSED) {
			respond(v, m, peer, pl, 481, "Call/Transaction Does Not Exist", NULL);
			return;
		}
		respond(v, m, peer, pl, 200, "OK", NULL);
		if (sipmsg_header(m, "Content-Type", &h) &&
		    (sipmsg_span_is(h, "application/dtmf-relay") || sipmsg_span_is(h, "application/dtmf")))
			key = rtp_dtmf_info(m->body.p, m->body.n);
		if (key != 0)
			on_key(v, c, key);
	} else if (sipmsg_span_is(m->method, "OPTIONS")) {
		respond(v, m, peer, pl, 200, "OK", NULL);
	} else if (sipmsg_span_is(m->method, "UPDATE")) {
		respond(v, m, peer, pl, 488, "Not Acceptable Here", NULL);
	} else {
		respond(v, m, peer, pl, 405, "Method Not Allowed", NULL);
	}
}

static void
on_response(struct vc *v, const struct sipmsg *m, long long now)
{
	char call_id[256], method[16];
	struct sipmsg_span h;
	unsigned long cseq;
	struct call *c;

	if (m->status < 200 || !sipmsg_header(m, "Call-ID", &h) ||
	    sipmsg_copy(h, call_id, sizeof(call_id)) != 0 || (c = call_find(v, call_id)) == NULL ||
	    !sipmsg_header(m, "CSeq", &h) || sipmsg_cseq(h, &cseq, method, sizeof(method)) != 0 ||
	    strcmp(method, "BYE") != 0 || c->bye == NULL)
		return;
	/* our BYE is answered (whatever the status, the dialog is over) */
	free(c->bye);
	c->bye = NULL;
	c->linger_until = now + 64LL * v->o.t1_ms;
}

static void
on_sip(struct vc *v, const char *buf, size_t len, const struct sockaddr_storage *peer,
       socklen_t pl, long long now)
{
	char call_id[256];
	struct sipmsg m;
	struct sipmsg_span h;
	struct call *c;

	if (sipmsg_parse(buf, len, &m) != 0)
		return; /* not SIP, or too broken to answer */
	if (!m.request) {
		on_response(v, &m, now);
		return;
	}
	if (sipmsg_span_is(m.method, "ACK")) {
		if (sipmsg_header(&m, "Call-ID", &h) && sipmsg_copy(h, call_id, sizeof(call_id)) == 0 &&
		    (c = call_find(v, call_id)) != NULL)
			on_ack(v, c);
		return;
	}
	if (!cfg_netlist_allows(&v->nets, (const struct sockaddr *)peer)) {
		authlog_refused((const struct sockaddr *)peer, AUTHLOG_VC_NETWORK, "not-allowed");
		respond(v, &m, peer, pl, 403, "Forbidden", NULL);
		return;
	}
	if (sipmsg_span_is(m.method, "INVITE")) {
		on_invite(v, &m, buf, len, peer, pl, now);
		return;
	}
	if (sipmsg_span_is(m.method, "OPTIONS") && !has_to_tag(&m)) {
		respond(v, &m, peer, pl, 200, "OK", NULL);
		return;
	}
	if (!sipmsg_header(&m, "Call-ID", &h) || sipmsg_copy(h, call_id, sizeof(call_id)) != 0 ||
	    (c = call_find(v, call_id)) == NULL) {
		respond(v, &m, peer, pl, 481, "Call/Transaction Does Not Exist", NULL);
		return;
	}
	if (sipmsg_span_is(m.method, "CANCEL"))
		on_cancel(v, c, &m, peer, pl, now);
	else
		on_in_dialog(v, c, &m, peer, pl, now);
}

/* ---- media -------------------------------------------------------------- */

static void
on_rtp(struct vc *v, struct call *c)
{
	uint8_t buf[1500];
	struct sockaddr_storage from;

	for (;;) {
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(c->rtp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		struct rtp_packet p;
		char key;

		if (n < 0)
			return;
		/* only the address the offer named may press keys */
		if (!same_ip(&from, &c->media_peer) || rtp_parse(buf, (size_t)n, &p) != 0 ||
		    c->te_pt < 0 || p.pt != c->te_pt)
			continue;
		if ((key = rtp_dtmf_input(&c->dtmf, p.ts, p.payload, p.payload_len)) != 0)
			on_key(v, c, key);
	}
}

/* One 20 ms frame to a call with media. */
static void
send_frame(struct call *c)
{
	uint8_t pkt[RTP_HEADER_LEN + PROMPT_FRAME];
	struct rtp_packet p = { 0 };

	if (c->playing) {
		if (!prompt_play_frame(&c->play, pkt + RTP_HEADER_LEN))
			c->playing = false;
	} else {
		memset(pkt + RTP_HEADER_LEN, prompt_silence(c->pt), PROMPT_FRAME);
	}
	p.pt = c->pt;
	p.marker = c->marker;
	p.seq = c->seq++;
	p.ts = c->ts;
	p.ssrc = c->ssrc;
	c->ts += PROMPT_FRAME;
	c->marker = false;
	rtp_write_header(&p, pkt);
	send_to(c->rtp_fd, pkt, sizeof(pkt), &c->media_peer, c->media_peer_len);
}

/* Timers of one call. */
static void
call_timers(struct vc *v, struct call *c, long long now)
{
	static const enum prompt_id bye_ids[] = { PROMPT_GOODBYE };

	if (c->resp != NULL && c->resp_wants_ack && now >= c->resp_next) {
		if (now >= c->resp_give_up) {
			/* no ACK: end the dialog (RFC 3261 13.3.1.4) */
			free(c->resp);
			c->resp = NULL;
			if (c->state == C_ANSWERED)
				send_bye(v, c, now);
			return;
		}
		send_to(v->sip_fd, c->resp, c->resp_len, &c->sig_peer, c->sig_peer_len);
		c->resp_iv = c->resp_iv * 2 > T2_MS ? T2_MS : c->resp_iv * 2;
		c->resp_next = now + c->resp_iv;
	}
	if (c->bye != NULL && now >= c->bye_next) {
		if (now >= c->bye_give_up) {
			free(c->bye);
			c->bye = NULL;
		} else {
			send_to(v->sip_fd, c->bye, c->bye_len, &c->bye_peer, c->bye_peer_len);
			c->bye_iv = c->bye_iv * 2 > T2_MS ? T2_MS : c->bye_iv * 2;
			c->bye_next = now + c->bye_iv;
		}
	}
	if (c->state == C_CLOSED) {
		if (now >= c->linger_until && c->bye == NULL && c->resp == NULL)
			call_free(c);
		else if (now >= c->linger_until + 64LL * v->o.t1_ms)
			call_free(c);
		return;
	}
	if (now >= c->end_at && c->state != C_DECIDING) {
		send_bye(v, c, now);
		return;
	}
	if (c->state != C_ACTIVE)
		return;
	if (!c->playing && !c->deciding && c->after != AFTER_NONE) {
		enum after a = c->after;

		c->after = AFTER_NONE;
		if (a == AFTER_BYE) {
			send_bye(v, c, now);
			return;
		}
		c->collecting = true;
		c->key_deadline = now + (long long)v->o.code_timeout_s * 1000;
	}
	if (c->collecting && now >= c->key_deadline)
		play(v, c, bye_ids, 1, NULL, AFTER_BYE);
}

static void
drain_results(struct vc *v, long long now)
{
	struct job *j, *next;
	uint64_t cnt;

	if (read(v->ev_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_warn_errno("vc: eventfd");
	pthread_mutex_lock(&v->lock);
	j = v->done;
	v->done = NULL;
	pthread_mutex_unlock(&v->lock);
	for (; j != NULL; j = next) {
		next = j->next;
		on_result(v, j, now);
		free(j);
	}
}

/* The pacing thread asks for a real-time priority, so that a busy machine
 * delays its frames as little as possible; without the privilege
 * (CAP_SYS_NICE or RLIMIT_RTPRIO) it paces at normal priority. */
static void
engine_priority(void)
{
	struct sched_param sp = { .sched_priority = 10 };
	int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);

	if (rc == 0)
		log_info("vc: prompt pacing at real-time priority (SCHED_FIFO 10)");
	else
		log_info("vc: prompt pacing at normal priority (no real-time priority: %s)",
		         strerror(rc));
}

static void *
engine_main(void *arg)
{
	struct vc *v = arg;
	struct pollfd *fds = calloc(v->ncalls + 2, sizeof(*fds));
	size_t *slot_of = calloc(v->ncalls + 2, sizeof(*slot_of));
	long long next_tick = now_ns() + TICK_NS;

	engine_priority();

	if (fds == NULL || slot_of == NULL) {
		log_error("vc: out of memory: calls are not answered");
		free(fds);
		free(slot_of);
		return NULL;
	}
	for (;;) {
		struct timespec to;
		long long wait, now;
		size_t n = 2, i;
		bool stop;

		pthread_mutex_lock(&v->lock);
		stop = v->stopping;
		pthread_mutex_unlock(&v->lock);
		if (stop)
			break;
		fds[0] = (struct pollfd){ .fd = v->sip_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = v->ev_fd, .events = POLLIN };
		for (i = 0; i < v->ncalls; i++)
			if (v->calls[i].rtp_fd >= 0 && v->calls[i].state != C_FREE) {
				fds[n] = (struct pollfd){ .fd = v->calls[i].rtp_fd, .events = POLLIN };
				slot_of[n++] = i;
			}
		wait = next_tick - now_ns();
		if (wait < 0)
			wait = 0;
		to.tv_sec = (time_t)(wait / 1000000000LL);
		to.tv_nsec = (long)(wait % 1000000000LL);
		if (ppoll(fds, n, &to, NULL) > 0) {
			long long ms = now_ms();

			if (fds[0].revents & POLLIN) {
				for (;;) {
					struct sockaddr_storage peer;
					socklen_t pl = sizeof(peer);
					ssize_t r = recvfrom(v->sip_fd, v->buf, sizeof(v->buf), 0,
					                     (struct sockaddr *)&peer, &pl);

					if (r <= 0)
						break;
					on_sip(v, v->buf, (size_t)r, &peer, pl, ms);
				}
			}
			if (fds[1].revents & POLLIN)
				drain_results(v, ms);
			for (i = 2; i < n; i++)
				if ((fds[i].revents & POLLIN) && v->calls[slot_of[i]].rtp_fd == fds[i].fd)
					on_rtp(v, &v->calls[slot_of[i]]);
		}
		if ((now = now_ns()) < next_tick)
			continue;
		/* the 20 ms beat: one frame to every call with media, then timers */
		for (i = 0; i < v->ncalls; i++)
			if (v->calls[i].media_on && v->calls[i].rtp_fd >= 0)
				send_frame(&v->calls[i]);
		for (i = 0; i < v->ncalls; i++)
			if (v->calls[i].state != C_FREE)
				call_timers(v, &v->calls[i], now / 1000000);
		next_tick += TICK_NS;
		if (now - next_tick > 5 * TICK_NS) /* far behind (suspended): no burst */
			next_tick = now + TICK_NS;
	}
	free(fds);
	free(slot_of);
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

int
vc_port(const struct vc *v)
{
	return v->port;
}

static int
copy_nets(const struct cfg_netlist *in, struct cfg_netlist *out)
{
	out->n = 0;
	out->v = NULL;
	if (in == NULL || in->n == 0)
		return 0;
	if ((out->v = calloc(in->n, sizeof(*out->v))) == NULL)
		return -1;
	memcpy(out->v, in->v, in->n * sizeof(*in->v));
	out->n = in->n;
	return 0;
}

#define COPY_OPT(dst, src, what)                                                   \
	do {                                                                       \
		if ((size_t)snprintf(dst, sizeof(dst), "%s", (src) ? (src) : "") >= \
		    sizeof(dst)) {                                                 \
			hd_seterr(err, errlen, "vc: %s too long", what);            \
			goto fail;                                                 \
		}                                                                  \
	} while (0)

struct vc *
vc_start(const struct vc_opts *o, char *err, size_t errlen)
{
	struct vc *v = calloc(1, sizeof(*v));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int port, i;

	if (v == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	v->o = *o;
	v->sip_fd = v->ev_fd = -1;
	pthread_mutex_init(&v->lock, NULL);
	lockorder_register(&v->lock, LOCK_VC, "vc");
	pthread_cond_init(&v->cond, NULL);
	if (cfg_hostport_parse(o->bind, v->bind_host, sizeof(v->bind_host), &port) != 0) {
		hd_seterr(err, errlen, "vc: bad bind address");
		goto fail;
	}
	COPY_OPT(v->contact_host, o->contact_host ? o->contact_host : v->bind_host, "contact host");
	COPY_OPT(v->prefix, o->prefix, "prefix");
	COPY_OPT(v->caller_header, o->caller_header, "caller header");
	COPY_OPT(v->language, o->language, "language");
	v->o.prefix = v->prefix;
	v->o.language = v->language;
	v->o.caller_header = NULL;
	v->o.networks = NULL;
	v->o.prompts = NULL;
	v->o.contact_host = NULL;
	v->o.bind = NULL;
	if (copy_nets(o->networks, &v->nets) != 0) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if ((v->prompts = prompts_load(o->prompts, o->language, err, errlen)) == NULL)
		goto fail;
	v->ncalls = (size_t)o->max_calls;
	if ((v->calls = calloc(v->ncalls, sizeof(*v->calls))) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < o->max_calls; i++)
		v->calls[i].rtp_fd = -1;
	if ((v->sip_fd = udp_bind(v->bind_host, port, &ss, &sl)) < 0) {
		hd_seterr(err, errlen, "vc: cannot bind %s: %s", o->bind, strerror(errno));
		goto fail;
	}
	if (getsockname(v->sip_fd, (struct sockaddr *)&ss, &sl) != 0) {
		hd_seterr(err, errlen, "vc: getsockname: %s", strerror(errno));
		goto fail;
	}
	v->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
	                                        : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
	if ((v->ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		hd_seterr(err, errlen, "vc: eventfd: %s", strerror(errno));
		goto fail;
	}
	for (v->nworkers = 0; v->nworkers < WORKERS; v->nworkers++)
		if (pthread_create(&v->workers[v->nworkers], NULL, worker_main, v) != 0) {
			hd_seterr(err, errlen, "vc: cannot start a worker");
			goto fail;
		}
	if (pthread_create(&v->engine, NULL, engine_main, v) != 0) {
		hd_seterr(err, errlen, "vc: cannot start the engine");
		goto fail;
	}
	v->engine_started = true;
	return v;
fail:
	vc_stop(v);
	return NULL;
}

void
vc_stop(struct vc *v)
{
	struct job *j, *next;
	size_t i;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	if (v->engine_started)
		pthread_join(v->engine, NULL);
	for (i = 0; i < v->nworkers; i++)
		pthread_join(v->workers[i], NULL);
	for (j = v->todo; j != NULL; j = next) {
		next = j->next;
		sodium_memzero(j->code, sizeof(j->code));
		free(j);
	}
	for (j = v->done; j != NULL; j = next) {
		next = j->next;
		free(j);
	}
	for (i = 0; v->calls != NULL && i < v->ncalls; i++)
		call_free(&v->calls[i]);
	free(v->calls);
	if (v->sip_fd >= 0)
		close(v->sip_fd);
	if (v->ev_fd >= 0)
		close(v->ev_fd);
	prompts_free(v->prompts);
	cfg_netlist_free(&v->nets);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
