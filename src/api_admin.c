/*
 * api_admin.c -- the administration REST API under /api/v1/ (SPEC 6).
 *
 *   /api/v1/orgs[/{org}]
 *   /api/v1/orgs/{org}/extensions[/{number}[/return]]
 *   /api/v1/devices[/{mac}]
 *   /api/v1/devices/{mac}/resync, /api/v1/orgs/{org}/resync   (POST)
 *   /api/v1/events
 *   /api/v1/tokens
 *
 * JSON in and out (jansson).  Validation errors name the field.  Reads run
 * under the service lock through svc_locked and build their JSON there;
 * writes build a complete new object (PATCH starts from a copy of the
 * current one) and hand it to the service.  Secrets (sip_password, the
 * parking password, secret_code) are write-only: no answer carries them.
 */
#include "api.h"
#include "api_tmpl.h"
#include "api_csv.h"
#include "api_web.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "authlog.h"
#include "config.h"
#include "event.h"
#include "service.h"
#include "store.h"
#include "vendor.h"
#include "resync_engine.h"
#include "wipe.h"

#define PREFIX "/api/v1/"
#define SEG_MAX 160

struct req_ctx {
	struct api_ctx *c;
	const struct http_request *req;
	struct http_response *res;
	struct svc_principal who;
	char seg[5][SEG_MAX];
	int nseg;
};

/* ---- output ------------------------------------------------------------- */


static int
svc_status(int svc_err)
{
	switch (svc_err) {
	case SVC_OK: return 200;
	case SVC_BAD: return 400;
	case SVC_NOTFOUND: return 404;
	case SVC_CONFLICT: return 409;
	case SVC_FORBIDDEN: return 403;
	default: return 500;
	}
}

static json_t *
sip_json(const struct hd_sip_server *s)
{
	json_t *o = json_object();

	if (s->host)
		json_object_set_new(o, "host", json_string(s->host));
	if (s->port)
		json_object_set_new(o, "port", json_integer(s->port));
	if (s->transport)
		json_object_set_new(o, "transport", json_string(s->transport));
	return o;
}

static const char *const prov_auth_names[] = {
	[HD_PROV_NONE] = "none", [HD_PROV_SHARED] = "shared", [HD_PROV_DEVICE] = "device",
};

static const char *const dst_names[] = { [HD_DST_NONE] = "none", [HD_DST_EU] = "eu",
	                                 [HD_DST_US] = "us" };

/* "+01:00" for 60 minutes east of UTC. */
static json_t *
utc_offset_json(int min)
{
	char buf[8];
	int a = min < 0 ? -min : min;

	if ((size_t)snprintf(buf, sizeof(buf), "%c%02d:%02d", min < 0 ? '-' : '+', a / 60 % 100,
	                     a % 60) >= sizeof(buf))
		return json_null();
	return json_string(buf);
}

static json_t *
site_json(const struct hd_site *s)
{
	return json_pack("{s:o, s:s, s:s?, s:s?}", "utc_offset", utc_offset_json(s->utc_offset),
	                 "dst", dst_names[s->dst], "ntp_server", s->ntp_server, "language",
	                 s->language);
}

static json_t *
keys_json(const struct hd_ext *e)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < e->nkeys; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s?}", "type",
		                                   e->keys[i].type == HD_KEY_BLF ? "blf" : "speed_dial",
		                                   "value", e->keys[i].value, "label",
		                                   e->keys[i].label));
	return a;
}

static const char *const prov_cert_names[] = {
	[HD_CERT_NONE] = "none", [HD_CERT_OPTIONAL] = "optional", [HD_CERT_REQUIRED] = "required",
};

static json_t *
org_json(const struct hd_org *o)
{
	json_t *prov = json_pack("{s:s, s:s?, s:b, s:s?, s:s}", "auth", prov_auth_names[o->prov.auth],
	                         "username", o->prov.user, "has_password",
	                         o->prov.password != NULL, "networks", o->prov.networks,
	                         "client_cert", prov_cert_names[o->prov.client_cert]);

	return json_pack("{s:s, s:s?, s:o, s:o, s:o}", "name", o->name, "display_name",
	                 o->display_name, "sip_server", sip_json(&o->sip), "provisioning", prov,
	                 "site", site_json(&o->site));
}

static json_t *
ext_json(const struct world *w, const struct hd_ext *e)
{
	const struct hd_org *o = world_org(w, e->org);
	const struct hd_dev *on = world_dev(w, e->virtual_on), *home = world_dev(w, e->home_dev);

	return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:b, s:b, s:s, s:s?, "
	                 "s:s?}",
	                 "org", o ? o->name : "", "number", e->number, "sip_user", e->sip_user,
	                 "display_name", e->display_name, "label", e->label,
	                 "voicemail", e->voicemail, "language", e->language, "keys", keys_json(e),
	                 "sip_server", sip_json(&e->sip),
	                 "allow_virtualization", e->allow_virtualization,
	                 "has_secret_code", e->has_secret,
	                 "status", virt_status_name(virt_ext_status(w, e)),
	                 "virtual_on", on ? on->mac : NULL, "home_device", home ? home->mac : NULL);
}

static json_t *
dev_json(const struct world *w, const struct hd_dev *d)
{
	const struct hd_org *o = world_org(w, d->org);
	const struct hd_ext *home = world_ext(w, d->home_ext);
	struct virt_carried k = virt_carried(w, d);
	json_t *carries;

	if (k.kind == VIRT_CARRY_EXT)
		carries = json_pack("{s:s, s:s, s:s, s:b}", "kind", "extension", "extension",
		                    k.ext->number, "sip_user", k.ext->sip_user, "virtual", k.guest);
	else
		carries = json_pack("{s:s, s:s?}", "kind", "parked", "parking_user", d->parking_user);
	return json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:o, s:s?, s:b, s:o}",
	                 "mac", d->mac, "org", o ? o->name : "", "profile", d->profile,
	                 "model", d->model, "home_extension", home ? home->number : NULL,
	                 "parking", d->parking_user ? json_pack("{s:s}", "sip_user", d->parking_user)
	                                            : json_null(),
	                 "static_contact", d->static_contact,
	                 "has_provisioning_password", d->prov_password != NULL,
	                 "carries", carries);
}

/* ---- input -------------------------------------------------------------- */

struct field_err {
	const char *field;
	int item; /* 1-based element of a list field at fault, or 0 */
	char msg[160];
};

static int
ferr(struct field_err *fe, const char *field, const char *msg)
{
	fe->field = field;
	snprintf(fe->msg, sizeof(fe->msg), "%s: %s", field, msg);
	return -1;
}

/* No control characters (CR, LF, NUL, ...) in a text value. */
static bool
clean_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/*
 * Reads an optional string field into *dst (replacing it).  present: set
 * when the key is in the object.  nullable: JSON null (or "") clears it.
 */
static int
take_str(json_t *o, const char *key, char **dst, size_t max, bool nullable, bool token,
         struct field_err *fe, bool *present)
{
	json_t *v = json_object_get(o, key);
	const char *s;

	if (present)
		*present = v != NULL;
	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		if (!nullable)
			return ferr(fe, key, "must not be null");
		wipe_free(*dst);
		*dst = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return ferr(fe, key, "must be a string");
	s = json_string_value(v);
	if (s[0] == '\0' && nullable) {
		wipe_free(*dst);
		*dst = NULL;
		return 0;
	}
	if (s[0] == '\0' || !clean_text(s, max) || strlen(s) != json_string_length(v))
		return ferr(fe, key, "empty, too long or has control characters");
	if (token && !api_printable(s, max, false))
		return ferr(fe, key, "must be printable ASCII without spaces");
	wipe_free(*dst);
	if ((*dst = strdup(s)) == NULL)
		return ferr(fe, key, "out of memory");
	return 0;
}

static int
take_sip(json_t *o, struct hd_sip_server *s, struct field_err *fe)
{
	json_t *v = json_object_get(o, "sip_server"), *port;
	const char *key;
	json_t *val;

	if (v == NULL)
		return 0;
	if (json_is_null(v)) {
		free(s->host);
		free(s->transport);
		memset(s, 0, sizeof(*s));
		return 0;
	}
	if (!json_is_object(v))
		return ferr(fe, "sip_server", "must be an object");
	json_object_foreach(v, key, val) {
		if (strcmp(key, "host") && strcmp(key, "port") && strcmp(key, "transport"))
			return ferr(fe, "sip_server", "unknown field");
	}
	if (take_str(v, "host", &s->host, 253, true, true, fe, NULL) != 0)
		return ferr(fe, "sip_server.host", "must be a host name or address");
	if (take_str(v, "transport", &s->transport, 3, true, true, fe, NULL) != 0 ||
	    (s->transport && strcmp(s->transport, "udp") && strcmp(s->transport, "tcp") &&
	     strcmp(s->transport, "tls")))
		return ferr(fe, "sip_server.transport", "must be udp, tcp or tls");
	if ((port = json_object_get(v, "port")) != NULL) {
		if (json_is_null(port))
			s->port = 0;
		else if (!json_is_integer(port) || json_integer_value(port) < 1 ||
		         json_integer_value(port) > 65535)
			return ferr(fe, "sip_server.port", "must be 1..65535");
		else
			s->port = (int)json_integer_value(port);
	}
	return 0;
}

/* A locale code hotdeskd knows ("fr_FR"), or null/"" for none. */
static int
take_language(json_t *o, char **dst, struct field_err *fe)
{
	json_t *v = json_object_get(o, "language");

	if (v != NULL && !json_is_null(v) &&
	    (!json_is_string(v) || (json_string_value(v)[0] != '\0' &&
	                            !vendor_language_ok(json_string_value(v)))))
		return ferr(fe, "language", "unknown language (see docs/PHONES.md)");
	return take_str(o, "language", dst, 16, true, true, fe, NULL);
}

/* The "site" object of an organization: utc_offset "+HH:MM", dst, ntp_server,
 * language.  Fields left out keep their value. */
static int
take_site(json_t *o, struct hd_site *s, struct field_err *fe)
{
	json_t *v = json_object_get(o, "site"), *f;
	const char *key;
	json_t *val;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return ferr(fe, "site", "must be an object");
	json_object_foreach(v, key, val) {
		if (strcmp(key, "utc_offset") && strcmp(key, "dst") && strcmp(key, "ntp_server") &&
		    strcmp(key, "language"))
			return ferr(fe, "site", "unknown field");
	}
	if ((f = json_object_get(v, "utc_offset")) != NULL) {
		const char *t = json_is_string(f) ? json_string_value(f) : "";
		int h, m, n = 0;

		if (json_is_null(f))
			s->utc_offset = 0;
		else if ((t[0] != '+' && t[0] != '-') || strlen(t) != 6 ||
		         sscanf(t + 1, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || m > 59 ||
		         h * 60 + m > (t[0] == '-' ? 720 : 840))
			return ferr(fe, "site.utc_offset", "must be +HH:MM or -HH:MM (-12:00..+14:00)");
		else
			s->utc_offset = (t[0] == '-' ? -1 : 1) * (h * 60 + m);
	}
	if ((f = json_object_get(v, "dst")) != NULL) {
		const char *t = json_is_string(f) ? json_string_value(f) : "";

		if (json_is_null(f) || strcmp(t, "none") == 0)
			s->dst = HD_DST_NONE;
		else if (strcmp(t, "eu") == 0)
			s->dst = HD_DST_EU;
		else if (strcmp(t, "us") == 0)
			s->dst = HD_DST_US;
		else
			return ferr(fe, "site.dst", "must be none, eu or us");
	}
	if (take_str(v, "ntp_server", &s->ntp_server, 253, true, true, fe, NULL) != 0)
		return ferr(fe, "site.ntp_server", "must be a host name or address");
	if (take_language(v, &s->language, fe) != 0)
		return ferr(fe, "site.language", "unknown language (see docs/PHONES.md)");
	return 0;
}

/* The "keys" array of an extension: at most HD_MAX_KEYS objects
 * {"type": "blf"|"speed_dial", "value": dialable, "label": text}; null or
 * [] clears them.  Replaces the whole list. */
static int
take_keys(json_t *o, struct hd_ext *e, struct field_err *fe)
{
	json_t *v = json_object_get(o, "keys"), *k;
	struct hd_ext tmp = { 0 };
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_null(v) && !json_is_array(v))
		return ferr(fe, "keys", "must be an array");
	if (json_is_array(v) && json_array_size(v) > HD_MAX_KEYS)
		return ferr(fe, "keys", "at most 10 keys");
	if (json_is_array(v) && json_array_size(v) > 0 &&
	    (tmp.keys = calloc(json_array_size(v), sizeof(*tmp.keys))) == NULL)
		return ferr(fe, "keys", "out of memory");
	json_array_foreach(json_is_array(v) ? v : NULL, i, k) {
		struct hd_key *key = &tmp.keys[i];
		json_t *t = json_object_get(k, "type"), *val = json_object_get(k, "value");
		const char *name;
		json_t *x;

		if (!json_is_object(k))
			goto bad;
		json_object_foreach(k, name, x)
			if (strcmp(name, "type") && strcmp(name, "value") && strcmp(name, "label"))
				goto bad;
		if (!json_is_string(t) || (strcmp(json_string_value(t), "blf") &&
		                           strcmp(json_string_value(t), "speed_dial")))
			goto bad;
		key->type = strcmp(json_string_value(t), "blf") == 0 ? HD_KEY_BLF : HD_KEY_SPEED_DIAL;
		tmp.nkeys = i + 1;
		if (!json_is_string(val) || !hd_dial_ok(json_string_value(val)) ||
		    (key->value = strdup(json_string_value(val))) == NULL)
			goto bad;
		if (take_str(k, "label", &key->label, 64, true, false, fe, NULL) != 0) {
			hd_keys_clear(&tmp);
			fe->item = (int)i + 1;
			return ferr(fe, "keys.label", "empty, too long or has control characters");
		}
	}
	hd_keys_clear(e);
	e->keys = tmp.nkeys > 0 ? tmp.keys : NULL;
	e->nkeys = tmp.nkeys;
	if (tmp.nkeys == 0)
		free(tmp.keys);
	return 0;
bad:
	hd_keys_clear(&tmp);
	fe->item = (int)i + 1;
	return ferr(fe, "keys", "each key is {\"type\": \"blf\" or \"speed_dial\", \"value\": "
	            "1 to 32 of 0-9 * # +, \"label\": text}");
}

/* The "provisioning" object of an organization. */
static int
take_prov(json_t *o, struct hd_prov *p, struct field_err *fe)
{
	json_t *v = json_object_get(o, "provisioning"), *a;
	char msg[128];
	const char *key;
	json_t *val;

	if (v == NULL)
		return 0;
	if (!json_is_object(v))
		return ferr(fe, "provisioning", "must be an object");
	json_object_foreach(v, key, val) {
		if (strcmp(key, "auth") && strcmp(key, "username") && strcmp(key, "password") &&
		    strcmp(key, "networks") && strcmp(key, "client_cert"))
			return ferr(fe, "provisioning", "unknown field");
	}
	if ((a = json_object_get(v, "client_cert")) != NULL) {
		const char *s = json_is_string(a) ? json_string_value(a) : "";

		if (strcmp(s, "none") == 0)
			p->client_cert = HD_CERT_NONE;
		else if (strcmp(s, "optional") == 0)
			p->client_cert = HD_CERT_OPTIONAL;
		else if (strcmp(s, "required") == 0)
			p->client_cert = HD_CERT_REQUIRED;
		else
			return ferr(fe, "provisioning.client_cert", "must be none, optional or required");
	}
	if ((a = json_object_get(v, "auth")) != NULL) {
		const char *s = json_is_string(a) ? json_string_value(a) : "";

		if (strcmp(s, "none") == 0)
			p->auth = HD_PROV_NONE;
		else if (strcmp(s, "shared") == 0)
			p->auth = HD_PROV_SHARED;
		else if (strcmp(s, "device") == 0)
			p->auth = HD_PROV_DEVICE;
		else
			return ferr(fe, "provisioning.auth", "must be none, shared or device");
	}
	if (take_str(v, "username", &p->user, 64, true, true, fe, NULL) != 0)
		return ferr(fe, "provisioning.username", "printable, no spaces, at most 64");
	if (take_str(v, "password", &p->password, 128, true, false, fe, NULL) != 0)
		return ferr(fe, "provisioning.password", "at most 128, no control characters");
	if (take_str(v, "networks", &p->networks, 1024, true, false, fe, NULL) != 0)
		return ferr(fe, "provisioning.networks", "a list of CIDRs");
	if (p->networks != NULL) {
		struct cfg_netlist l;

		if (cfg_netlist_parse(p->networks, &l, msg, sizeof(msg)) != 0)
			return ferr(fe, "provisioning.networks", msg);
		cfg_netlist_free(&l);
	}
	if (p->auth == HD_PROV_SHARED && (p->user == NULL || p->password == NULL))
		return ferr(fe, "provisioning", "shared auth needs username and password");
	return 0;
}

static int
known_fields(json_t *o, const char *const *known, struct field_err *fe)
{
	const char *key;
	json_t *v;

	json_object_foreach(o, key, v) {
		size_t i;

		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return ferr(fe, key, "unknown field");
	}
	return 0;
}

static json_t *
parse_json(struct req_ctx *r)
{
	json_error_t je;
	json_t *o = json_loadb(r->req->body, r->req->body_len, JSON_REJECT_DUPLICATES, &je);
	char msg[200];

	if (o == NULL || !json_is_object(o)) {
		/* jansson quotes the token "near" the error, which may be a
		 * password: the message keeps the position only */
		char *near = o ? NULL : strstr(je.text, " near '");

		if (near != NULL)
			*near = '\0';
		if (o == NULL)
			snprintf(msg, sizeof(msg), "invalid JSON body: line %d column %d: %s", je.line,
			         je.column, je.text);
		else
			snprintf(msg, sizeof(msg), "invalid JSON body: not an object");
		json_decref(o);
		api_json_error(r->res, 400, NULL, msg);
		return NULL;
	}
	return o;
}

static bool
valid_org_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && !strchr("._-", *s))
			return false;
	return true;
}

/* ---- reads under the lock ----------------------------------------------- */

struct read {
	struct req_ctx *r;
	const char *org;     /* org name or NULL */
	const char *number;
	const char *mac;
	json_t *out;
	int status;
	const char *msg;
	const char *field;   /* the body's field at fault, or NULL */
	/* for writes: resolved ids and copies */
	hd_id org_id;
	struct hd_ext *ext_copy;
	struct hd_dev *dev_copy;
	struct hd_org *org_copy;
	const char *home_number;
	hd_id home_id;
};

static bool
may_see(const struct req_ctx *r, hd_id org)
{
	return r->who.role == SVC_ROLE_ADMIN || (r->who.role == SVC_ROLE_ORG && r->who.org == org);
}

/* Looks the org up and checks scope.  Returns it or NULL (status set). */
static const struct hd_org *
read_org(const struct world *w, struct read *rd)
{
	const struct hd_org *o = world_org_by_name(w, rd->org);

	if (o == NULL || !may_see(rd->r, o->id)) {
		/* out of scope looks like absent: nothing reveals other tenants */
		rd->status = 404;
		rd->msg = "no such organization";
		return NULL;
	}
	rd->org_id = o->id;
	return o;
}

static int
rd_org(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	const struct hd_org *o = read_org(w, rd);

	if (o != NULL) {
		rd->out = org_json(o);
		rd->org_copy = hd_org_dup(o);
	}
	return 0;
}

static int
orgs_each(struct hd_org *o, void *arg)
{
	struct read *rd = arg;

	if (may_see(rd->r, o->id))
		json_array_append_new(rd->out, org_json(o));
	return 0;
}

static int
rd_orgs(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;

	rd->out = json_array();
	world_each_org(w, orgs_each, rd);
	return 0;
}

static int
rd_ext(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	const struct hd_ext *e;

	if (read_org(w, rd) == NULL)
		return 0;
	if ((e = world_ext_by_number(w, rd->org_id, rd->number)) == NULL) {
		rd->status = 404;
		rd->msg = "no such extension";
		return 0;
	}
	rd->out = ext_json(w, e);
	rd->ext_copy = hd_ext_dup(e);
	return 0;
}

struct ext_list {
	const struct world *w;
	hd_id org;
	json_t *arr;
};

static int
exts_each(struct hd_ext *e, void *arg)
{
	struct ext_list *l = arg;

	if (e->org == l->org)
		json_array_append_new(l->arr, ext_json(l->w, e));
	return 0;
}

static int
rd_exts(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	struct ext_list l = { w, 0, NULL };

	if (read_org(w, rd) == NULL)
		return 0;
	l.org = rd->org_id;
	l.arr = json_array();
	world_each_ext(w, exts_each, &l);
	rd->out = l.arr;
	return 0;
}

/* The device's last configuration fetch, or null when it never fetched
 * (or the store cannot say). */
static json_t *
last_fetch_json(struct store *st, const struct hd_dev *d)
{
	struct store_fetch f;

	if (store_fetch_get(st, d->id, &f) != 1)
		return json_null();
	return json_pack("{s:I, s:s?, s:s?, s:I}", "at", (json_int_t)f.at, "source",
	                 f.source[0] ? f.source : NULL, "user_agent",
	                 f.user_agent[0] ? f.user_agent : NULL, "version", (json_int_t)f.version);
}

/* dev_json plus the device's resync state (SPEC 5) and last fetch, under
 * the lock. */
static json_t *
dev_json_sync(struct req_ctx *r, const struct world *w, struct store *st, const struct hd_dev *d)
{
	json_t *o = dev_json(w, d), *sync = resync_sync_json(w, st, r->c->pub, d);

	if (o != NULL) {
		json_object_set_new(o, "sync", sync ? sync : json_null());
		json_object_set_new(o, "last_fetch", last_fetch_json(st, d));
	} else {
		json_decref(sync);
	}
	return o;
}

static int
rd_dev(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	const struct hd_dev *d = world_dev_by_mac(w, rd->mac);

	if (d == NULL || !may_see(rd->r, d->org)) {
		rd->status = 404;
		rd->msg = "no such device";
		return 0;
	}
	rd->out = dev_json_sync(rd->r, w, st, d);
	rd->dev_copy = hd_dev_dup(d);
	rd->org_id = d->org;
	return 0;
}

struct dev_list {
	struct read *rd;
	const struct world *w;
	hd_id org; /* 0 = all visible */
	json_t *arr;
	struct store *st;
};

static int
devs_each(struct hd_dev *d, void *arg)
{
	struct dev_list *l = arg;

	if ((l->org == 0 || d->org == l->org) && may_see(l->rd->r, d->org))
		json_array_append_new(l->arr, dev_json_sync(l->rd->r, l->w, l->st, d));
	return 0;
}

static int
rd_devs(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	struct dev_list l = { rd, w, 0, NULL, st };

	if (rd->org != NULL) {
		if (read_org(w, rd) == NULL)
			return 0;
		l.org = rd->org_id;
	}
	l.arr = json_array();
	world_each_dev(w, devs_each, &l);
	rd->out = l.arr;
	return 0;
}

/* Resolves org name and home extension number for a device write. */
static int
rd_dev_refs(const struct world *w, struct store *st, void *arg)
{
	struct read *rd = arg;
	const struct hd_ext *h;
	const struct hd_dev *cur;

	/* PUT replaces a device by MAC: never one the token may not see (it
	 * would pull another tenant's phone into this organization) */
	if (rd->mac != NULL && (cur = world_dev_by_mac(w, rd->mac)) != NULL &&
	    !may_see(rd->r, cur->org)) {
		rd->msg = "mac: already used by another device";
		rd->field = "mac";
		rd->status = 409;
		return 0;
	}
	if (read_org(w, rd) == NULL) {
		rd->msg = "org: no such organization";
		rd->field = "org";
		rd->status = 400;
		return 0;
	}
	/* a device stays in its organization (PUT as PATCH): its extensions,
	 * virtualizations and events belong there; delete and re-create it to
	 * hand a phone to another organization */
	if (rd->mac != NULL && (cur = world_dev_by_mac(w, rd->mac)) != NULL &&
	    cur->org != rd->org_id) {
		rd->msg = "org: a device cannot change organization";
		rd->field = "org";
		rd->status = 409;
		return 0;
	}
	rd->home_id = 0;
	if (rd->home_number != NULL) {
		if ((h = world_ext_by_number(w, rd->org_id, rd->home_number)) == NULL) {
			rd->status = 400;
			rd->msg = "home_extension: no such extension in the organization";
			rd->field = "home_extension";
			return 0;
		}
		rd->home_id = h->id;
	}
	return 0;
}

static void
read_free(struct read *rd)
{
	json_decref(rd->out);
	hd_ext_free(rd->ext_copy);
	hd_dev_free(rd->dev_copy);
	hd_org_free(rd->org_copy);
}

/* Runs a read; on failure answers the error and returns -1. */
static int
run_read(struct req_ctx *r, struct read *rd, int (*fn)(const struct world *, struct store *, void *))
{
	rd->r = r;
	rd->status = 200;
	svc_locked(r->c->svc, fn, rd);
	if (rd->status != 200) {
		api_json_error(r->res, rd->status, rd->field, rd->msg);
		return -1;
	}
	return 0;
}

static void
answer_result(struct req_ctx *r, int rc, const struct svc_result *res, struct read *again,
              int (*fn)(const struct world *, struct store *, void *))
{
	if (rc != SVC_OK) {
		api_json_error_item(r->res, svc_status(rc), res->field, res->item, res->err);
		return;
	}
	/* show the object as it is now */
	memset(again, 0, sizeof(*again));
	again->org = r->seg[1];
	again->number = r->seg[3];
	again->mac = r->seg[1];
	if (run_read(r, again, fn) == 0) {
		api_send_json(r->res, res->created ? 201 : 200, again->out);
		again->out = NULL;
	}
	read_free(again);
}

/* ---- organizations ------------------------------------------------------ */

static void
org_write(struct req_ctx *r, bool patch)
{
	static const char *const known[] = { "name", "display_name", "sip_server", "provisioning",
	                                     "site", NULL };
	struct read rd = { 0 }, again;
	struct field_err fe = { 0 };
	struct svc_result res = { 0 };
	struct hd_org *o;
	json_t *in;
	const char *name = r->seg[1];

	if (r->who.role != SVC_ROLE_ADMIN && !patch) {
		/* org-scoped tokens may change their own org, not create orgs */
		rd.org = name;
		if (run_read(r, &rd, rd_org) != 0)
			return;
		read_free(&rd);
		memset(&rd, 0, sizeof(rd));
	}
	if (!valid_org_name(name)) {
		api_json_error(r->res, 400, "name", "name: [a-z0-9][a-z0-9._-]*, at most 63");
		return;
	}
	if ((in = parse_json(r)) == NULL)
		return;
	if (r->who.role != SVC_ROLE_ADMIN && json_object_get(in, "provisioning") != NULL) {
		/* download access decides who may fetch files holding SIP
		 * passwords: an organization token never sees those */
		api_json_error(r->res, 403, "provisioning",
		               "provisioning: only an admin token may change download access");
		goto out;
	}
	if (patch) {
		rd.org = name;
		if (run_read(r, &rd, rd_org) != 0)
			goto out;
		o = rd.org_copy;
		rd.org_copy = NULL;
	} else {
		o = calloc(1, sizeof(*o));
	}
	if (o == NULL) {
		api_json_error(r->res, 500, NULL, "out of memory");
		goto out;
	}
	free(o->name);
	o->name = strdup(name);
	if (known_fields(in, known, &fe) != 0 ||
	    take_str(in, "display_name", &o->display_name, 128, true, false, &fe, NULL) != 0 ||
	    take_sip(in, &o->sip, &fe) != 0 || take_prov(in, &o->prov, &fe) != 0 ||
	    take_site(in, &o->site, &fe) != 0 ||
	    (json_object_get(in, "name") && (!json_is_string(json_object_get(in, "name")) ||
	     strcmp(json_string_value(json_object_get(in, "name")), name) != 0) &&
	     ferr(&fe, "name", "differs from the path"))) {
		hd_org_free(o);
		api_json_error(r->res, 400, fe.field, fe.msg);
		goto out;
	}
	answer_result(r, svc_org_put(r->c->svc, o, &res), &res, &again, rd_org);
out:
	json_decref(in);
	read_free(&rd);
}

static void
orgs_route(struct req_ctx *r)
{
	struct read rd = { 0 };
	struct svc_result res = { 0 };
	const char *m = r->req->method;

	if (r->nseg == 1) {
		if (strcmp(m, "GET") != 0) {
			api_json_error(r->res, 405, NULL, "method not allowed");
			return;
		}
		if (run_read(r, &rd, rd_orgs) == 0) {
			api_send_json(r->res, 200, json_pack("{s:O}", "orgs", rd.out));
		}
		read_free(&rd);
		return;
	}
	rd.org = r->seg[1];
	if (strcmp(m, "GET") == 0) {
		if (run_read(r, &rd, rd_org) == 0) {
			api_send_json(r->res, 200, rd.out);
			rd.out = NULL;
		}
		read_free(&rd);
	} else if (strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		org_write(r, m[1] == 'A');
	} else if (strcmp(m, "DELETE") == 0) {
		int rc;

		if (r->who.role != SVC_ROLE_ADMIN) {
			api_json_error(r->res, 403, NULL, "only an admin token may delete organizations");
			return;
		}
		rc = svc_org_delete(r->c->svc, rd.org, &res);
		if (rc != SVC_OK)
			api_json_error(r->res, svc_status(rc), res.field, res.err);
		else
			api_send_json(r->res, 200, json_pack("{s:s}", "deleted", rd.org));
	} else {
		api_json_error(r->res, 405, NULL, "method not allowed");
	}
}

/* ---- extensions --------------------------------------------------------- */

static void
ext_write(struct req_ctx *r, bool patch)
{
	static const char *const known[] = { "number", "sip_user", "sip_password", "display_name",
	                                     "label", "sip_server", "allow_virtualization",
	                                     "secret_code", "voicemail", "language", "keys", NULL };
	struct read rd = { 0 }, again;
	struct field_err fe = { 0 };
	struct svc_result res = { 0 };
	struct hd_ext *e = NULL;
	json_t *in, *v;
	const char *secret = NULL;
	int rc;

	if (!api_digits(r->seg[3], 16)) {
		api_json_error(r->res, 400, "number", "number: 1 to 16 digits");
		return;
	}
	if ((in = parse_json(r)) == NULL)
		return;
	rd.org = r->seg[1];
	rd.number = r->seg[3];
	if (run_read(r, &rd, patch ? rd_ext : rd_org) != 0)
		goto out;
	e = patch ? rd.ext_copy : calloc(1, sizeof(*e));
	rd.ext_copy = NULL;
	if (e == NULL) {
		api_json_error(r->res, 500, NULL, "out of memory");
		goto out;
	}
	e->org = rd.org_id;
	if (!patch) {
		free(e->number);
		e->number = strdup(r->seg[3]);
	}
	if (known_fields(in, known, &fe) != 0 ||
	    take_str(in, "sip_user", &e->sip_user, 128, false, true, &fe, NULL) != 0 ||
	    take_str(in, "sip_password", &e->sip_password, 128, false, false, &fe, NULL) != 0 ||
	    take_str(in, "display_name", &e->display_name, 128, true, false, &fe, NULL) != 0 ||
	    take_str(in, "label", &e->label, 64, true, false, &fe, NULL) != 0 ||
	    take_str(in, "voicemail", &e->voicemail, 32, true, true, &fe, NULL) != 0 ||
	    (e->voicemail != NULL && !hd_dial_ok(e->voicemail) &&
	     ferr(&fe, "voicemail", "1 to 32 of 0-9 * # +")) ||
	    take_language(in, &e->language, &fe) != 0 || take_keys(in, e, &fe) != 0 ||
	    take_sip(in, &e->sip, &fe) != 0)
		goto invalid;
	if ((v = json_object_get(in, "number")) != NULL &&
	    (!json_is_string(v) || strcmp(json_string_value(v), r->seg[3]) != 0)) {
		ferr(&fe, "number", "differs from the path");
		goto invalid;
	}
	if ((v = json_object_get(in, "allow_virtualization")) != NULL) {
		if (!json_is_boolean(v)) {
			ferr(&fe, "allow_virtualization", "must be true or false");
			goto invalid;
		}
		e->allow_virtualization = json_is_true(v);
	}
	if ((v = json_object_get(in, "secret_code")) != NULL) {
		if (json_is_null(v))
			secret = "";
		else if (json_is_string(v) && (json_string_value(v)[0] == '\0' ||
		                               api_digits(json_string_value(v), 32)))
			secret = json_string_value(v);
		else {
			ferr(&fe, "secret_code", "must be a string of digits");
			goto invalid;
		}
	}
	if (e->sip_user == NULL) {
		ferr(&fe, "sip_user", "is required");
		goto invalid;
	}
	if (e->sip_password == NULL) {
		ferr(&fe, "sip_password", "is required");
		goto invalid;
	}
	rc = svc_ext_put(r->c->svc, e, secret, &res);
	e = NULL;
	answer_result(r, rc, &res, &again, rd_ext);
	goto out;
invalid:
	api_json_error_item(r->res, 400, fe.field, fe.item, fe.msg);
out:
	hd_ext_free(e);
	json_decref(in);
	read_free(&rd);
}

static void
exts_route(struct req_ctx *r)
{
	struct read rd = { 0 };
	struct svc_result res = { 0 };
	const char *m = r->req->method;
	int rc;

	rd.org = r->seg[1];
	rd.number = r->seg[3];
	if (r->nseg == 3) {
		if (strcmp(m, "GET") != 0)
			api_json_error(r->res, 405, NULL, "method not allowed");
		else if (run_read(r, &rd, rd_exts) == 0)
			api_send_json(r->res, 200, json_pack("{s:O}", "extensions", rd.out));
	} else if (r->nseg == 5) {
		struct svc_star30_res out;

		if (strcmp(r->seg[4], "web-password") == 0) {
			if (run_read(r, &rd, rd_ext) == 0)
				api_web_admin_password(r->c, r->req, r->res, rd.org_id, rd.number);
		} else if (strcmp(r->seg[4], "return") != 0) {
			api_json_error(r->res, 404, NULL, "not found");
		} else if (strcmp(m, "POST") != 0) {
			api_json_error(r->res, 405, NULL, "method not allowed");
		} else if (run_read(r, &rd, rd_org) == 0) {
			rc = svc_ext_return(r->c->svc, rd.org_id, rd.number, &out, &res);
			if (rc != SVC_OK)
				api_json_error(r->res, svc_status(rc), res.field, res.err);
			else
				api_send_json(r->res, 200, json_pack("{s:s, s:s, s:s?}", "result",
				          virt_result_name(out.result), "extension", rd.number,
				          "device", out.device[0] ? out.device : NULL));
		}
	} else if (strcmp(m, "GET") == 0) {
		if (run_read(r, &rd, rd_ext) == 0) {
			api_send_json(r->res, 200, rd.out);
			rd.out = NULL;
		}
	} else if (strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		ext_write(r, m[1] == 'A');
	} else if (strcmp(m, "DELETE") == 0) {
		if (run_read(r, &rd, rd_org) == 0) {
			rc = svc_ext_delete(r->c->svc, rd.org_id, rd.number, &res);
			if (rc != SVC_OK)
				api_json_error(r->res, svc_status(rc), res.field, res.err);
			else
				api_send_json(r->res, 200, json_pack("{s:s}", "deleted", rd.number));
		}
	} else {
		api_json_error(r->res, 405, NULL, "method not allowed");
	}
	read_free(&rd);
}

/* ---- devices ------------------------------------------------------------ */

static void
dev_write(struct req_ctx *r, bool patch)
{
	static const char *const known[] = { "mac", "org", "profile", "model", "home_extension",
	                                     "parking", "static_contact", "provisioning_password",
	                                     NULL };
	struct read rd = { 0 }, refs = { 0 }, again;
	struct field_err fe = { 0 };
	struct svc_result res = { 0 };
	struct hd_dev *d = NULL;
	char *org = NULL, *home = NULL;
	bool home_given = false;
	json_t *in, *v;
	int rc;

	if ((in = parse_json(r)) == NULL)
		return;
	if (r->who.role != SVC_ROLE_ADMIN && json_object_get(in, "provisioning_password") != NULL) {
		/* with it, the token could download the phone's SIP password */
		api_json_error(r->res, 403, "provisioning_password",
		               "provisioning_password: only an admin token may set download "
		               "credentials");
		json_decref(in);
		return;
	}
	rd.mac = r->seg[1];
	if (patch) {
		if (run_read(r, &rd, rd_dev) != 0)
			goto out;
		d = rd.dev_copy;
		rd.dev_copy = NULL;
		json_t *cur = rd.out;
		org = strdup(json_string_value(json_object_get(cur, "org")));
		if (json_is_string(json_object_get(cur, "home_extension")))
			home = strdup(json_string_value(json_object_get(cur, "home_extension")));
	} else {
		d = calloc(1, sizeof(*d));
		if (d != NULL)
			memcpy(d->mac, r->seg[1], sizeof(d->mac));
	}
	if (d == NULL) {
		api_json_error(r->res, 500, NULL, "out of memory");
		goto out;
	}
	if (known_fields(in, known, &fe) != 0 ||
	    take_str(in, "org", &org, 63, false, true, &fe, NULL) != 0 ||
	    take_str(in, "profile", &d->profile, 32, false, true, &fe, NULL) != 0 ||
	    take_str(in, "model", &d->model, 32, true, true, &fe, NULL) != 0 ||
	    take_str(in, "home_extension", &home, 16, true, true, &fe, &home_given) != 0 ||
	    take_str(in, "static_contact", &d->static_contact, 256, true, true, &fe, NULL) != 0 ||
	    take_str(in, "provisioning_password", &d->prov_password, 128, true, false, &fe,
	             NULL) != 0)
		goto invalid;
	if ((v = json_object_get(in, "mac")) != NULL) {
		char m[HD_MAC_LEN + 1];

		if (!json_is_string(v) || hd_mac_normalize(json_string_value(v), m) != 0 ||
		    strcmp(m, d->mac) != 0) {
			ferr(&fe, "mac", "differs from the path");
			goto invalid;
		}
	}
	if ((v = json_object_get(in, "parking")) != NULL) {
		if (json_is_null(v)) {
			free(d->parking_user);
			free(d->parking_password);
			d->parking_user = d->parking_password = NULL;
		} else if (!json_is_object(v) || json_object_size(v) != 2 ||
		           !json_object_get(v, "sip_user") || !json_object_get(v, "sip_password")) {
			ferr(&fe, "parking", "must be {\"sip_user\": …, \"sip_password\": …} or null");
			goto invalid;
		} else if (take_str(v, "sip_user", &d->parking_user, 128, false, true, &fe,
		                    NULL) != 0) {
			ferr(&fe, "parking.sip_user", "printable, no spaces, at most 128");
			goto invalid;
		} else if (take_str(v, "sip_password", &d->parking_password, 128, false, false, &fe,
		                    NULL) != 0) {
			ferr(&fe, "parking.sip_password", "at most 128, no control characters");
			goto invalid;
		}
	}
	if (org == NULL) {
		ferr(&fe, "org", "is required");
		goto invalid;
	}
	if (d->profile == NULL) {
		ferr(&fe, "profile", "is required");
		goto invalid;
	}
	if (vendor_profile_by_name(d->profile) == NULL) {
		ferr(&fe, "profile", "unknown vendor profile");
		goto invalid;
	}
	if (home != NULL && !api_digits(home, 16)) {
		ferr(&fe, "home_extension", "must be an extension number");
		goto invalid;
	}
	refs.org = org;
	refs.home_number = home;
	refs.mac = d->mac;
	if (run_read(r, &refs, rd_dev_refs) != 0)
		goto out;
	if (patch && d->org != refs.org_id) {
		api_json_error(r->res, 400, "org", "org: a device cannot change organization");
		goto out;
	}
	d->org = refs.org_id;
	d->home_ext = refs.home_id;
	rc = svc_dev_put(r->c->svc, d, &res);
	d = NULL;
	answer_result(r, rc, &res, &again, rd_dev);
	goto out;
invalid:
	api_json_error(r->res, 400, fe.field, fe.msg);
out:
	(void)home_given;
	hd_dev_free(d);
	free(org);
	free(home);
	json_decref(in);
	read_free(&rd);
	read_free(&refs);
}

static void
devs_route(struct req_ctx *r)
{
	struct read rd = { 0 };
	struct svc_result res = { 0 };
	const char *m = r->req->method;
	char mac[HD_MAC_LEN + 1];

	if (r->nseg == 1) {
		rd.org = http_query_arg(r->req, "org");
		if (strcmp(m, "GET") != 0)
			api_json_error(r->res, 405, NULL, "method not allowed");
		else if (run_read(r, &rd, rd_devs) == 0)
			api_send_json(r->res, 200, json_pack("{s:O}", "devices", rd.out));
		read_free(&rd);
		return;
	}
	if (r->nseg != 2 || hd_mac_normalize(r->seg[1], mac) != 0) {
		api_json_error(r->res, r->nseg == 2 ? 400 : 404, "mac",
		               r->nseg == 2 ? "mac: 12 hex digits" : "not found");
		return;
	}
	memcpy(r->seg[1], mac, sizeof(mac));
	rd.mac = r->seg[1];
	if (strcmp(m, "GET") == 0) {
		if (run_read(r, &rd, rd_dev) == 0) {
			api_send_json(r->res, 200, rd.out);
			rd.out = NULL;
		}
	} else if (strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		dev_write(r, m[1] == 'A');
	} else if (strcmp(m, "DELETE") == 0) {
		if (run_read(r, &rd, rd_dev) == 0) {
			int rc = svc_dev_delete(r->c->svc, mac, &res);

			if (rc != SVC_OK)
				api_json_error(r->res, svc_status(rc), res.field, res.err);
			else
				api_send_json(r->res, 200, json_pack("{s:s}", "deleted", mac));
		}
	} else {
		api_json_error(r->res, 405, NULL, "method not allowed");
	}
	read_free(&rd);
}

/* ---- events ------------------------------------------------------------- */

struct ev_read {
	const struct world *w;
	struct req_ctx *r;
	struct store_event_filter f;
	const char *org_name;
	json_t *arr;
	long long last;
	int status;
};

static int
ev_each(const struct store_event *ev, void *arg)
{
	struct ev_read *e = arg;
	json_t *detail = NULL;

	if (ev->detail)
		detail = json_loads(ev->detail, 0, NULL);
	const struct hd_org *o = world_org(e->w, ev->org);

	json_array_append_new(e->arr, json_pack("{s:I, s:I, s:s, s:s?, s:s?, s:s?, s:o?, s:o}",
	                      "id", (json_int_t)ev->id, "at", (json_int_t)ev->at,
	                      "type", ev->type, "org", o ? o->name : NULL,
	                      "extension", ev->extension,
	                      "device", ev->device, "detail", detail, "actor",
	                      ev->actor_token ? json_pack("{s:I, s:s?}", "token",
	                                                  (json_int_t)ev->actor_token, "role",
	                                                  ev->actor_role)
	                                      : json_null()));
	e->last = ev->id;
	return 0;
}

static int
rd_events(const struct world *w, struct store *st, void *arg)
{
	struct ev_read *e = arg;

	e->w = w;
	if (e->org_name != NULL) {
		const struct hd_org *o = world_org_by_name(w, e->org_name);

		if (o == NULL || !may_see(e->r, o->id)) {
			e->status = 404;
			return 0;
		}
		e->f.org = o->id;
	} else if (e->r->who.role == SVC_ROLE_ORG) {
		e->f.org = e->r->who.org;
	}
	return store_events_list(st, &e->f, ev_each, e);
}

static bool
parse_ll(const char *s, long long *out)
{
	char *end;

	if (s == NULL)
		return true;
	if (!api_digits(s, 18))
		return false;
	*out = strtoll(s, &end, 10);
	return *end == '\0';
}

static void
events_route(struct req_ctx *r)
{
	struct ev_read e = { 0 };
	long long limit = 100;

	if (strcmp(r->req->method, "GET") != 0) {
		api_json_error(r->res, 405, NULL, "method not allowed");
		return;
	}
	e.r = r;
	e.status = 200;
	e.org_name = http_query_arg(r->req, "org");
	/* an older name filters as the name it has now (event.h) */
	e.f.type = event_name_current(http_query_arg(r->req, "type"));
	e.f.extension = http_query_arg(r->req, "extension");
	e.f.device = http_query_arg(r->req, "device");
	if (!parse_ll(http_query_arg(r->req, "after"), &e.f.since_id)) {
		api_json_error(r->res, 400, "after", "after: an event id");
		return;
	}
	if (!parse_ll(http_query_arg(r->req, "limit"), &limit) || limit < 1 || limit > 1000) {
		api_json_error(r->res, 400, "limit", "limit: 1..1000");
		return;
	}
	e.f.limit = (int)limit;
	e.arr = json_array();
	if (svc_locked(r->c->svc, rd_events, &e) < 0) {
		json_decref(e.arr);
		api_json_error(r->res, 500, NULL, "cannot read events");
		return;
	}
	if (e.status != 200) {
		json_decref(e.arr);
		api_json_error(r->res, 404, "org", "no such organization");
		return;
	}
	api_send_json(r->res, 200, json_pack("{s:o, s:o}", "events", e.arr, "next",
	          json_array_size(e.arr) == (size_t)limit ? json_integer(e.last) : json_null()));
}

/* ---- tokens ------------------------------------------------------------- */

/* One token as shown: never its secret nor its hash. */
struct tok_read {
	const struct world *w;
	json_t *arr;  /* list */
	json_t *one;  /* one */
	hd_id id;
	int rc;
};

static json_t *
token_json(const struct world *w, const struct store_token *t)
{
	const struct hd_org *o = world_org(w, t->org);

	return json_pack("{s:I, s:s, s:s?, s:s?, s:I, s:o, s:b}", "id", (json_int_t)t->id,
	                 "role", t->role, "org", o ? o->name : NULL, "name", t->name,
	                 "created_at", (json_int_t)t->created_at, "rotated_at",
	                 t->rotated_at ? json_integer(t->rotated_at) : json_null(), "config",
	                 t->from_config);
}

static int
tok_each(const struct store_token *t, void *arg)
{
	struct tok_read *tr = arg;
	json_t *j = token_json(tr->w, t);

	if (tr->arr != NULL)
		json_array_append_new(tr->arr, j);
	else
		tr->one = j;
	return 0;
}

static int
rd_tokens(const struct world *w, struct store *st, void *arg)
{
	struct tok_read *tr = arg;

	tr->w = w;
	tr->rc = tr->arr != NULL ? store_token_list(st, tok_each, tr)
	                         : store_token_get(st, tr->id, tok_each, tr);
	return 0;
}

static void
token_new(struct req_ctx *r)
{
	struct field_err fe = { 0 };
	char *role = NULL, *org = NULL, *name = NULL, tok[128], err[160];
	enum svc_role sr;
	hd_id id = 0;
	json_t *in;
	int rc;
	static const char *const known[] = { "role", "org", "name", NULL };

	if ((in = parse_json(r)) == NULL)
		return;
	if (known_fields(in, known, &fe) != 0 ||
	    take_str(in, "role", &role, 8, false, true, &fe, NULL) != 0 ||
	    take_str(in, "org", &org, 63, true, true, &fe, NULL) != 0 ||
	    take_str(in, "name", &name, 64, true, false, &fe, NULL) != 0) {
		api_json_error(r->res, 400, fe.field, fe.msg);
		goto out;
	}
	if (role == NULL || (strcmp(role, "admin") && strcmp(role, "org"))) {
		api_json_error(r->res, 400, "role", "role: admin or org");
		goto out;
	}
	sr = role[0] == 'a' ? SVC_ROLE_ADMIN : SVC_ROLE_ORG;
	if ((sr == SVC_ROLE_ORG) != (org != NULL)) {
		api_json_error(r->res, 400, "org", "org: required with role org, only then");
		goto out;
	}
	rc = svc_token_new(r->c->svc, sr, org, name, tok, sizeof(tok), &id, err, sizeof(err));
	if (rc != SVC_OK)
		api_json_error(r->res, rc == SVC_NOTFOUND ? 400 : 500,
		               rc == SVC_NOTFOUND ? "org" : NULL, err);
	else
		api_send_json(r->res, 201, json_pack("{s:I, s:s}", "id", (json_int_t)id, "token", tok));
	sodium_memzero(tok, sizeof(tok));
out:
	free(role);
	free(org);
	free(name);
	json_decref(in);
}

/*
 * /api/v1/tokens                 GET list, POST create
 * /api/v1/tokens/{id}            GET one, DELETE revoke
 * /api/v1/tokens/{id}/rotate     POST: a new secret for the same token
 * Admin role only.
 */
static void
tokens_route(struct req_ctx *r)
{
	const char *m = r->req->method;
	struct tok_read tr = { 0 };
	char tok[128], err[160];
	long long id = 0;
	int rc;

	if (r->who.role != SVC_ROLE_ADMIN) {
		api_json_error(r->res, 403, NULL, "only an admin token may manage tokens");
		return;
	}
	if (r->nseg == 1) {
		if (strcmp(m, "POST") == 0) {
			token_new(r);
		} else if (strcmp(m, "GET") == 0) {
			tr.arr = json_array();
			svc_locked(r->c->svc, rd_tokens, &tr);
			if (tr.rc < 0) {
				json_decref(tr.arr);
				api_json_error(r->res, 500, NULL, "cannot read tokens");
			} else {
				api_send_json(r->res, 200, json_pack("{s:o}", "tokens", tr.arr));
			}
		} else {
			api_json_error(r->res, 405, NULL, "method not allowed");
		}
		return;
	}
	if (r->nseg > 3 || !parse_ll(r->seg[1], &id) || id < 1 ||
	    (r->nseg == 3 && strcmp(r->seg[2], "rotate") != 0)) {
		api_json_error(r->res, 404, NULL, "not found");
		return;
	}
	if (r->nseg == 3 && strcmp(m, "POST") == 0) {
		rc = svc_token_rotate(r->c->svc, id, tok, sizeof(tok), err, sizeof(err));
		if (rc != SVC_OK)
			api_json_error(r->res, svc_status(rc), NULL, err);
		else
			api_send_json(r->res, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id,
			                                     "token", tok));
		sodium_memzero(tok, sizeof(tok));
	} else if (r->nseg == 2 && strcmp(m, "DELETE") == 0) {
		rc = svc_token_revoke(r->c->svc, id, err, sizeof(err));
		if (rc != SVC_OK)
			api_json_error(r->res, svc_status(rc), NULL, err);
		else
			api_send_json(r->res, 200, json_pack("{s:I}", "deleted", (json_int_t)id));
	} else if (r->nseg == 2 && strcmp(m, "GET") == 0) {
		tr.id = id;
		svc_locked(r->c->svc, rd_tokens, &tr);
		if (tr.rc < 0)
			api_json_error(r->res, 500, NULL, "cannot read tokens");
		else if (tr.one == NULL)
			api_json_error(r->res, 404, NULL, "no such token");
		else
			api_send_json(r->res, 200, tr.one);
	} else {
		api_json_error(r->res, 405, NULL, "method not allowed");
	}
}

/* ---- entry -------------------------------------------------------------- */

/* POST /api/v1/devices/{mac}/resync and /api/v1/orgs/{org}/resync: queue
 * a resync NOTIFY (SPEC 5) for one device or every device of an org. */
static void
resync_route(struct req_ctx *r, bool org)
{
	struct read rd = { 0 };
	struct svc_result res = { 0 };
	char mac[HD_MAC_LEN + 1];
	size_t n = 0;
	int rc;

	if (strcmp(r->req->method, "POST") != 0) {
		api_json_error(r->res, 405, NULL, "method not allowed");
		return;
	}
	if (org) {
		rd.org = r->seg[1];
		if (run_read(r, &rd, rd_org) != 0)
			goto out;
	} else {
		if (hd_mac_normalize(r->seg[1], mac) != 0) {
			api_json_error(r->res, 400, "mac", "mac: 12 hex digits");
			return;
		}
		memcpy(r->seg[1], mac, sizeof(mac));
		rd.mac = r->seg[1];
		if (run_read(r, &rd, rd_dev) != 0)
			goto out;
	}
	rc = svc_resync(r->c->svc, org ? NULL : mac, org ? r->seg[1] : NULL, &n, &res);
	if (rc != SVC_OK)
		api_json_error(r->res, svc_status(rc), res.field, res.err);
	else
		api_send_json(r->res, 202, json_pack("{s:s, s:I}", "resync", "queued", "devices",
		                                 (json_int_t)n));
out:
	read_free(&rd);
}

static void
admin_route(struct req_ctx *r0)
{
	struct req_ctx r = *r0;
	const struct http_request *req = r.req;
	struct http_response *res = r.res;

	r.nseg = http_path_nsegments(req->path, PREFIX);
	if (r.nseg < 1 || r.nseg > 5) {
		api_json_error(res, 404, NULL, "not found");
		return;
	}
	for (int i = 0; i < r.nseg; i++) {
		if (http_path_segment(req->path, PREFIX, i, r.seg[i], SEG_MAX) < 0) {
			api_json_error(res, 400, NULL, "invalid path");
			return;
		}
	}
	if (req->body_len > r.c->max_body &&
	    !(r.nseg == 3 && strcmp(r.seg[0], "orgs") == 0 && strcmp(r.seg[2], "import") == 0)) {
		api_json_error(res, 413, NULL, "body too large");
		return;
	}
	if (strcmp(r.seg[0], "orgs") == 0 && r.nseg <= 2)
		orgs_route(&r);
	else if (r.nseg == 3 && strcmp(r.seg[0], "orgs") == 0 &&
	         (strcmp(r.seg[2], "import") == 0 || strcmp(r.seg[2], "export") == 0))
		api_csv_handle(r.c, req, res, &r.who, r.seg[1], r.seg[2]);
	else if (strcmp(r.seg[0], "orgs") == 0 && strcmp(r.seg[2], "extensions") == 0)
		exts_route(&r);
	else if (r.nseg == 3 && strcmp(r.seg[2], "resync") == 0 &&
	         (strcmp(r.seg[0], "devices") == 0 || strcmp(r.seg[0], "orgs") == 0))
		resync_route(&r, r.seg[0][0] == 'o');
	else if (strcmp(r.seg[0], "devices") == 0 && r.nseg <= 2)
		devs_route(&r);
	else if (strcmp(r.seg[0], "templates") == 0 || strcmp(r.seg[0], "devices") == 0)
		api_tmpl_handle(r.c, req, res, &r.who); /* templates, device previews */
	else if (strcmp(r.seg[0], "events") == 0 && r.nseg == 1)
		events_route(&r);
	else if (strcmp(r.seg[0], "tokens") == 0)
		tokens_route(&r);
	else
		api_json_error(res, 404, NULL, "not found");
}

void
api_admin_too_large(void *arg, const struct http_request *req, struct http_response *res)
{
	api_json_error(res, 413, NULL, "body too large");
}

void
api_admin_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct req_ctx r = { .c = arg, .req = req, .res = res };

	r.who = svc_auth(r.c->svc, http_bearer(req));
	if (http_bearer(req) == NULL && r.c->web != NULL) {
		/* the web console: its session cookie, CSRF token for changes */
		bool forbidden;

		r.who = api_web_admin_auth(r.c->web, req, &forbidden);
		if (forbidden) {
			api_json_error(res, 403, NULL, "missing CSRF token or cross-origin request");
			return;
		}
	}
	if (r.who.role != SVC_ROLE_ADMIN && r.who.role != SVC_ROLE_ORG) {
		authlog_refused(req->peer, AUTHLOG_ADMIN_TOKEN,
		                http_bearer(req) ? "invalid" : "missing");
		api_json_error(res, 401, NULL, "missing or invalid token");
		return;
	}
	/* every change this request makes records this token as its actor */
	svc_actor(&r.who);
	admin_route(&r);
	svc_actor(NULL);
}
