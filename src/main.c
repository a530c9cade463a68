/*
 * main.c -- the hotdeskd daemon: arguments, start-up, signals, shutdown.
 *
 * Start-up order: configuration, log, service (store, migrations, world),
 * publisher, HTTP server, then the port file.  Signals are blocked in every
 * thread and taken synchronously by the main thread (sigtimedwait), which
 * also runs the periodic housekeeping; no code runs in a signal handler.
 *
 *   SIGTERM, SIGINT  stop accepting, finish in-flight requests, exit 0
 *   SIGHUP           re-read the configuration; apply it if it parses
 *
 * Started as root with [server] user set, it works as that user from the
 * start and gives root up after binding its sockets (priv.h).  Under
 * systemd (Type=notify) it reports READY, RELOADING, STOPPING and feeds
 * the watchdog (sdnotify.h).
 *
 * The configuration in force is d->cfg, an immutable snapshot (config.h).
 * Only the main thread replaces it (reload); other threads read it through
 * daemon_cfg(), which hands them their own reference.  Modules are given
 * copies, never pointers into it: a reload frees the old snapshot as soon
 * as its last reader is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "api_tmpl.h"
#include "api_web.h"
#include "session.h"
#include "config.h"
#include "demand.h"
#include "errbuf.h"
#include "fsutil.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "priv.h"
#include "mtls.h"
#include "publish.h"
#include "resync_engine.h"
#include "sdnotify.h"
#include "service.h"
#include "store.h"
#include "prompt.h"
#include "secret.h"
#include "throttle.h"
#include "vendor.h"
#include "vc.h"
#include "lockorder.h"
#include "webhook.h"

#ifndef HOTDESKD_VERSION
#define HOTDESKD_VERSION "0.1.0"
#endif

struct daemon {
	pthread_mutex_t cfg_lock;  /* guards the cfg pointer (not what it points to) */
	struct hd_config *cfg;     /* the snapshot in force: daemon_cfg() to read it */
	struct svc *svc;
	struct http_server *http;  /* the [server] listener */
	struct http_server *more_http[CFG_LISTENERS - 1]; /* [listener2], [listener3] */
	struct http_tls *tls;      /* server certificate of the TLS listeners */
	struct mtls *mtls;         /* [client_ca] bundles (mutual TLS), or NULL */
	struct pub *pub;
	struct throttle *throttle;
	struct api_ctx api;
	struct resync *resync;     /* resync NOTIFYs (SPEC 5) */
	struct vc *vc;             /* Virtualization Center over SIP, or NULL */
	struct api_web web;        /* /console/ and /me/ */
	struct health *health;     /* GET /healthz */
	struct webhook *webhook;   /* [pbx] move_webhook, or NULL */
};

/* ---- what start-up needs from the file system ----------------------------
 * preflight() checks, changing nothing, what start-up would refuse after the
 * configuration file itself: --check-config runs it, and start-up runs it
 * first, so that the two agree by construction.  Not checked: whether the
 * HTTP and SIP ports are free (a running hotdeskd holds them while its next
 * configuration is checked) and the content of the database. */

/* An existing, readable directory. */
static int
need_dir(const char *key, const char *dir, char *err, size_t errlen)
{
	struct stat st;
	DIR *d;

	if (stat(dir, &st) != 0 || (S_ISDIR(st.st_mode) && (d = opendir(dir)) == NULL)) {
		hd_seterr(err, errlen, "%s: %s: %s", key, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		hd_seterr(err, errlen, "%s: %s: not a directory", key, dir);
		return -1;
	}
	closedir(d);
	return 0;
}

/* A file (or, want_dir, a directory) that exists at path and is writable,
 * or that can be created there: its parent directory exists and is
 * writable (hotdeskd creates one level, never parents). */
static int
need_creatable(const char *key, const char *path, bool want_dir, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	char parent[4096];
	struct stat st;

	if (stat(path, &st) == 0) {
		if (want_dir != (bool)S_ISDIR(st.st_mode)) {
			hd_seterr(err, errlen, "%s: %s: %s", key, path,
			         want_dir ? "not a directory" : "is a directory");
			return -1;
		}
		if (access(path, want_dir ? W_OK | X_OK : R_OK | W_OK) != 0) {
			hd_seterr(err, errlen, "%s: %s: %s", key, path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if ((size_t)snprintf(parent, sizeof(parent), "%.*s",
	                     slash == NULL ? 1 : slash == path ? 1 : (int)(slash - path),
	                     slash == NULL ? "." : path) >= sizeof(parent)) {
		hd_seterr(err, errlen, "%s: path too long", key);
		return -1;
	}
	if (stat(parent, &st) != 0 || (S_ISDIR(st.st_mode) && access(parent, W_OK | X_OK) != 0)) {
		hd_seterr(err, errlen, "%s: %s: cannot be created: %s: %s", key, path, parent,
		         strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		hd_seterr(err, errlen, "%s: %s: cannot be created: %s: not a directory", key, path,
		         parent);
		return -1;
	}
	return 0;
}

/* The Virtualization Center's prompts load (the default language has every
 * prompt) and its port file can be written. */
static int
preflight_vc(const struct hd_config *c, char *err, size_t errlen)
{
	struct prompts *p;
	char why[400];

	if (c->vc.bind == NULL)
		return 0;
	if (need_dir("[vc] prompts", c->vc.prompts, err, errlen) != 0 ||
	    (c->vc.port_file != NULL &&
	     need_creatable("[vc] port_file", c->vc.port_file, false, err, errlen) != 0))
		return -1;
	if ((p = prompts_load(c->vc.prompts, c->vc.language, why, sizeof(why))) == NULL) {
		hd_seterr(err, errlen, "[vc] prompts: %s", why);
		return -1;
	}
	prompts_free(p);
	return 0;
}

static int
preflight(const struct hd_config *c, char *err, size_t errlen)
{
	struct vendor_templates *t = NULL;
	char why[400];

	if (need_dir("[database] migrations", c->database.migrations, err, errlen) != 0 ||
	    (strcmp(c->database.path, ":memory:") != 0 &&
	     need_creatable("[database] path", c->database.path, false, err, errlen) != 0) ||
	    need_dir("[provisioning] templates", c->provisioning.templates, err, errlen) != 0 ||
	    need_dir("[provisioning] static", c->provisioning.static_dir, err, errlen) != 0 ||
	    (c->provisioning.tftp_root != NULL &&
	     need_creatable("[provisioning] tftp_root", c->provisioning.tftp_root, true, err,
	                    errlen) != 0) ||
	    (c->provisioning.phone_logs != NULL &&
	     need_creatable("[provisioning] phone_logs", c->provisioning.phone_logs, true, err,
	                    errlen) != 0) ||
	    (c->server.port_file != NULL &&
	     need_creatable("[server] port_file", c->server.port_file, false, err, errlen) != 0))
		return -1;
	if (vendor_templates_load(c->provisioning.templates, c->provisioning.static_dir, &t, why,
	                          sizeof(why)) != 0) {
		hd_seterr(err, errlen, "[provisioning] templates: %s", why);
		return -1;
	}
	vendor_templates_free(t);
	return preflight_vc(c, err, errlen);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: hotdeskd --config FILE [--check-config]\n"
	           "       hotdeskd --config FILE --backup OUT\n"
	           "       hotdeskd --version\n");
}

/* The configuration in force, with a reference of the caller's own (drop it
 * with cfg_free()): a reload meanwhile does not free it. */
static struct hd_config *
daemon_cfg(struct daemon *d)
{
	struct hd_config *c;

	pthread_mutex_lock(&d->cfg_lock);
	c = cfg_ref(d->cfg);
	pthread_mutex_unlock(&d->cfg_lock);
	return c;
}

static bool
pbx_net_ok(void *arg, const struct sockaddr *sa)
{
	struct hd_config *c = daemon_cfg(arg);
	bool ok = cfg_net_allows(c, sa);

	cfg_free(c);
	return ok;
}

static void
svc_opts_from(const struct hd_config *c, struct svc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->db_path = c->database.path;
	o->sql_dir = c->database.migrations;
	o->admin_token = c->admin.token;
	o->pbx_token = c->pbx.token;
	o->hash_ops = (unsigned long long)c->secrets.hash_ops;
	o->hash_mem = (size_t)c->secrets.hash_mem_kib * 1024;
	o->code_min_len = c->secrets.min_length;
	o->guard.tries_per_call = c->secrets.tries_per_call;
	o->guard.threshold = c->secrets.lockout_threshold;
	o->guard.window = c->secrets.lockout_window;
	o->guard.backoff = c->secrets.lockout_backoff;
	o->guard.backoff_max = c->secrets.lockout_backoff_max;
	o->guard.redial_window = c->secrets.redial_window;
	o->check_invariants = c->server.check_invariants;
	o->move_outbox = c->pbx.move_webhook != NULL;
}

/* Writes the bound port where tests and scripts can find it, atomically. */
static int
write_port_file(const char *path, unsigned port)
{
	char tmp[4096];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -1;
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return -1;
	return 0;
}

static void
throttle_policy_from(const struct hd_config *c, struct throttle *t)
{
	struct throttle_policy p = { c->provisioning.miss_threshold, c->provisioning.miss_window,
	                             c->provisioning.miss_block,
	                             c->provisioning.miss_global_threshold };

	throttle_set_policy(t, &p);
}

/* The [client_ca] bundles and [client_crl] lists: loaded into a new
 * struct mtls (*m NULL; NULL with err when one does not load), or
 * reloaded into *m (0, or -1 with err and the set in force kept). */
static int
client_ca_load(const struct hd_config *c, struct mtls **m, char *err, size_t errlen)
{
	const char *names[CFG_PROFILES_MAX];
	const char *const *files = (const char *const *)c->client_ca.v;
	const char *const *crls = (const char *const *)c->client_crl.v;
	size_t n = 0;

	/* one bundle and list per vendor profile, keyed by its name */
	for (; n < vendor_registry_len && n < CFG_PROFILES_MAX; n++)
		names[n] = vendor_registry[n]->name;

	if (*m != NULL)
		return mtls_reload(*m, names, files, crls, n, err, errlen);
	*m = mtls_new(names, files, crls, n, err, errlen);
	return *m != NULL ? 0 : -1;
}

/* Reads the client CA bundles and CRLs again (renewed under the same
 * names, or other files), for the next checks and the certificate
 * requests of the next TLS connections; a set that does not load keeps
 * the one in force. */
static void
reload_client_ca(struct daemon *d, const struct hd_config *nc)
{
	char err[512], *pem;

	if (d->mtls == NULL)
		return;
	if (client_ca_load(nc, &d->mtls, err, sizeof(err)) != 0) {
		log_error("reload: keeping the client CA bundles and CRLs in force: %s", err);
		return;
	}
	pem = mtls_ca_pem_copy(d->mtls);
	if (d->tls != NULL && http_tls_set_client_ca(d->tls, pem, err, sizeof(err)) != 0)
		log_error("reload: keeping the client CAs asked for: %s", err);
	free(pem);
}

static void
reload(struct daemon *d)
{
	char err[512], why[512];
	struct hd_config *nc, *old;
	struct svc_opts o;

	if ((nc = cfg_load(d->cfg->file, err, sizeof(err))) == NULL) {
		log_error("reload refused, keeping the running configuration: %s", err);
		metrics_inc(METRICS_RELOADS_REFUSED, 1);
		return;
	}
	if (cfg_restart_needed(d->cfg, nc, why, sizeof(why)))
		log_warn("reload: %s changed; takes effect after a restart", why);
	svc_opts_from(nc, &o);
	if (svc_reconfigure(d->svc, &o, err, sizeof(err)) != 0) {
		log_error("reload refused: %s", err);
		metrics_inc(METRICS_RELOADS_REFUSED, 1);
		cfg_free(nc);
		return;
	}
	/* the certificate files are read again even when their names did
	 * not change: a renewed certificate is put in place under the same
	 * name; a file that does not load keeps the certificate in force */
	if (d->tls != NULL && nc->tls.cert != NULL && nc->tls.key != NULL &&
	    http_tls_reload(d->tls, nc->tls.cert, nc->tls.key, err, sizeof(err)) != 0)
		log_error("reload: keeping the TLS certificate in force: %s", err);
	reload_client_ca(d, nc);
	log_set_level(nc->log.level);
	log_set_access(nc->log.access);
	throttle_policy_from(nc, d->throttle);
	resync_reconfigure(d->resync, nc);
	pthread_mutex_lock(&d->cfg_lock);
	old = d->cfg;
	d->cfg = nc;
	pthread_mutex_unlock(&d->cfg_lock);
	cfg_free(old); /* freed now, or by its last reader */
	log_info("configuration reloaded from %s", nc->file);
	metrics_inc(METRICS_RELOADS_OK, 1);
}

/* The service's change hook: re-render and publish the changed devices,
 * then owe a NOTIFY to those whose files changed (with
 * SVC_CHANGE_NOTIFY_ALL: to every one of them; with SVC_CHANGE_OUTBOX the
 * outbox rows are written here). */
static int
on_change(void *arg, const struct world *w, struct store *st, const hd_id *devs, size_t n,
          const char *why, unsigned flags)
{
	struct daemon *d = arg;
	struct hd_idset changed = { 0 };
	uint64_t t0 = metrics_now_ns();
	int rc = pub_update(d->pub, w, st, devs, n, &changed), out = 0;

	/* a change folded into its transaction (a *30 move) has its store
	 * rows to write and its commit to come: the TFTP writer writes its
	 * files meanwhile, on another CPU */
	if (flags & SVC_CHANGE_OUTBOX)
		pub_tftp_start(d->pub);

	for (size_t i = 0; rc == 0 && (flags & SVC_CHANGE_NOTIFY_ALL) && i < n; i++)
		rc = hd_idset_add(&changed, devs[i]);
	if (rc != 0)
		log_error("publishing after %s: out of memory", why);
	metrics_observe(METRICS_PUBLISH, metrics_now_ns() - t0);
	metrics_inc(METRICS_DEVICES_PUBLISHED, n);
	/* the files are published: now the NOTIFYs (the engine is woken
	 * once the service lock is released: on_unlocked) */
	if (d->resync != NULL)
		out = resync_note(d->resync, w, st, devs, n, &changed, why, flags);
	else if (flags & SVC_CHANGE_OUTBOX)
		out = store_resync_enqueue_n(st, devs, n, (long long)time(NULL));
	hd_idset_free(&changed);
	return out;
}

/* The service's unlock hook: a locked part handed changes to on_change;
 * wake the threads that act on them, now that they find the lock free. */
static void
on_unlocked(void *arg)
{
	struct daemon *d = arg;

	if (d->resync != NULL)
		resync_wake(d->resync);
	webhook_kick(d->webhook); /* the change may have moved SIP users */
}

/* The service's check hook: a change commits only if every device it
 * touches still renders. */
static int
on_check(void *arg, const struct world *w, const hd_id *devs, size_t n, char *err,
         size_t errlen)
{
	struct daemon *d = arg;

	return pub_check(d->pub, w, devs, n, err, errlen);
}

/* The service's prerender hook: a move's files rendered while its code
 * is checked, for its check to take. */
static void
on_prerender(void *arg, const struct world *w, const hd_id *devs, size_t n)
{
	struct daemon *d = arg;

	pub_prerender(d->pub, w, devs, n);
}

/* A device's files taken as they are at start-up did not hash as
 * published when first read: render them under the service lock. */
struct refill {
	struct daemon *d;
	hd_id dev;
};

static int
refill_locked(const struct world *w, struct store *st, void *arg)
{
	struct refill *r = arg;

	return pub_refill(r->d->pub, w, st, r->dev);
}

static void
pub_refill_cb(void *arg, hd_id dev)
{
	struct refill r = { arg, dev };

	(void)svc_locked(((struct daemon *)arg)->svc, refill_locked, &r);
}

/* Before a request that may change things: this thread will settle it. */
static void
settle_ahead(struct api_ctx *a)
{
	pub_settle_ahead(a->pub);
	resync_send_ahead(a->resync);
	demand_settle_ahead();
}

/* After a request that changed things (no lock held): once the files the
 * change queued for the TFTP root are there (pub_settle, which this
 * thread said ahead it would run), the first NOTIFYs of a small change
 * leave from this thread, then it wakes the engine and answers. */
static void
settle(struct api_ctx *a)
{
	pub_settle(a->pub);
	resync_send_ready(a->resync);
	pub_settle_done(a->pub);
	demand_settled(); /* a *30's move is over (demand.h) */
}

/* The Virtualization Center decides through the same engine as the PBX
 * webhook, and answers once the files are in the TFTP root too. */
static int
vc_star30(void *arg, const struct svc_star30_req *r, struct svc_star30_res *res)
{
	struct daemon *d = arg;
	int rc;

	settle_ahead(&d->api);
	rc = svc_star30(d->svc, r, res);
	settle(&d->api);
	return rc;
}

/* Answers to requests that change things are sent once the change is
 * settled (settle). */
static void
settled(struct api_ctx *a, http_handler fn, void *arg, const struct http_request *req,
        struct http_response *res)
{
	settle_ahead(a);
	fn(arg, req, res);
	settle(a);
}

static void
pbx_settled(void *arg, const struct http_request *req, struct http_response *res)
{
	settled(arg, api_pbx_handle, arg, req, res);
}

static void
admin_settled(void *arg, const struct http_request *req, struct http_response *res)
{
	settled(arg, api_admin_handle, arg, req, res);
}

static void
console_settled(void *arg, const struct http_request *req, struct http_response *res)
{
	settled(((struct api_web *)arg)->api, api_web_console_handle, arg, req, res);
}

static void
me_settled(void *arg, const struct http_request *req, struct http_response *res)
{
	settled(((struct api_web *)arg)->api, api_web_me_handle, arg, req, res);
}

/* The prompt language of a caller: its organization's site language. */
static const char *
vc_language(void *arg, const char *caller, char *buf, size_t len)
{
	return svc_caller_language(arg, caller, buf, len) == SVC_OK ? buf : NULL;
}

/* Under the service lock: forgets the moves owed to a webhook that is no
 * longer configured. */
static int
outbox_clear(const struct world *w, struct store *st, void *arg)
{
	long long n = store_pbxout_clear(st);

	(void)w;
	(void)arg;
	if (n > 0)
		log_warn("move webhook off: %lld undelivered move event(s) dropped", n);
	return n < 0 ? -1 : 0;
}

/* Starts the move webhook when [pbx] move_webhook is set; otherwise
 * empties its outbox. */
static int
start_webhook(struct daemon *d, char *err, size_t errlen)
{
	const struct hd_config *c = d->cfg;
	struct webhook_opts o = { 0 };

	if (c->pbx.move_webhook == NULL) {
		if (svc_locked(d->svc, outbox_clear, NULL) != 0) {
			hd_seterr(err, errlen, "move webhook: cannot empty the outbox");
			return -1;
		}
		return 0;
	}
	o.url = c->pbx.move_webhook;
	o.secret = c->pbx.move_webhook_secret;
	o.ca = c->pbx.move_webhook_ca;
	o.timeout_s = c->pbx.move_webhook_timeout;
	o.retry_max_s = c->pbx.move_webhook_retry_max;
	o.keep_s = c->pbx.move_webhook_keep;
	o.svc = d->svc;
	if ((d->webhook = webhook_start(&o, err, errlen)) == NULL)
		return -1;
	log_info("move webhook on: moves are posted to the PBX");
	return 0;
}

/* Starts the Virtualization Center when [vc] bind is set. */
static int
start_vc(struct daemon *d, char *err, size_t errlen)
{
	const struct hd_config *c = d->cfg;
	struct vc_opts o = { 0 };

	if (c->vc.bind == NULL)
		return 0;
	o.bind = c->vc.bind;
	o.contact_host = c->vc.contact_host;
	o.networks = &c->vc.networks;
	o.caller_header = c->vc.caller_header;
	o.prefix = c->vc.prefix;
	if (sscanf(c->vc.rtp_ports, "%d-%d", &o.rtp_min, &o.rtp_max) != 2) {
		hd_seterr(err, errlen, "[vc] rtp_ports: bad range");
		return -1;
	}
	o.prompts = c->vc.prompts;
	o.language = c->vc.language;
	o.code_timeout_s = c->vc.code_timeout;
	o.max_call_s = c->vc.max_call;
	o.max_calls = c->vc.max_calls;
	o.t1_ms = c->sip.t1_ms;
	o.star30 = vc_star30;
	o.star30_arg = d;
	o.language_of = vc_language;
	o.language_arg = d->svc;
	if ((d->vc = vc_start(&o, err, errlen)) == NULL)
		return -1;
	log_info("Virtualization Center answering SIP on %s port %d", c->vc.bind, vc_port(d->vc));
	if (c->vc.port_file != NULL && write_port_file(c->vc.port_file, (unsigned)vc_port(d->vc)) != 0) {
		hd_seterr(err, errlen, "cannot write %s", c->vc.port_file);
		return -1;
	}
	return 0;
}

struct startup {
	struct daemon *d;
	char err[512];
};

static int
tmpl_override(const struct store_tmpl *t, void *arg)
{
	struct startup *su = arg;
	const struct vendor_profile *prof = vendor_profile_by_name(t->profile);
	char err[256];

	if (prof == NULL ||
	    pub_template_set(su->d->pub, prof, t->name, t->content, strlen(t->content), err,
	                     sizeof(err)) != 0)
		log_error("template %s/%s version %d no longer applies, using the default: %s",
		          t->profile, t->name, t->version, prof ? err : "unknown profile");
	return 0;
}

/* Under the service lock, before start-up publishes: was the TFTP root
 * left clean (pub_tftp_take_clean)? */
static int
pub_take_clean_locked(const struct world *w, struct store *st, void *arg)
{
	struct startup *su = arg;

	return pub_tftp_take_clean(su->d->pub, st, su->err, sizeof(su->err));
}

/* Under the service lock: the TFTP root synced and recorded clean. */
static int
pub_stop_locked(const struct world *w, struct store *st, void *arg)
{
	pub_stop(arg, st);
	return 0;
}

/* In one transaction: administrators' templates, then every device, and
 * the resync rows a template save's re-render cut short did not write. */
static int
startup_publish(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct startup *su = arg;

	(void)chg;
	if (store_tmpl_active_each(st, tmpl_override, su) != 0) {
		snprintf(su->err, sizeof(su->err), "templates: %s", store_errmsg(st));
		return -1;
	}
	if (pub_reconcile(su->d->pub, w, st, su->err, sizeof(su->err)) != 0)
		return -1;
	if (api_tmpl_recover(w, st) != 0) {
		snprintf(su->err, sizeof(su->err), "template save: %s", store_errmsg(st));
		return -1;
	}
	return 0;
}


/* Under the service lock: TFTP files whose names the store could not
 * record in the manifest are recorded and written now. */
static int
tftp_relist_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	pub_tftp_relist(arg, st);
	return 0;
}

/* The store's error count (under the service lock). */
static int
errors_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	(void)arg;
	metrics_counter_set(METRICS_STORE_ERRORS, store_error_count(st));
	return 0;
}

/* Monitoring figures that live in the store: devices by resync state
 * (counted without the service lock) and the store's error count. */
static void
refresh_metrics(struct daemon *d)
{
	size_t n[RESYNC_COUNT_N];

	(void)svc_locked(d->svc, errors_locked, NULL);
	if (resync_state_counts(d->svc, n) != 0)
		return;
	for (int i = 0; i < RESYNC_COUNT_N; i++)
		metrics_gauge_set((enum metrics_gauge)(METRICS_DEVICES_NONE + i), (double)n[i]);
}

static double
ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Each API answers its 413 in its own error form. */
static const struct http_route too_large[] = {
	{ .prefix = "/pbx/v1/", .handler = api_pbx_too_large },
	{ .prefix = "/api/v1/", .handler = api_admin_too_large },
};

/* Whether a listener is on and speaks TLS; i as in listener_opts. */
static bool
listener_tls(const struct hd_config *c, int i)
{
	return i == 0 ? c->server.tls : c->listeners[i - 1].listen != NULL && c->listeners[i - 1].tls;
}

/* The TLS settings: the client CA bundles into *m (always), and the
 * server certificate into *out when some listener speaks TLS (else
 * NULL).  0, or -1 with err when something does not load. */
static int
tls_load(const struct hd_config *c, struct http_tls **out, struct mtls **m, char *err,
         size_t errlen)
{
	bool any = false;
	char *pem;

	*out = NULL;
	*m = NULL;
	if (client_ca_load(c, m, err, errlen) != 0)
		return -1;
	for (int i = 0; i < CFG_LISTENERS; i++)
		any = any || listener_tls(c, i);
	if (!any)
		return 0;
	pem = mtls_ca_pem_copy(*m);
	*out = http_tls_new(c->tls.cert, c->tls.key, c->tls.priorities, pem, c->tls.session_tickets,
	                    err, errlen);
	free(pem);
	return *out != NULL ? 0 : -1;
}

/*
 * The options of listener i (0 = [server], 1 and 2 = [listener2] and
 * [listener3]); false when that listener is off.
 */
static bool
listener_opts(struct daemon *d, int i, struct http_opts *ho)
{
	const struct hd_config *c = d->cfg;

	memset(ho, 0, sizeof(*ho));
	if (i == 0) {
		ho->listen = c->server.listen;
		ho->port = (unsigned)c->server.port;
		ho->serves = cfg_serves_mask(c->server.serves);
	} else {
		const struct cfg_listener *l = &c->listeners[i - 1];

		if (l->listen == NULL)
			return false;
		ho->listen = l->listen;
		ho->port = (unsigned)l->port;
		ho->serves = cfg_serves_mask(l->serves);
	}
	ho->tls = listener_tls(c, i) ? d->tls : NULL;
	ho->threads = (unsigned)c->server.threads;
	ho->conn_limit = (unsigned)c->server.max_connections;
	ho->per_source_limit = (unsigned)c->server.max_connections_per_source;
	ho->request_timeout_s = (unsigned)c->server.request_timeout;
	ho->timeout_s = (unsigned)c->server.idle_timeout;
	ho->too_large = too_large;
	ho->n_too_large = sizeof(too_large) / sizeof(too_large[0]);
	/* a phone's request and its answer's headers take well under 2 KiB;
	 * the pool is cleared at each request of a kept-alive connection, so
	 * its size is paid per request.  Browsers (cookies) and the API get
	 * more room. */
	ho->conn_memory = ho->serves == CFG_IF_PHONES ? HTTP_CONN_MEMORY_PHONES : HTTP_CONN_MEMORY;
	return true;
}

/* Starts every listener that is on.  0 or -1 (logged). */
static int
start_listeners(struct daemon *d, const struct http_route *routes, size_t nroutes)
{
	char err[512];

	if (tls_load(d->cfg, &d->tls, &d->mtls, err, sizeof(err)) != 0) {
		log_error("tls: %s", err);
		return -1;
	}
	d->api.mtls = d->mtls;
	for (int i = 0; i < CFG_LISTENERS; i++) {
		struct http_server **slot = i == 0 ? &d->http : &d->more_http[i - 1];
		struct http_opts ho;

		if (!listener_opts(d, i, &ho))
			continue;
		if ((*slot = http_start(&ho, routes, nroutes, err, sizeof(err))) == NULL) {
			log_error("http: %s", err);
			return -1;
		}
		log_info("listening on %s port %u (%s, serves %s)", ho.listen, http_port(*slot),
		         ho.tls ? "https" : "http",
		         i == 0 ? d->cfg->server.serves : d->cfg->listeners[i - 1].serves);
	}
	return 0;
}

/* Writes the port file of every listener that has one, [server]'s last.
 * 0 or -1 (logged). */
static int
write_port_files(struct daemon *d)
{
	for (int i = CFG_LISTENERS - 1; i >= 0; i--) {
		struct http_server *srv = i == 0 ? d->http : d->more_http[i - 1];
		const char *pf = i == 0 ? d->cfg->server.port_file : d->cfg->listeners[i - 1].port_file;

		if (srv != NULL && pf != NULL && write_port_file(pf, http_port(srv)) != 0) {
			log_error_errno("cannot write %s", pf);
			return -1;
		}
	}
	return 0;
}

/* Stops every listener (in-flight requests finish), then frees the TLS
 * certificate they shared.  Idempotent. */
static void
stop_listeners(struct daemon *d)
{
	http_stop(d->http);
	d->http = NULL;
	for (int i = 0; i < CFG_LISTENERS - 1; i++) {
		http_stop(d->more_http[i]);
		d->more_http[i] = NULL;
	}
	http_tls_free(d->tls);
	d->tls = NULL;
	d->api.mtls = NULL;
	mtls_free(d->mtls);
	d->mtls = NULL;
}

static int
run(struct daemon *d)
{
	struct http_route routes[7];
	struct pub_opts po = { 0 };
	struct startup su = { d, "" };
	struct timespec t0, t1, t2;
	struct svc_opts so;
	sigset_t set;
	char err[512];
	unsigned long long wd_us;
	uint64_t wd_last = 0;
	unsigned ticks = 0;
	int sig, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	secret_set_parallel((unsigned)d->cfg->secrets.hash_parallel);
	svc_opts_from(d->cfg, &so);
	if ((d->svc = svc_open(&so, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		return 1;
	}
	po.templates = d->cfg->provisioning.templates;
	po.static_dir = d->cfg->provisioning.static_dir;
	po.tftp_root = d->cfg->provisioning.tftp_root;
	if ((d->pub = pub_new(&po, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("state loaded in %.0f ms", ms_between(&t0, &t1));
	if (svc_locked(d->svc, pub_take_clean_locked, &su) != 0) {
		log_error("publishing: %s", su.err);
		return 1;
	}
	if (svc_transact(d->svc, "start-up", startup_publish, NULL, &su) != 0) {
		log_error("publishing: %s", su.err[0] ? su.err : "the database failed");
		return 1;
	}
	pub_settle(d->pub); /* files new to the manifest are written once it committed */
	clock_gettime(CLOCK_MONOTONIC, &t2);
	log_info("configuration published in %.0f ms", ms_between(&t1, &t2));
	/* start-up rendered every device through short-lived buffers: give the
	 * freed pages back before serving */
	malloc_trim(0);
	svc_set_change_hook(d->svc, on_change, d);
	svc_set_unlock_hook(d->svc, on_unlocked, d);
	svc_set_check_hook(d->svc, on_check, d);
	svc_set_prerender_hook(d->svc, on_prerender, d);
	pub_set_refill(d->pub, pub_refill_cb, d);
	priv_bind_begin(); /* [sip] bind may be a port below 1024 */
	d->resync = resync_new(d->cfg, d->svc, d->pub, err, sizeof(err));
	priv_bind_end();
	if (d->resync == NULL) {
		log_error("resync: %s", err);
		return 1;
	}
	if (start_webhook(d, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	if ((d->throttle = throttle_new(4096)) == NULL) {
		log_error("out of memory");
		return 1;
	}
	throttle_policy_from(d->cfg, d->throttle);
	d->api.svc = d->svc;
	d->api.pub = d->pub;
	d->api.throttle = d->throttle;
	/* copies: the api context outlives any one configuration */
	if ((d->api.prefix = strdup(d->cfg->provisioning.prefix)) == NULL ||
	    (d->cfg->provisioning.phone_logs != NULL &&
	     (d->api.phone_logs = strdup(d->cfg->provisioning.phone_logs)) == NULL)) {
		log_error("out of memory");
		return 1;
	}
	d->api.pbx_net_ok = pbx_net_ok;
	d->api.net_arg = d;
	d->api.on_fetch = resync_on_fetch;
	d->api.fetch_arg = d->resync;
	d->api.resync = d->resync;
	if (d->api.phone_logs != NULL && fs_mkdir(d->api.phone_logs, err, sizeof(err)) != 0) {
		log_error("phone logs: %s", err);
		return 1;
	}
	if (d->api.phone_logs != NULL &&
	    fs_sweep_temporaries(d->api.phone_logs, NULL, err, sizeof(err)) != 0)
		log_error("phone logs: removing stale temporaries: %s", err);
	routes[0] = (struct http_route){ "/pbx/v1/", pbx_settled, &d->api,
	                                 (size_t)d->cfg->server.max_body, CFG_IF_PBX, false,
	                                 api_pbx_may_hash };
	d->api.max_body = (size_t)d->cfg->server.max_body;
	/* people's requests may take long (a template save re-renders its
	 * devices, an import, a code hashed with Argon2id): each runs on a
	 * thread of its own (own_thread), so the phones that share a worker
	 * thread with one are not kept waiting; so does a PBX call that
	 * checks a code (api_pbx_may_hash) */
	routes[1] = (struct http_route){ "/api/v1/", admin_settled, &d->api,
	                                 (size_t)(d->cfg->server.max_import > d->cfg->server.max_body
	                                          ? d->cfg->server.max_import
	                                          : d->cfg->server.max_body), CFG_IF_ADMIN, true, NULL };
	routes[2] = (struct http_route){ d->api.prefix, api_prov_handle, &d->api,
	                                 (size_t)d->cfg->provisioning.log_max, CFG_IF_PHONES, false, NULL };
	/* Prometheus text; optional bearer token from the environment */
	routes[3] = (struct http_route){ "/metrics", metrics_http_handle,
	                                 getenv("HOTDESKD_METRICS_TOKEN"), 0, CFG_IF_METRICS,
	                                 false, NULL };
	/* the web console and the self-service page (their own session table;
	 * the directory is copied: a reload may free the configuration) */
	d->web.api = &d->api;
	d->web.dir = strdup(d->cfg->web.dir);
	d->web.sessions = session_table_new(d->cfg->web.session_idle, d->cfg->web.session_max);
	if (d->web.dir == NULL || d->web.sessions == NULL) {
		log_error("out of memory");
		return 1;
	}
	d->api.web = &d->web;
	routes[4] = (struct http_route){ "/console/", console_settled, &d->web, 4096,
	                                 CFG_IF_CONSOLE, true, NULL };
	routes[5] = (struct http_route){ "/me/", me_settled, &d->web, 4096, CFG_IF_CONSOLE,
	                                 true, NULL };
	if ((d->health = health_new(d->svc, d->resync, d->cfg->provisioning.tftp_root)) == NULL) {
		log_error("out of memory");
		return 1;
	}
	/* health for load balancers and container runtimes: on every listener */
	routes[6] = (struct http_route){ "/healthz", health_http_handle, d->health, 0,
	                                 CFG_IF_ALL, false, NULL };
	refresh_metrics(d);
	priv_bind_begin();
	rc = start_listeners(d, routes, 7);
	priv_bind_end();
	if (rc != 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("hotdeskd %s ready in %.0f ms", HOTDESKD_VERSION,
	         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	metrics_gauge_set(METRICS_STARTUP_SECONDS, (double)(t1.tv_sec - t0.tv_sec) +
	                                               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	priv_bind_begin(); /* [vc] bind, and its pacing thread's priority */
	rc = start_vc(d, err, sizeof(err));
	priv_bind_end();
	if (rc != 0) {
		log_error("vc: %s", err);
		return 1;
	}
	if (priv_drop(err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	/* the port files last: they tell that every listener is ready */
	if (write_port_files(d) != 0)
		return 1;
	if (sdnotify_send("READY=1") != 0)
		log_warn_errno("cannot notify systemd");
	wd_us = sdnotify_watchdog_usec();

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		struct timespec tick = { 1, 0 };

		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP) {
			(void)sdnotify_send("RELOADING=1");
			reload(d);
			(void)sdnotify_send("READY=1");
		}
		/* the watchdog is fed while this loop and the resync thread run */
		if (wd_us != 0 && metrics_now_ns() - wd_last >= wd_us * 1000 / 2 &&
		    resync_alive(d->resync, 30000)) {
			(void)sdnotify_send("WATCHDOG=1");
			wd_last = metrics_now_ns();
		}
		svc_checkpoint(d->svc);
		if (++ticks % 60 == 0)
			svc_housekeeping(d->svc);
		if (ticks % 5 == 0) {
			refresh_metrics(d);
			(void)svc_locked(d->svc, tftp_relist_locked, d->pub);
		}
	}
	(void)sdnotify_send("STOPPING=1");
	log_info("stopping: finishing in-flight requests");
	stop_listeners(d);
	return 0;
}

/* --backup OUT: an online copy of the configured database (the daemon
 * may be running), mode 0600.  Exit status 0 or 1. */
static int
backup_db(struct hd_config *cfg, const char *out)
{
	char err[512];
	int pages, rc = 0;

	if (store_backup(cfg->database.path, out, &pages, err, sizeof(err)) != 0) {
		fprintf(stderr, "hotdeskd: backup: %s\n", err);
		rc = 1;
	} else {
		printf("%s: backup of %s written (%d pages)\n", out, cfg->database.path, pages);
	}
	cfg_free(cfg);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "backup", required_argument, NULL, 'b' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { 0 };
	const char *path = NULL, *backup = NULL;
	bool check = false;
	char err[512];
	sigset_t set;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:nb:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'b': backup = optarg; break;
		case 'n': check = true; break;
		case 'V': printf("hotdeskd %s\n", HOTDESKD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((d.cfg = cfg_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (preflight(d.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", path, err);
		cfg_free(d.cfg);
		return 1;
	}
	if (check) {
		struct http_tls *t;
		struct mtls *m;

		/* what start-up would load: the TLS certificate and key, the
		 * client CA bundles and CRLs */
		if (tls_load(d.cfg, &t, &m, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: %s\n", path, err);
			mtls_free(m);
			cfg_free(d.cfg);
			return 1;
		}
		http_tls_free(t);
		mtls_free(m);
		printf("%s: configuration OK\n", path);
		cfg_free(d.cfg);
		return 0;
	}
	if (backup != NULL)
		return backup_db(d.cfg, backup);
	/* block the signals before any thread exists: all inherit the mask */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_init("hotdeskd", d.cfg->log.level, d.cfg->log.syslog);
	log_set_access(d.cfg->log.access);
	metrics_set_build(HOTDESKD_VERSION);
	if (priv_init(d.cfg->server.user, err, sizeof(err)) != 0) {
		log_error("%s", err);
		cfg_free(d.cfg);
		return 1;
	}
	if (priv_is_root_without_user())
		log_warn("running as root: set [server] user to an unprivileged account");
	pthread_mutex_init(&d.cfg_lock, NULL);
	lockorder_register(&d.cfg_lock, LOCK_CFG, "cfg");

	rc = run(&d);

	stop_listeners(&d);
	vc_stop(d.vc);
	resync_free(d.resync);
	webhook_stop(d.webhook);
	health_free(d.health);
	if (rc == 0 && d.svc != NULL && d.pub != NULL)
		(void)svc_locked(d.svc, pub_stop_locked, d.pub);
	svc_close(d.svc);
	pub_free(d.pub);
	throttle_free(d.throttle);
	session_table_free(d.web.sessions);
	free((char *)d.web.dir);
	free(d.api.prefix);
	free(d.api.phone_logs);
	cfg_free(d.cfg);
	pthread_mutex_destroy(&d.cfg_lock);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
