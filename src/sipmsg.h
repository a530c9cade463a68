/*
 * sipmsg.h -- SIP requests received and answered by the Virtualization
 * Center (sipmsg_).
 *
 * Owns: parsing a SIP message (request or response) into spans that point
 * into the caller's buffer, reading URIs and header parameters out of those
 * spans, and building the responses and in-dialog requests (BYE) of a user
 * agent server (RFC 3261 8.2, 12, 15).  Does not own: sockets, dialogs,
 * timers (vc.c), nor the out-of-dialog NOTIFYs (sip.c).  Pure: no I/O, no
 * clock, no globals, never logs.
 *
 * Invariants:
 *   1. The parser reads at most len bytes, needs no terminating NUL, and
 *      either fills the whole struct sipmsg or returns -1 (it is fuzzed).
 *   2. Spans stay valid while the buffer parsed does; nothing is copied.
 *   3. Builders refuse (return -1) any value containing CR or LF, and write
 *      a Content-Length equal to the body's byte length.
 */
#ifndef HD_SIPMSG_H
#define HD_SIPMSG_H

#include <stdbool.h>
#include <stddef.h>

#define SIPMSG_MAX_HDRS 64

struct sipmsg_span {
	const char *p;
	size_t n;
};

struct sipmsg_hdr {
	struct sipmsg_span name;  /* as written (compact or long form) */
	struct sipmsg_span value; /* trimmed, folding kept as written */
};

struct sipmsg {
	bool request;
	struct sipmsg_span method; /* requests */
	struct sipmsg_span uri;    /* requests: Request-URI */
	int status;                /* responses: 100..699 */
	struct sipmsg_hdr h[SIPMSG_MAX_HDRS];
	size_t nh;
	struct sipmsg_span body;   /* exactly Content-Length bytes (or the rest) */
};

/* Parses len bytes.  Requires a start line, a Via, From, To, Call-ID and
 * CSeq; a Content-Length larger than what follows is an error.  Returns 0,
 * or -1 (m unspecified) on anything else. */
int sipmsg_parse(const char *buf, size_t len, struct sipmsg *m);

/* The first header named `name` (long form, any case; its compact form
 * matches too).  Returns true and fills *v, or false. */
bool sipmsg_header(const struct sipmsg *m, const char *name, struct sipmsg_span *v);

/* Whether the span equals the literal, ignoring case. */
bool sipmsg_span_is(struct sipmsg_span s, const char *lit);

/* Copies a span into dst as a C string.  Returns 0, or -1 if it does not
 * fit or holds a NUL. */
int sipmsg_copy(struct sipmsg_span s, char *dst, size_t dstlen);

/*
 * Reads the URI of a header value in name-addr or addr-spec form
 * ("Alice" <sip:a@h>;tag=x, <sip:a@h>, sip:a@h;tag=x) or of a bare URI.
 * Fills, when not NULL: uri (the URI without the angle brackets), user (the
 * user part, percent-decoded; "" when none), host (brackets removed for
 * IPv6) and port (0 when absent).  Returns 0, or -1 when it is not a sip:
 * or sips: URI or something does not fit.
 */
int sipmsg_uri_parts(struct sipmsg_span v, char *uri, size_t urilen, char *user,
    size_t userlen, char *host, size_t hostlen, int *port);

/* Copies the value of header parameter `name` (e.g. "tag", "branch") of a
 * header value: parameters after the closing '>' of a name-addr, or after
 * the URI of an addr-spec.  Returns 1 when present (value may be ""), 0
 * when absent, -1 when it does not fit. */
int sipmsg_param(struct sipmsg_span v, const char *name, char *dst, size_t dstlen);

/* Reads a CSeq value: *num and the method. */
int sipmsg_cseq(struct sipmsg_span v, unsigned long *num, char *method, size_t methodlen);

/* A response to req.  Strings are borrowed for the call; NULL omits. */
struct sipmsg_resp {
	int status;               /* 100..699 */
	const char *reason;       /* reason phrase */
	const char *to_tag;       /* added to To when it has none */
	const char *contact;      /* full URI, written as Contact: <uri> */
	bool record_route;        /* copy Record-Route (2xx to INVITE) */
	const char *extra;        /* further header lines, each ending CRLF */
	const char *content_type;
	const char *body;         /* with content_type */
	size_t body_len;
};

/* Builds the response into buf (NUL-terminated; *len without the NUL):
 * every Via of req in order, From, To (+tag), Call-ID, CSeq, then the
 * options.  Returns 0, or -1 (bad value, buf too small). */
int sipmsg_build_response(const struct sipmsg *req, const struct sipmsg_resp *r,
    char *buf, size_t buflen, size_t *len);

/* An in-dialog request a UAS sends (BYE).  Strings borrowed. */
struct sipmsg_req {
	const char *method;       /* e.g. "BYE" */
	const char *ruri;         /* the remote target */
	const char *const *routes;/* route set, in order (values without <>) */
	size_t nroutes;
	const char *via_host;     /* our sent-by */
	int via_port;
	const char *branch;       /* without the magic cookie */
	const char *from;         /* full From value, our tag included */
	const char *to;           /* full To value, their tag included */
	const char *call_id;
	unsigned long cseq;
};

/* Builds the request into buf.  Returns 0, or -1 (bad value, too small). */
int sipmsg_build_request(const struct sipmsg_req *r, char *buf, size_t buflen, size_t *len);

#endif /* HD_SIPMSG_H */
