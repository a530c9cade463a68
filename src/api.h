/*
 * api.h -- what the HTTP handlers share: their context and the answer
 * builder that speaks form-encoded lines or JSON.
 *
 * Handlers are thin: they authenticate, parse and validate input, call one
 * svc_* function and shape its answer.  No rule of the product lives here.
 */
#ifndef HD_API_H
#define HD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <jansson.h>

#include "http.h"

struct svc;
struct pub;
struct throttle;
struct resync;
struct api_web;

struct api_ctx {
	struct svc *svc;
	struct pub *pub;
	struct throttle *throttle;
	/* Owned copies (never pointers into a configuration, which a reload
	 * frees); freed by whoever fills the context. */
	char *prefix;              /* phones' path prefix, e.g. "/provision/" */
	char *phone_logs;          /* directory for uploaded logs, NULL = drop them */
	/* Called after a device fetched a per-device file (resync confirmation);
	 * may be NULL. */
	void (*on_fetch)(void *arg, long long dev, unsigned long long version,
	                 const char *source, const char *user_agent);
	void *fetch_arg;
	struct resync *resync;     /* woken after a template change publishes */
	/* Whether a source address may use the PBX interface (the [pbx]
	 * networks of the configuration in force). */
	bool (*pbx_net_ok)(void *arg, const struct sockaddr *sa);
	void *net_arg;
	/* Largest body of an admin request; the /api/v1/ route itself takes
	 * up to [server] max_import, for CSV imports only. */
	size_t max_body;
	/* The web adapters (console sessions sign admin API requests too);
	 * NULL: no web console. */
	struct api_web *web;
	/* The trusted vendor CA bundles of mutual TLS; NULL when none is
	 * configured (a certificate is then never trusted). */
	struct mtls *mtls;
};

/* An answer as ordered key/value pairs, sent as one form-encoded line or a
 * JSON object of strings (numbers where marked). */
#define API_ANSWER_MAX 8
struct api_answer {
	size_t n;
	struct {
		const char *key;
		char value[128];
		bool number;
	} kv[API_ANSWER_MAX];
};

void api_answer_add(struct api_answer *a, const char *key, const char *value);
void api_answer_addi(struct api_answer *a, const char *key, long v);
/* Fills res with the answer in the format the request accepts. */
void api_answer_send(const struct http_request *req, struct http_response *res, int status,
                     const struct api_answer *a);

/* Sends o (consumed; NULL gives a 500) as the JSON answer. */
void api_send_json(struct http_response *res, int status, json_t *o);

/* A JSON error {"error": msg, "field": field?}. */
void api_json_error(struct http_response *res, int status, const char *field, const char *msg);
/* The same with "item": the 1-based position in a list field (an
 * extension's keys) of the element at fault; item 0 leaves it out. */
void api_json_error_item(struct http_response *res, int status, const char *field, int item,
                         const char *msg);

/* Whether s is 1..max bytes of printable ASCII (no spaces if !spaces). */
bool api_printable(const char *s, size_t max, bool spaces);
/* Whether s is 1..max ASCII digits. */
bool api_digits(const char *s, size_t max);

void api_pbx_handle(void *arg, const struct http_request *req, struct http_response *res);
/* Whether a PBX request may check a secret code with Argon2id: a star30
 * carrying a code (its own field, or after '*' in the digits).  The
 * adapter runs those on a thread of their own (http_route.own_thread_if):
 * a hash takes tens of milliseconds, and phones sharing the worker thread
 * would wait for it. */
bool api_pbx_may_hash(void *arg, const struct http_request *req);
void api_prov_handle(void *arg, const struct http_request *req, struct http_response *res);
void api_admin_handle(void *arg, const struct http_request *req, struct http_response *res);
/* The 413 of each API in its own error form (http_route.too_large). */
void api_pbx_too_large(void *arg, const struct http_request *req, struct http_response *res);
void api_admin_too_large(void *arg, const struct http_request *req, struct http_response *res);

#endif
