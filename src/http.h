/*
 * http.h -- the libmicrohttpd adapter: one server, a router, whole bodies.
 *
 * The adapter owns sockets, threads and the MHD callbacks.  It collects a
 * request's body (up to a per-route limit, answering 413 past it without
 * calling the handler), then calls the route's handler once with the whole
 * request and sends the response the handler filled in.  Handlers never see
 * MHD types and may run concurrently on the server's worker threads (or, on
 * an own_thread route, each on a thread of its own); one request's handler
 * runs on one thread from start to end.
 *
 * Routes are matched by path prefix, longest first; the handler does the
 * rest of the path itself.  Request paths are checked before routing: a
 * path with NUL, "%00", "." or ".." segments (raw or percent-encoded), "//",
 * a backslash (raw or "%5c"), a control character or a malformed percent
 * escape never reaches a handler (400).  An unknown route gets 404.
 * Percent-decoding of path segments is the handler's business
 * (http_path_segment).
 *
 * HEAD: the handler fills the whole response as for GET; the adapter sends
 * its headers, with the Content-Length of the full body, and no body.
 * Connections are kept alive between requests (HTTP/1.1 persistent).
 */
#ifndef HD_HTTP_H
#define HD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct http_request {
	const char *method;       /* "GET", "HEAD", "POST", "PUT", ... */
	const char *path;         /* raw path without the query, e.g. "/api/v1/orgs/acme" */
	const char *query;        /* raw query string without '?', or "" */
	const char *body;         /* NUL-terminated copy of the body, "" if none;
	                             it may hold NUL bytes: body_len is the length */
	size_t body_len;
	bool tls;                 /* came over a TLS listener */
	const struct sockaddr *peer; /* client address */
	socklen_t peer_len;
	void *conn;               /* opaque, for http_header / http_digest_* */
};

/* A request header (case-insensitive name), or NULL.  Borrowed for the
 * duration of the handler call. */
const char *http_header(const struct http_request *req, const char *name);

/* The token of "Authorization: Bearer <token>" (scheme case-insensitive),
 * or NULL if absent, empty or containing whitespace.  Borrowed like
 * http_header. */
const char *http_bearer(const struct http_request *req);

/* Whether the media type of a Content-Type value (what comes before any
 * ';' parameters, surrounding spaces and tabs aside) is exactly type,
 * compared case-insensitively: "application/json; charset=utf-8" is
 * "application/json", "application/jsonx" and "application/json x" are
 * not.  A NULL value is no type.  Can't fail. */
bool http_media_type_is(const char *value, const char *type);

/* A query-string argument, percent-decoded ('+' is a space), or NULL.  The
 * first occurrence wins; a pair with a malformed escape or a NUL counts as
 * absent.  Borrowed until the handler returns. */
const char *http_query_arg(const struct http_request *req, const char *name);

/* The value of cookie `name` in the request's Cookie header(s), copied
 * into out (at most outlen - 1 bytes), or NULL when absent, empty or too
 * long. */
const char *http_cookie(const struct http_request *req, const char *name, char *out,
                        size_t outlen);

struct http_response {
	int status;                /* default 200 */
	const char *content_type;  /* static string; default "text/plain; charset=utf-8" */
	char *body;                /* heap, freed by the adapter; may be NULL */
	size_t body_len;           /* length of body, or of static_body */
	const void *static_body;   /* alternative to body: borrowed bytes that outlive
	                              the response (e.g. a published file kept alive
	                              by static_ref); used when body is NULL, sent
	                              without copying */
	void (*static_free)(void *ref); /* when non-NULL, called with static_ref
	                              exactly once, after the server is done with
	                              the bytes (sent, failed or connection lost);
	                              also called, at once, when body wins */
	void *static_ref;
	char etag[80];             /* sent as ETag when non-empty */
	/* Digest challenge, set by http_digest_challenge: the adapter sends
	 * this WWW-Authenticate header with the response when non-empty. */
	char www_authenticate[256];
	char set_cookie[320];      /* sent as Set-Cookie when non-empty */
	/* NULL, or static "name", "value", ..., NULL pairs sent as headers
	 * (web pages: Content-Security-Policy, Cache-Control, ...) */
	const char *const *extra_headers;
	bool head_only;            /* set by the adapter before the handler runs
	                              for a HEAD request (informative only: fill
	                              the body as for GET) */
};

/* Sets res->body to a heap copy of the printf-formatted text (a body
 * already there is freed first).  Returns 0, -1 on out of memory (res then
 * holds a 500 with no body). */
int http_printf(struct http_response *res, int status, const char *ctype,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Takes ownership of body (malloc'd) of len bytes; a body already there is
 * freed first. */
void http_set_body(struct http_response *res, int status, const char *ctype,
                   char *body, size_t len);

typedef void (*http_handler)(void *arg, const struct http_request *req,
                             struct http_response *res);

struct http_route {
	const char *prefix;        /* e.g. "/pbx/v1/" */
	http_handler handler;
	void *arg;
	size_t max_body;           /* larger bodies get 413 and no handler call */
	unsigned iface;            /* interface bit(s) of the route; 0 = served by
	                              every listener (see http_opts.serves) */
	bool own_thread;           /* its handler may take long (a template save
	                              re-renders every device of the template, an
	                              import, an Argon2id hash): each request runs
	                              on a thread of its own while its connection
	                              waits (suspended), so the server's worker
	                              threads go on serving their other
	                              connections meanwhile.  http_stop waits for
	                              these requests to finish, however long. */
	/* When own_thread is false: called on the worker thread with the whole
	 * request (and the route's arg) before the handler; true runs this
	 * request as own_thread would (e.g. only the calls that will hash a
	 * code).  Quick, and keeps no pointer into req. */
	bool (*own_thread_if)(void *arg, const struct http_request *req);
};

/*
 * TLS: a server certificate chain and key loaded from PEM files, shared by
 * every TLS listener and replaced whole by http_tls_reload.  Each new
 * connection's handshake takes a reference to the certificate in force, so
 * a reload never disturbs a handshake or a connection already open, and
 * the next handshake uses the new certificate.
 *
 * Protocol floor TLS 1.2: whatever the priority string, TLS 1.1 and older
 * are removed.  HTTP_TLS_PRIORITIES is the default cipher policy: TLS 1.3
 * and 1.2, AEAD ciphers only (AES-GCM, ChaCha20-Poly1305), forward-secret
 * key exchange only (ECDHE, DHE); no CBC, RC4, 3DES, SHA-1 MACs, static
 * RSA key exchange or compression.  The server's order decides
 * (%SERVER_PRECEDENCE): AES-128-GCM first (TLS_AES_128_GCM_SHA256: its
 * SHA-256 transcript and key schedule cost less than AES-256-GCM's
 * SHA-384, which has no hardware support), X25519 first (a client that
 * sent only another group's key share while listing X25519 is asked for an
 * X25519 share: one more round trip).
 *
 * client_ca_pem, when not NULL, makes every TLS listener ask clients for a
 * certificate (optional: a client without one still connects) naming those
 * CAs; the handshake proves the client holds the certificate's key, but
 * whether the certificate is trusted is for the caller to decide
 * (http_client_cert gives the chain to check).  http_tls_set_client_ca
 * replaces it for the connections opened afterwards.
 *
 * tickets: sessions can be resumed with TLS session tickets (RFC 8446
 * PSK, RFC 5077), sealed with a key made at start and never written
 * anywhere, which GnuTLS rotates; a resumed session keeps the client
 * certificate of the handshake that opened it.
 */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:" \
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:" \
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:+DHE-RSA:-COMP-ALL:" \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:" \
	"+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:" \
	"+GROUP-FFDHE8192:%SERVER_PRECEDENCE"
struct http_tls;
/* Loads cert_file (the server certificate, then its intermediates) and
 * key_file; priorities NULL = HTTP_TLS_PRIORITIES.  Returns NULL with err
 * filled (unreadable file, no certificate, key not matching, bad
 * priority string).  Free with http_tls_free after every server using it
 * has stopped. */
struct http_tls *http_tls_new(const char *cert_file, const char *key_file,
                              const char *priorities, const char *client_ca_pem,
                              bool tickets, char *err, size_t errlen);
/* Loads a new certificate and key and puts them in force for the next
 * handshakes; on error (err filled, -1) the one in force stays. */
int http_tls_reload(struct http_tls *t, const char *cert_file, const char *key_file,
                    char *err, size_t errlen);
/* Puts client_ca_pem (NULL: ask for no certificate) in force for the TLS
 * connections opened from now on; connections already open keep what
 * they were asked.  On error (err filled, -1) the CAs in force stay. */
int http_tls_set_client_ca(struct http_tls *t, const char *client_ca_pem, char *err,
                           size_t errlen);
/* The SHA-256 fingerprint of the certificate in force, as hex (65 bytes
 * with the NUL); "" for NULL. */
void http_tls_fingerprint(struct http_tls *t, char out[65]);
void http_tls_free(struct http_tls *t);

/* The i-th certificate (0 = the client's own, then its chain as sent) the
 * client presented on the TLS connection of req, as DER borrowed until the
 * handler returns.  Returns 0, or -1 when req did not come over TLS, the
 * client sent no certificate or there is no i-th. */
int http_client_cert(const struct http_request *req, size_t i,
                     const unsigned char **der, size_t *len);

/* http_opts.conn_memory of a listener that serves phones only, and of
 * the others */
#define HTTP_CONN_MEMORY_PHONES 8192
#define HTTP_CONN_MEMORY 16384

struct http_opts {
	const char *listen;        /* numeric IPv4 or IPv6 address */
	unsigned port;             /* 0 = OS-chosen */
	unsigned threads;          /* worker threads (thread pool); 0 or 1 = one */
	unsigned conn_limit;       /* max concurrent connections; 0 = MHD default */
	unsigned timeout_s;        /* idle connection timeout; 0 = none */
	/* Optional: the 413 of a route in its own error form.  The route
	 * whose prefix equals too_large[i].prefix has it answered by
	 * too_large[i].handler (with the route's arg; called with the
	 * request's headers and an empty body, its status sent as is);
	 * max_body unused.  Other routes answer a plain-text 413. */
	const struct http_route *too_large;
	size_t n_too_large;
	unsigned per_source_limit; /* max concurrent connections from one client
	                              address; 0 = no limit.  Past it a new
	                              connection is closed at once. */
	unsigned request_timeout_s; /* absolute deadline: a connection must have
	                              sent a whole request (headers and body)
	                              within this many seconds of opening or of
	                              the end of its previous answer, however
	                              steadily bytes arrive, or it is closed;
	                              0 = none.  Waiting for the next request
	                              counts: an idle keep-alive connection is
	                              closed after this too. */
	unsigned serves;           /* interface bits this listener serves: only
	                              routes with iface 0 or sharing a bit are
	                              routed; 0 = every route */
	struct http_tls *tls;      /* NULL: plain HTTP; else borrowed */
	size_t conn_memory;        /* bytes per connection for the request's and
	                              the answer's headers (MHD's memory pool,
	                              cleared at every request of a kept-alive
	                              connection); 0 = MHD's default (32 KiB) */
};

struct http_server;

/* Starts listening.  Routes are copied (prefixes too).  An IPv6 listen
 * address gets a dual-stack socket.  Returns NULL with err filled. */
struct http_server *http_start(const struct http_opts *o,
                               const struct http_route *routes, size_t nroutes,
                               char *err, size_t errlen);
/* The port actually bound (0 for NULL). */
unsigned http_port(const struct http_server *s);
/* Stops accepting, lets requests already being served finish (waiting at
 * most a few seconds, except for own_thread requests, which are waited for
 * to the end), closes idle keep-alive connections, frees.  NULL-safe. */
void http_stop(struct http_server *s);

/*
 * Percent-decodes the n-th '/'-separated segment of path after prefix
 * (n from 0) into out ('+' stays '+').  Returns the decoded length, or -1
 * if path does not start with prefix, there is no such segment, it is
 * empty, it does not fit (with its NUL) in outlen, it has a bad escape, or
 * it decodes to something containing '/', '\\', NUL or a control
 * character, or is "." or "..".
 */
int http_path_segment(const char *path, const char *prefix, int n,
                      char *out, size_t outlen);
/* Number of segments after prefix ("a/b/c" -> 3; trailing '/' ignored;
 * "" -> 0), or -1 if path does not start with prefix. */
int http_path_nsegments(const char *path, const char *prefix);

/* Digest authentication (RFC 7616, algorithm MD5, qop=auth: what desk
 * phones speak) with stateless nonces (digest.h): bound to the request URI,
 * they expire after HTTP_DIGEST_NONCE_S seconds and need no table, so a
 * boot storm never evicts one phone's nonce for another's.  The nonce
 * counts used are kept for HTTP_DIGEST_SEEN nonces (fixed memory, about
 * 2.4 MB, resident as nonces arrive): a replayed answer, or one without
 * qop, never passes.
 * http_digest_username returns the username of the request's Authorization
 * header, malloc'd (caller frees), or NULL if there is none.
 * http_digest_check returns 1 ok, 0 wrong/absent, -1 stale nonce/other
 * error; password is only read (the caller keeps and wipes it).
 * http_digest_challenge turns res into a 401 with a short text body and a
 * challenge for realm (stale=true when stale); a realm that does not fit
 * www_authenticate makes res a 500 instead. */
#define HTTP_DIGEST_NONCE_S 300
#define HTTP_DIGEST_SEEN 65536
char *http_digest_username(const struct http_request *req);
int http_digest_check(const struct http_request *req, const char *realm,
                      const char *username, const char *password);
void http_digest_challenge(const struct http_request *req, struct http_response *res,
                           const char *realm, bool stale);

#endif
