/*
 * api.c -- answer shaping shared by the HTTP handlers: one form-encoded
 * line (what dialplan CURL() reads) or JSON, and input checks.
 */
#include "api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "form.h"

void
api_answer_add(struct api_answer *a, const char *key, const char *value)
{
	if (a->n == API_ANSWER_MAX || value == NULL)
		return;
	a->kv[a->n].key = key;
	a->kv[a->n].number = false;
	/* values are ours (results, numbers, MACs) and short: truncation of
	 * an over-long one would be a bug, so send nothing rather than half */
	if ((size_t)snprintf(a->kv[a->n].value, sizeof(a->kv[a->n].value), "%s", value) >=
	    sizeof(a->kv[a->n].value))
		return;
	a->n++;
}

void
api_answer_addi(struct api_answer *a, const char *key, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	api_answer_add(a, key, buf);
	if (a->n > 0 && a->kv[a->n - 1].key == key)
		a->kv[a->n - 1].number = true;
}

/* Whether the request prefers JSON (Accept: application/json). */
static bool
api_wants_json(const struct http_request *req)
{
	const char *acc = http_header(req, "Accept");

	return acc != NULL && strstr(acc, "application/json") != NULL;
}

void
api_answer_send(const struct http_request *req, struct http_response *res, int status,
                const struct api_answer *a)
{
	if (api_wants_json(req)) {
		json_t *o = json_object();
		char *txt;

		for (size_t i = 0; i < a->n; i++)
			json_object_set_new(o, a->kv[i].key,
			                    a->kv[i].number ? json_integer(atol(a->kv[i].value))
			                                    : json_string(a->kv[i].value));
		txt = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		if (txt == NULL) {
			http_printf(res, 500, NULL, "result=error&reason=internal\n");
			return;
		}
		http_set_body(res, status, "application/json", txt, strlen(txt));
	} else {
		struct form_out f = FORM_OUT_INIT;
		size_t len;
		char *txt;

		for (size_t i = 0; i < a->n; i++)
			form_out_add(&f, a->kv[i].key, a->kv[i].value);
		if ((txt = form_out_finish(&f, &len)) == NULL) {
			http_printf(res, 500, NULL, "result=error&reason=internal\n");
			return;
		}
		http_set_body(res, status, "text/plain; charset=utf-8", txt, len);
	}
}

void
api_send_json(struct http_response *res, int status, json_t *o)
{
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (txt == NULL) {
		api_json_error(res, 500, NULL, "internal error");
		return;
	}
	http_set_body(res, status, "application/json", txt, strlen(txt));
}

void
api_json_error(struct http_response *res, int status, const char *field, const char *msg)
{
	api_json_error_item(res, status, field, 0, msg);
}

void
api_json_error_item(struct http_response *res, int status, const char *field, int item,
                    const char *msg)
{
	json_t *o = json_pack("{s:s, s:s?}", "error", msg, "field", field);
	char *txt;

	if (o != NULL && item > 0 && json_object_set_new(o, "item", json_integer(item)) != 0) {
		json_decref(o);
		o = NULL;
	}
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt == NULL) {
		http_printf(res, 500, "application/json", "{\"error\":\"internal\"}");
		return;
	}
	http_set_body(res, status, "application/json", txt, strlen(txt));
}

bool
api_printable(const char *s, size_t max, bool spaces)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++, n++)
		if (n == max || !isprint((unsigned char)*s) || (!spaces && *s == ' '))
			return false;
	return true;
}

bool
api_digits(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++, n++)
		if (n == max || !isdigit((unsigned char)*s))
			return false;
	return true;
}
