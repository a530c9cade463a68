/*
 * publish.c -- rendered configuration in memory and in the TFTP root.
 *
 * Per device: one entry (keyed by id and by MAC) holding one blob per
 * per-device file of its profile, the configuration version, and the hash
 * of all its files.  Shared files (device-independent) are rendered on
 * first request and cached per (profile, file, model); a template change
 * empties that cache.
 *
 * Locks:
 *   lock    (rwlock) the entry maps and the blob pointers in entries;
 *           readers copy a blob pointer and take a reference under rdlock;
 *           the writer swaps pointers under wrlock and drops the old
 *           references after.
 *   fetch_mu  the fetch facts of every entry (written by HTTP threads).
 *   shared_mu the shared-file cache.
 * Rendering itself runs without any of them (the caller is the only
 * writer), so serving never waits for a render.
 *
 * TFTP: every per-device file is written with fs_write_atomic and its name
 * recorded in the store (tftp_files), so start-up can remove the files of
 * deleted devices without touching anything else in the directory.
 * Temporaries are private until renamed (fsutil.h: 0600 in a 0700
 * subdirectory), and pub_new removes those a crash left before anything
 * is published.
 *
 * Versions: a device's content hash is that of its files rendered with the
 * version stamp 0, so a template using {{version}} does not make every
 * re-render (or restart) look like a change; the files published carry the
 * real version.  A dry run (pub_dry_run) compares a candidate template's
 * output with the published blobs, rendered with the same stamp, so it
 * lists exactly the devices pub_update will then find changed.
 */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "errbuf.h"
#include "fsutil.h"
#include "idmap.h"
#include "event.h"
#include "log.h"
#include "slab.h"
#include "store.h"
#include "virt.h"
#include "wipe.h"

#define PUB_MAX_FILES 4
#define SHARED_MAX 256

/* The last fetch of a device, kept compact (a large installation has
 * one per device): the address in binary, no User-Agent (it travels to the
 * store with the fetch event, see api_ctx.on_fetch). */
struct fetch_rec {
	/* atomics: a fetch that repeats what is recorded (every fetch of a
	 * boot storm's retries, of a phone's periodic check) takes no lock */
	_Atomic unsigned long long version;
	_Atomic long long at;   /* 0 = never */
	_Atomic uint64_t who_key; /* who_key() of address and User-Agent, compared without the lock */
	atomic_bool news;       /* the next fetch is news whatever it repeats */
	unsigned char addr[16]; /* under fetch_mu */
	unsigned char family;   /* AF_INET, AF_INET6, 0 = unknown; under fetch_mu */
};

struct pub_dev {
	hd_id id, org;
	char mac[HD_MAC_LEN + 1];
	const struct vendor_profile *profile;
	unsigned long long version;
	char hash[33];                        /* hex of the content hash, "" none */
	struct pub_blob *files[PUB_MAX_FILES]; /* NULL until rendered */
	size_t nfiles;
	struct fetch_rec fetch;               /* under fetch_mu */
	char *prov_password;                  /* digest password (per-device auth) */
};

/* The address of source in binary; family 0 when it is not numeric. */
static unsigned char
fetch_addr(const char *source, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (source == NULL)
		return 0;
	if (inet_pton(AF_INET, source, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, source, addr) == 1)
		return AF_INET6;
	return 0;
}

/* The address of a socket address in binary; family 0 for others. */
static unsigned char
sa_addr(const struct sockaddr *sa, unsigned char addr[16])
{
	memset(addr, 0, 16);
	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

/* A 64-bit key of who fetched: the address and the User-Agent (a phone
 * that changed address or firmware is news). */
static uint64_t
who_key(const unsigned char addr[16], unsigned char family, const char *ua)
{
	uint64_t a, b, h = 1469598103934665603ULL;

	memcpy(&a, addr, 8);
	memcpy(&b, addr + 8, 8);
	for (const char *c = ua ? ua : ""; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	return (a ^ (b * 0x9e3779b97f4a7c15ULL)) + family + h;
}

/* Records a fetch (fetch_mu held). */
static void
fetch_rec_put(struct fetch_rec *f, const unsigned char addr[16], unsigned char family,
              const char *ua, unsigned long long version, long long at)
{
	memcpy(f->addr, addr, 16);
	f->family = family;
	atomic_store(&f->who_key, who_key(addr, family, ua));
	atomic_store(&f->version, version);
	atomic_store(&f->at, at);
}

static void
fetch_rec_set(struct fetch_rec *f, const char *source, const char *ua,
              unsigned long long version, long long at)
{
	unsigned char addr[16], family = fetch_addr(source, addr);

	fetch_rec_put(f, addr, family, ua, version, at);
}

static void
fetch_rec_get(const struct fetch_rec *f, struct pub_fetch *out)
{
	out->version = atomic_load(&f->version);
	out->at = atomic_load(&f->at);
	out->source[0] = '\0';
	out->user_agent[0] = '\0';
	if (f->family != 0)
		(void)inet_ntop(f->family, f->addr, out->source, sizeof(out->source));
}

/* The TFTP name of per-device file i of a device (derived from its MAC:
 * per-device patterns name the device by MAC only).  0 or -1. */
static int
dev_file_name(const struct vendor_profile *prof, size_t i, const char *mac, char *buf,
              size_t len)
{
	return i < prof->n_device_files ? vendor_file_name(&prof->device_files[i], mac, NULL, buf, len)
	                                : -1;
}

/* Download access settings of one organization, as last rendered. */
struct pub_access {
	enum hd_prov_auth auth;
	enum hd_prov_cert client_cert;
	char *user, *password, *nets_src;
	struct cfg_netlist nets;
};

struct shared_entry {
	const struct vendor_profile *profile;
	size_t index;
	char model[33];
	struct pub_blob *blob;
};

/*
 * Batched TFTP writes.  Publishing many devices in one call (start-up, a
 * template change) writes each file under a temporary name, makes all of
 * them durable with one syncfs(), renames them into place and syncs the
 * directory once: the guarantee of fs_write_atomic (content durable before
 * the rename; a reader never sees a partial or mixed file) at two syncs per
 * batch instead of two fsyncs and three opens per file.  A batch is begun
 * and flushed by the writer within one pub_* call, so I5 holds again when
 * that call returns.
 */
struct tftp_item {
	char *name, *tmp;
};

struct tftp_batch {
	bool on;
	struct tftp_item *v;
	size_t n, cap;
};

#define PUB_BATCH_MIN 8 /* pub_update batches from this many devices on */

struct pub {
	pthread_rwlock_t lock;
	struct idmap by_id;   /* hd_id -> pub_dev */
	struct idmap by_mac;  /* 48-bit MAC -> pub_dev */
	struct idmap access;  /* org id -> pub_access */
	pthread_mutex_t fetch_mu;
	pthread_mutex_t shared_mu;
	struct shared_entry shared[SHARED_MAX];
	size_t nshared;
	struct vendor_templates *tmpl;
	char *tftp_root;
	struct tftp_batch batch; /* writer only: files waiting for one sync */
	char *tmpl_dir, *static_dir; /* where the defaults were loaded from */
};

static long long
now_s(void)
{
	return (long long)time(NULL);
}

static int64_t
mac_key(const char *mac)
{
	return (int64_t)strtoull(mac, NULL, 16);
}

/* ---- blobs -------------------------------------------------------------- */

static struct pub_blob *
blob_new(const char *data, size_t len, unsigned long long version)
{
	struct pub_blob *b = slab_alloc(sizeof(*b) + len + 1);
	unsigned char h[16];
	char hex[33];

	if (b == NULL)
		return NULL;
	atomic_init(&b->refs, 1);
	b->version = version;
	b->len = len;
	memcpy(b->data, data, len);
	b->data[len] = '\0';
	crypto_generichash(h, sizeof(h), (const unsigned char *)data, len, NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(b->etag, sizeof(b->etag), "\"%s\"", hex);
	return b;
}

void
pub_release(struct pub_blob *b)
{
	if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) {
		sodium_memzero(b->data, b->len); /* may hold SIP passwords */
		slab_free(b, sizeof(*b) + b->len + 1);
	}
}

static struct pub_blob *
blob_ref(struct pub_blob *b)
{
	if (b != NULL)
		atomic_fetch_add(&b->refs, 1);
	return b;
}

/* ---- life cycle --------------------------------------------------------- */

struct pub *
pub_new(const struct pub_opts *o, char *err, size_t errlen)
{
	struct pub *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&p->lock, NULL);
	pthread_mutex_init(&p->fetch_mu, NULL);
	pthread_mutex_init(&p->shared_mu, NULL);
	if (vendor_templates_load(o->templates, o->static_dir, &p->tmpl, err, errlen) != 0)
		goto fail;
	if ((p->tmpl_dir = strdup(o->templates)) == NULL ||
	    (p->static_dir = strdup(o->static_dir)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (o->tftp_root != NULL && o->tftp_root[0] != '\0') {
		size_t swept = 0;
		char serr[256];

		if (fs_mkdir(o->tftp_root, err, errlen) != 0 ||
		    (p->tftp_root = strdup(o->tftp_root)) == NULL)
			goto fail;
		/* temporaries of a crash may hold SIP passwords: gone first */
		if (fs_sweep_temporaries(o->tftp_root, &swept, serr, sizeof(serr)) != 0)
			log_error("tftp: removing stale temporaries: %s", serr);
		if (swept > 0)
			log_info("tftp: removed %zu temporaries left by an interrupted run", swept);
	}
	return p;
fail:
	pub_free(p);
	return NULL;
}

static int
dev_free(void *v, void *arg)
{
	struct pub_dev *d = v;

	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		pub_release(d->files[i]);
	wipe_free(d->prov_password);
	free(d);
	return 0;
}

static int
access_free(void *v, void *arg)
{
	struct pub_access *a = v;

	free(a->user);
	wipe_free(a->password);
	free(a->nets_src);
	cfg_netlist_free(&a->nets);
	free(a);
	return 0;
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Brings the access settings of org o up to date (writer, under wrlock). */
static void
access_refresh(struct pub *p, const struct hd_org *o)
{
	struct pub_access *a = idmap_get(&p->access, o->id), *n;
	char msg[128];

	if (a != NULL && a->auth == o->prov.auth && a->client_cert == o->prov.client_cert &&
	    str_eq(a->user, o->prov.user) &&
	    str_eq(a->password, o->prov.password) && str_eq(a->nets_src, o->prov.networks))
		return;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return;
	n->auth = o->prov.auth;
	n->client_cert = o->prov.client_cert;
	n->user = dup_or_null(o->prov.user);
	n->password = dup_or_null(o->prov.password);
	n->nets_src = dup_or_null(o->prov.networks);
	if (o->prov.networks != NULL &&
	    cfg_netlist_parse(o->prov.networks, &n->nets, msg, sizeof(msg)) != 0) {
		/* validated by the API; an unparsable list allows nothing */
		log_error("organization %s: download networks: %s", o->name, msg);
		n->nets.n = 0;
		n->auth = HD_PROV_DEVICE; /* and no device password: refuse */
	}
	if (idmap_put(&p->access, o->id, n) != 0) {
		access_free(n, NULL);
		return;
	}
	if (a != NULL)
		access_free(a, NULL);
}

static void
shared_flush(struct pub *p)
{
	pthread_mutex_lock(&p->shared_mu);
	for (size_t i = 0; i < p->nshared; i++)
		pub_release(p->shared[i].blob);
	p->nshared = 0;
	pthread_mutex_unlock(&p->shared_mu);
}

void
pub_free(struct pub *p)
{
	if (p == NULL)
		return;
	idmap_each(&p->by_id, dev_free, NULL);
	idmap_free(&p->by_id);
	idmap_each(&p->access, access_free, NULL);
	idmap_free(&p->access);
	idmap_free(&p->by_mac);
	shared_flush(p);
	vendor_templates_free(p->tmpl);
	free(p->tftp_root);
	free(p->tmpl_dir);
	free(p->static_dir);
	pthread_rwlock_destroy(&p->lock);
	pthread_mutex_destroy(&p->fetch_mu);
	pthread_mutex_destroy(&p->shared_mu);
	free(p);
}

const struct vendor_templates *
pub_templates(const struct pub *p)
{
	return p->tmpl;
}

int
pub_template_set(struct pub *p, const struct vendor_profile *prof, const char *name,
                 const char *src, size_t len, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&p->shared_mu);
	rc = vendor_templates_set(p->tmpl, prof, name, src, len, err, errlen);
	pthread_mutex_unlock(&p->shared_mu);
	if (rc == 0)
		shared_flush(p);
	return rc;
}

/* ---- rendering ---------------------------------------------------------- */

/* What a parked phone (with or without a parking account) shows. */
#define PUB_PARKED_LABEL "Dial *30 to log in"
/* Site settings an organization has not set. */
#define PUB_DEFAULT_LANGUAGE "en_US"
#define PUB_DEFAULT_NTP "pool.ntp.org"

/* The render input of a device, from the world (strings borrowed from it).
 * A parked phone without a parking account still gets the parked label and
 * its organization's registrar, so every family can render a valid, empty
 * line (Cisco enterprise needs one). */
static void
pub_render_input(const struct world *w, const struct hd_dev *d, struct render_input *in)
{
	struct virt_carried c = virt_carried(w, d);
	const struct hd_org *o = world_org(w, d->org);
	static const struct hd_sip_server none;
	const struct hd_sip_server *os = o ? &o->sip : &none, *es = &none;

	memset(in, 0, sizeof(*in));
	in->mac = d->mac;
	in->model = d->model;
	in->org = o ? o->name : NULL;
	/* site settings: every phone of the organization, parked or not */
	in->language = o && o->site.language ? o->site.language : PUB_DEFAULT_LANGUAGE;
	in->site.ntp_server = o && o->site.ntp_server ? o->site.ntp_server : PUB_DEFAULT_NTP;
	in->site.utc_offset = o ? o->site.utc_offset : 0;
	in->site.dst = !o ? 0 : o->site.dst == HD_DST_EU ? 1 : o->site.dst == HD_DST_US ? 2 : 0;
	if (c.kind == VIRT_CARRY_EXT) {
		const struct hd_ext *e = c.ext;

		es = &e->sip;
		in->line_enabled = true;
		in->line.sip_user = e->sip_user;
		in->line.auth_name = e->sip_user;
		in->line.password = e->sip_password;
		in->line.display_name = e->display_name ? e->display_name : e->number;
		in->line.label = e->label ? e->label : e->number;
		/* the user's settings travel with the extension */
		in->line.voicemail = e->voicemail;
		if (e->language != NULL)
			in->language = e->language;
		for (size_t i = 0; i < e->nkeys && i < RENDER_MAX_KEYS; i++) {
			in->keys[i].blf = e->keys[i].type == HD_KEY_BLF;
			in->keys[i].value = e->keys[i].value;
			in->keys[i].label = e->keys[i].label;
			in->nkeys = i + 1;
		}
	} else {
		in->parked = true;
		in->line.label = PUB_PARKED_LABEL;
		if (d->parking_user != NULL) {
			in->parking = true;
			in->line_enabled = true;
			in->line.sip_user = d->parking_user;
			in->line.auth_name = d->parking_user;
			in->line.password = d->parking_password;
			in->line.display_name = "Away";
		}
	}
	in->line.registrar_host = es->host ? es->host : os->host;
	in->line.registrar_port = es->port ? es->port : os->port;
	in->line.transport = es->transport ? es->transport : os->transport;
}

/* What a preview shows instead of line.password. */
#define PUB_REDACTED "********"

/* Renders every per-device file of d into bufs (caller frees them).
 * redact: line.password rendered as PUB_REDACTED (previews only). */
static int
render_files2(const struct vendor_templates *t, const struct world *w, const struct hd_dev *d,
              const struct vendor_profile *prof, unsigned long long version, bool redact,
              bool check, struct render_buf bufs[PUB_MAX_FILES], char *err, size_t errlen)
{
	struct render_input in;

	pub_render_input(w, d, &in);
	in.version = version;
	if (redact && in.line.password != NULL && in.line.password[0] != '\0')
		in.line.password = PUB_REDACTED;
	for (size_t i = 0; i < prof->n_device_files && i < PUB_MAX_FILES; i++)
		if ((check ? vendor_render_device : vendor_render_device_unchecked)(
		        prof, t, i, &in, &bufs[i], err, errlen) != 0)
			return -1;
	return 0;
}

static int
render_files(const struct vendor_templates *t, const struct world *w, const struct hd_dev *d,
             const struct vendor_profile *prof, unsigned long long version, bool redact,
             struct render_buf bufs[PUB_MAX_FILES], char *err, size_t errlen)
{
	return render_files2(t, w, d, prof, version, redact, true, bufs, err, errlen);
}

/* Whether dir/name is a regular file of len bytes (start-up: a file whose
 * content hash is unchanged since it was written needs no rewrite). */
static bool
tftp_present(const struct pub *p, const char *name, size_t len)
{
	char path[4096];
	struct stat sb;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", p->tftp_root, name) >= sizeof(path))
		return false;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size == len &&
	       (sb.st_mode & 0777) == 0644;
}

static void
files_hash(struct render_buf bufs[PUB_MAX_FILES], size_t n, char hex[33])
{
	crypto_generichash_state st;
	unsigned char h[16];

	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	for (size_t i = 0; i < n; i++) {
		unsigned char len[8];
		uint64_t l = bufs[i].len;

		for (int k = 0; k < 8; k++)
			len[k] = (unsigned char)(l >> (8 * k));
		crypto_generichash_update(&st, len, sizeof(len));
		crypto_generichash_update(&st, (const unsigned char *)bufs[i].p, bufs[i].len);
	}
	crypto_generichash_final(&st, h, sizeof(h));
	sodium_bin2hex(hex, 33, h, sizeof(h));
}

static void
render_failed(struct store *st, const struct hd_dev *d, const char *err)
{
	char safe[300];

	log_warn("device %s: render failed, keeping the last good files: %s", d->mac,
	         log_sanitize(err, safe, sizeof(safe)));
	/* the message names a template position or variable, never a value:
	 * the event says only that it happened */
	if (st != NULL)
		(void)event_add(st, now_s(), "render.failed", d->org, NULL, d->mac,
		                json_pack("{s:s}", "error", "render failed"));
}

/* Writes a temporary file for the batch; 0, or -1 (then write it directly). */
static int
batch_add(struct pub *p, const char *name, const struct render_buf *b)
{
	struct tftp_batch *tb = &p->batch;
	const char *d = b->p;
	size_t left = b->len;
	char tmp[4096], err[256];
	int fd;

	if (tb->n == tb->cap) {
		size_t nc = tb->cap ? tb->cap * 2 : 256;
		struct tftp_item *v = realloc(tb->v, nc * sizeof(*v));

		if (v == NULL)
			return -1;
		tb->v = v;
		tb->cap = nc;
	}
	/* 0600 in the private directory until batch_flush renames it */
	if ((fd = fs_tmp_create(p->tftp_root, name, tmp, sizeof(tmp), err, sizeof(err))) == -1)
		return -1;
	while (left > 0) {
		ssize_t n = write(fd, d, left);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		d += n;
		left -= (size_t)n;
	}
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	if ((tb->v[tb->n].name = strdup(name)) == NULL ||
	    (tb->v[tb->n].tmp = strdup(tmp)) == NULL) {
		free(tb->v[tb->n].name);
		unlink(tmp);
		return -1;
	}
	tb->n++;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

static void
batch_begin(struct pub *p)
{
	p->batch.on = p->tftp_root != NULL;
}

/* Syncs, renames into place and records every file of the batch; ends it. */
static void
batch_flush(struct pub *p, struct store *st)
{
	struct tftp_batch *tb = &p->batch;
	int dfd;

	tb->on = false;
	if (tb->n == 0)
		return;
	dfd = open(p->tftp_root, O_RDONLY | O_DIRECTORY);
	if (dfd == -1 || syncfs(dfd) == -1) {
		/* no syncfs: the slow way, one fsync per file */
		for (size_t i = 0; i < tb->n; i++) {
			int fd = open(tb->v[i].tmp, O_RDONLY);

			if (fd != -1) {
				(void)fsync(fd);
				close(fd);
			}
		}
	}
	for (size_t i = 0; i < tb->n; i++) {
		char err[256];

		if (fs_tmp_commit(tb->v[i].tmp, p->tftp_root, tb->v[i].name, err, sizeof(err)) != 0) {
			log_error("tftp: %s", err);
			unlink(tb->v[i].tmp);
		} else if (st != NULL && store_tftp_add(st, tb->v[i].name) != 0) {
			log_error("tftp: cannot record %s: %s", tb->v[i].name, store_errmsg(st));
		}
		free(tb->v[i].name);
		free(tb->v[i].tmp);
	}
	if (dfd != -1) {
		(void)fsync(dfd); /* the renames themselves */
		close(dfd);
	}
	free(tb->v);
	memset(tb, 0, sizeof(*tb));
}

/*
 * Writes one TFTP file unless it already holds b.  compare: read the file
 * and skip the write when equal (start-up); false when the caller knows the
 * content differs.  Batched while a batch is on.
 */
static void
tftp_write2(struct pub *p, struct store *st, const char *name, const struct render_buf *b,
            bool compare)
{
	char err[256];
	size_t oldlen;
	char *old = NULL;

	if (p->tftp_root == NULL)
		return;
	/* unchanged content is not rewritten (start-up reconciles thousands) */
	if (compare)
		old = fs_read_file(p->tftp_root, name, b->len, &oldlen);
	if (old != NULL && oldlen == b->len && memcmp(old, b->p, b->len) == 0) {
		sodium_memzero(old, oldlen);
		free(old);
		return;
	}
	if (old != NULL) {
		sodium_memzero(old, oldlen);
		free(old);
	}
	if (p->batch.on && batch_add(p, name, b) == 0)
		return;
	if (fs_write_atomic(p->tftp_root, name, b->p, b->len, err, sizeof(err)) != 0) {
		log_error("tftp: %s", err);
		return;
	}
	if (st != NULL && store_tftp_add(st, name) != 0)
		log_error("tftp: cannot record %s: %s", name, store_errmsg(st));
}

static void
tftp_write(struct pub *p, struct store *st, const char *name, const struct render_buf *b)
{
	tftp_write2(p, st, name, b, true);
}

static void
tftp_remove(struct pub *p, struct store *st, const char *name)
{
	char err[256];

	if (p->tftp_root == NULL || name[0] == '\0')
		return;
	if (fs_unlink(p->tftp_root, name, err, sizeof(err)) != 0)
		log_error("tftp: %s", err);
	if (st != NULL)
		(void)store_tftp_del(st, name);
}

/*
 * Renders device d; publishes when the content differs from what e holds.
 * e is the existing entry or NULL.  known_hash/known_version: what the
 * store says was last published (start-up), or NULL.  Returns 1 changed,
 * 0 unchanged, -1 failed (last good kept).
 */
static int
publish_dev(struct pub *p, const struct world *w, struct store *st, const struct hd_dev *d,
            const char *known_hash, unsigned long long known_version)
{
	const struct vendor_profile *prof = vendor_profile_by_name(d->profile);
	struct render_buf bufs[PUB_MAX_FILES] = { { 0 } };
	struct pub_blob *nb[PUB_MAX_FILES] = { 0 }, *old[PUB_MAX_FILES] = { 0 };
	struct pub_dev *e, *fresh = NULL;
	char err[256], hash[33];
	unsigned long long version;
	const struct vendor_profile *old_prof = NULL;
	bool same;
	size_t n;
	int rc = -1;

	if (prof == NULL) {
		render_failed(st, d, "unknown vendor profile");
		return -1;
	}
	n = prof->n_device_files < PUB_MAX_FILES ? prof->n_device_files : PUB_MAX_FILES;
	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_id, d->id);
	version = e ? e->version : known_version;
	pthread_rwlock_unlock(&p->lock);
	/* the version stamp ({{version}}) must not make every render
	 * "different": the content hash is that of a render with the fixed
	 * stamp 0; the files published carry the real version (below).
	 * Unchecked: content seen before was checked when it was published;
	 * new content is checked below before it can be published. */
	if (render_files2(p->tmpl, w, d, prof, 0, false, false, bufs, err, sizeof(err)) != 0) {
		render_failed(st, d, err);
		goto out;
	}
	files_hash(bufs, n, hash);
	same = e != NULL ? strcmp(e->hash, hash) == 0 && e->profile == prof
	                 : (known_hash != NULL && strcmp(known_hash, hash) == 0);
	if (!same) {
		for (size_t i = 0; i < n; i++) {
			if (vendor_check_device_output(prof, i, bufs[i].p, bufs[i].len, err,
			                               sizeof(err)) != 0) {
				render_failed(st, d, err);
				goto out;
			}
		}
	}
	if (same) {
		if (e != NULL) {
			/* same files; the download settings may still have changed */
			pthread_rwlock_wrlock(&p->lock);
			if (!str_eq(e->prov_password, d->prov_password)) {
				wipe_free(e->prov_password);
				e->prov_password = dup_or_null(d->prov_password);
			}
			if (world_org(w, d->org) != NULL)
				access_refresh(p, world_org(w, d->org));
			pthread_rwlock_unlock(&p->lock);
			rc = 0;
			goto out;
		}
		/* start-up, unchanged since last run: keep the version */
	} else {
		version++;
	}
	/* the files themselves carry the version they are published as (a
	 * number in place of a number: still well-formed) */
	if (version != 0 && vendor_device_uses(prof, p->tmpl, RV_VERSION)) {
		for (size_t i = 0; i < n; i++)
			render_buf_reset(&bufs[i]);
		if (render_files2(p->tmpl, w, d, prof, version, false, false, bufs, err,
		                  sizeof(err)) != 0) {
			render_failed(st, d, err);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++)
		if ((nb[i] = blob_new(bufs[i].p, bufs[i].len, version)) == NULL)
			goto out;
	if (e == NULL && (fresh = calloc(1, sizeof(*fresh))) == NULL)
		goto out;

	pthread_rwlock_wrlock(&p->lock);
	old_prof = e != NULL ? e->profile : NULL;
	if (fresh != NULL) {
		e = fresh;
		e->id = d->id;
		memcpy(e->mac, d->mac, sizeof(e->mac));
		if (idmap_put(&p->by_id, d->id, e) != 0 || idmap_put(&p->by_mac, mac_key(d->mac), e) != 0) {
			idmap_del(&p->by_id, d->id);
			pthread_rwlock_unlock(&p->lock);
			goto out;
		}
		fresh = NULL;
	}
	e->org = d->org;
	e->profile = prof;
	e->version = version;
	if (!str_eq(e->prov_password, d->prov_password)) {
		wipe_free(e->prov_password);
		e->prov_password = dup_or_null(d->prov_password);
	}
	if (world_org(w, d->org) != NULL)
		access_refresh(p, world_org(w, d->org));
	memcpy(e->hash, hash, sizeof(e->hash));
	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		old[i] = e->files[i];
		e->files[i] = i < n ? nb[i] : NULL;
		nb[i] = NULL;
	}
	e->nfiles = n;
	pthread_rwlock_unlock(&p->lock);

	/* another family names its files otherwise: remove the old names */
	for (size_t i = 0; old_prof != NULL && old_prof != prof && i < old_prof->n_device_files; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (dev_file_name(old_prof, i, d->mac, name, sizeof(name)) == 0)
			tftp_remove(p, st, name);
	}
	for (size_t i = 0; i < n; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (dev_file_name(prof, i, d->mac, name, sizeof(name)) != 0)
			continue;
		/* start-up with the content of the last run: the file is there
		 * unless someone removed or truncated it */
		if (same && old[i] == NULL && p->tftp_root != NULL &&
		    tftp_present(p, name, bufs[i].len))
			continue;
		/* a device already published: its file holds the old blob, so a
		 * file whose blob changed is written without reading it back */
		tftp_write2(p, st, name, &bufs[i],
		            old[i] == NULL || (old[i]->len == bufs[i].len &&
		                               memcmp(old[i]->data, bufs[i].p, bufs[i].len) == 0));
	}
	if (st != NULL && store_devcfg_put(st, d->id, version, hash, now_s()) != 0)
		log_error("device %s: cannot record version %llu: %s", d->mac, version,
		          store_errmsg(st));
	rc = 1;
out:
	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		pub_release(old[i]);
		pub_release(nb[i]);
		render_buf_free(&bufs[i]);
	}
	free(fresh);
	return rc;
}

static void
unpublish(struct pub *p, struct store *st, hd_id id)
{
	struct pub_dev *e;

	pthread_rwlock_wrlock(&p->lock);
	if ((e = idmap_get(&p->by_id, id)) != NULL) {
		idmap_del(&p->by_id, id);
		idmap_del(&p->by_mac, mac_key(e->mac));
	}
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL)
		return;
	for (size_t i = 0; e->profile != NULL && i < e->profile->n_device_files; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (dev_file_name(e->profile, i, e->mac, name, sizeof(name)) == 0)
			tftp_remove(p, st, name);
	}
	dev_free(e, NULL);
}


/* After publishing thousands of devices: old blobs and render buffers
 * were freed in a scattered order; hand the free pages back to the system
 * so resident memory stays what the published files need. */
static void
give_back_memory(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

int
pub_update(struct pub *p, const struct world *w, struct store *st, const hd_id *ids, size_t n,
           struct hd_idset *changed)
{
	/* many devices at once: batch the TFTP writes (the store's rows go in
	 * the caller's transaction, the service's) */
	bool bulk = n >= PUB_BATCH_MIN;
	int rc = 0;

	if (bulk)
		batch_begin(p);

	for (size_t i = 0; i < n; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);

		if (d == NULL) {
			unpublish(p, st, ids[i]);
			continue;
		}
		/* ids are distinct within one call: push, no search */
		if (publish_dev(p, w, st, d, NULL, 0) == 1 && changed != NULL &&
		    hd_idset_push(changed, d->id) != 0) {
			rc = -1;
			break;
		}
	}
	if (bulk)
		batch_flush(p, st);
	if (n >= 1024)
		give_back_memory();
	return rc;
}

/* ---- start-up ----------------------------------------------------------- */

struct known {
	hd_id dev;
	unsigned long long version;
	char hash[33];
};

struct recon {
	struct pub *p;
	const struct world *w;
	struct store *st;
	struct idmap known; /* dev -> struct known */
	char **stale;       /* tftp names to check */
	size_t nstale, capstale;
	int rc;
};

static int
recon_known(hd_id dev, unsigned long long version, const char *hash, void *arg)
{
	struct recon *r = arg;
	struct known *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return -1;
	k->dev = dev;
	k->version = version;
	snprintf(k->hash, sizeof(k->hash), "%s", hash);
	if (idmap_put(&r->known, dev, k) != 0) {
		free(k);
		return -1;
	}
	return 0;
}

static int
recon_dev(struct hd_dev *d, void *arg)
{
	struct recon *r = arg;
	struct known *k = idmap_get(&r->known, d->id);

	(void)publish_dev(r->p, r->w, r->st, d, k ? k->hash : NULL, k ? k->version : 0);
	return 0;
}

static int
recon_fetch(hd_id dev, const char *source, const char *ua, unsigned long long version,
            long long at, void *arg)
{
	struct recon *r = arg;
	struct pub_dev *e = idmap_get(&r->p->by_id, dev);

	if (e != NULL)
		fetch_rec_set(&e->fetch, source, ua, version, at);
	return 0;
}

static int
recon_name(const char *name, void *arg)
{
	struct recon *r = arg;

	if (r->nstale == r->capstale) {
		size_t nc = r->capstale ? r->capstale * 2 : 64;
		char **v = realloc(r->stale, nc * sizeof(*v));

		if (v == NULL)
			return -1;
		r->stale = v;
		r->capstale = nc;
	}
	if ((r->stale[r->nstale] = strdup(name)) == NULL)
		return -1;
	r->nstale++;
	return 0;
}

static int
free_known(void *v, void *arg)
{
	free(v);
	return 0;
}

/* Whether some device entry owns TFTP file `name`. */
static bool
name_owned(struct pub *p, const char *name)
{
	struct vendor_file_match m;
	struct pub_dev *e;

	if (vendor_match_file(name, &m) != 1 || m.kind != VENDOR_DEVICE)
		return false;
	if ((e = idmap_get(&p->by_mac, mac_key(m.mac))) == NULL)
		return false;
	for (size_t i = 0; i < e->nfiles; i++) {
		char own[VENDOR_NAME_MAX + 1];

		if (dev_file_name(e->profile, i, e->mac, own, sizeof(own)) == 0 &&
		    strcmp(own, name) == 0)
			return true;
	}
	return false;
}

/* Writes one shared file (model: NULL or a model part) to the TFTP root. */
static void
tftp_shared_one(struct pub *p, struct store *st, const struct vendor_profile *prof, size_t i,
                const char *model)
{
	struct render_buf b = { 0 };
	char name[VENDOR_NAME_MAX + 1], err[256];

	if (vendor_file_name(&prof->shared_files[i], NULL, model, name, sizeof(name)) != 0)
		return; /* needs a model: served over HTTP on request */
	if (vendor_render_shared(prof, p->tmpl, i, model, &b, err, sizeof(err)) == 0)
		tftp_write(p, st, name, &b);
	else
		log_error("%s/%s: %s", prof->name, name, err);
	render_buf_free(&b);
}

/* Writes the shared files to the TFTP root: those that need no model, and
 * those of a {model}/{code} pattern for each model the profile lists. */
static void
tftp_shared(struct pub *p, struct store *st)
{
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *prof = vendor_registry[k];

		for (size_t i = 0; i < prof->n_shared_files; i++) {
			const char *const *m = prof->shared_files[i].tftp_models;

			tftp_shared_one(p, st, prof, i, NULL);
			for (; m != NULL && *m != NULL; m++)
				tftp_shared_one(p, st, prof, i, *m);
		}
	}
}

void
pub_shared_refresh(struct pub *p, struct store *st)
{
	tftp_shared(p, st);
}

int
pub_reconcile(struct pub *p, const struct world *w, struct store *st, char *err, size_t errlen)
{
	struct recon r = { .p = p, .w = w, .st = st };
	int rc = -1;

	if (store_devcfg_each(st, recon_known, &r) != 0) {
		hd_seterr(err, errlen, "cannot read published versions: %s", store_errmsg(st));
		goto out;
	}
	batch_begin(p);
	world_each_dev(w, recon_dev, &r);
	batch_flush(p, st);
	if (p->tftp_root != NULL) {
		tftp_shared(p, st);
		/* files of devices that no longer exist */
		if (store_tftp_each(st, recon_name, &r) != 0) {
			hd_seterr(err, errlen, "cannot read the TFTP manifest: %s", store_errmsg(st));
			goto out;
		}
		for (size_t i = 0; i < r.nstale; i++) {
			struct vendor_file_match m;

			if (vendor_match_file(r.stale[i], &m) == 1 && m.kind == VENDOR_SHARED)
				continue;
			if (!name_owned(p, r.stale[i]))
				tftp_remove(p, st, r.stale[i]);
		}
	}
	(void)store_fetch_each(st, recon_fetch, &r);
	rc = 0;
out:
	idmap_each(&r.known, free_known, NULL);
	idmap_free(&r.known);
	for (size_t i = 0; i < r.nstale; i++)
		free(r.stale[i]);
	free(r.stale);
	return rc;
}

/* ---- serving ------------------------------------------------------------ */

static struct pub_blob *
shared_get(struct pub *p, const struct vendor_file_match *m)
{
	struct render_buf b = { 0 };
	struct pub_blob *blob = NULL;
	char err[256];

	pthread_mutex_lock(&p->shared_mu);
	for (size_t i = 0; i < p->nshared; i++) {
		struct shared_entry *s = &p->shared[i];

		if (s->profile == m->profile && s->index == m->file_index &&
		    strcasecmp(s->model, m->model) == 0) {
			blob = blob_ref(s->blob);
			goto out;
		}
	}
	if (vendor_render_shared(m->profile, p->tmpl, m->file_index, m->model[0] ? m->model : NULL,
	                         &b, err, sizeof(err)) != 0) {
		log_warn("shared file of %s: %s", m->profile->name, err);
		goto out;
	}
	if ((blob = blob_new(b.p, b.len, 0)) == NULL)
		goto out;
	if (p->nshared < SHARED_MAX) {
		struct shared_entry *s = &p->shared[p->nshared++];

		s->profile = m->profile;
		s->index = m->file_index;
		snprintf(s->model, sizeof(s->model), "%s", m->model);
		s->blob = blob_ref(blob);
	}
out:
	pthread_mutex_unlock(&p->shared_mu);
	render_buf_free(&b);
	return blob;
}

/* Fills ref with a reference to file i of entry e, if published (lock
 * held by the caller). */
static void
ref_file(struct pub_ref *ref, const struct pub_dev *e, size_t i)
{
	if (i >= e->nfiles || e->files[i] == NULL)
		return;
	ref->blob = blob_ref(e->files[i]);
	ref->per_device = true;
	ref->dev = e->id;
	ref->org = e->org;
	memcpy(ref->mac, e->mac, sizeof(ref->mac));
}

int
pub_get(struct pub *p, const char *name, struct pub_ref *ref)
{
	struct vendor_file_match m;
	struct pub_dev *e;
	int rc;

	memset(ref, 0, sizeof(*ref));
	if ((rc = vendor_match_file(name, &m)) != 1)
		return rc;
	if (m.kind == VENDOR_SHARED) {
		ref->blob = shared_get(p, &m);
		return ref->blob != NULL;
	}
	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_mac, mac_key(m.mac));
	if (e != NULL && e->profile != m.profile) {
		/* the same name in another family (e.g. <mac>.cfg): ask the
		 * device's own profile */
		if (vendor_profile_match_file(e->profile, name, &m) != 1 || m.kind != VENDOR_DEVICE)
			e = NULL;
	}
	if (e != NULL)
		ref_file(ref, e, m.file_index);
	pthread_rwlock_unlock(&p->lock);
	return ref->blob != NULL;
}

bool
pub_fetched(struct pub *p, hd_id dev, const struct sockaddr *peer, const char *user_agent,
            unsigned long long version, long long now)
{
	struct pub_dev *e;
	unsigned char addr[16], family = sa_addr(peer, addr);
	bool news = false;

	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL) {
		if (atomic_load(&e->fetch.version) == version &&
		    atomic_load(&e->fetch.who_key) == who_key(addr, family, user_agent) &&
		    !atomic_exchange(&e->fetch.news, false)) {
			/* a repeat: no lock */
			atomic_store(&e->fetch.at, now);
		} else {
			pthread_mutex_lock(&p->fetch_mu);
			fetch_rec_put(&e->fetch, addr, family, user_agent, version, now);
			pthread_mutex_unlock(&p->fetch_mu);
			atomic_store(&e->fetch.news, false);
			news = true;
		}
	}
	pthread_rwlock_unlock(&p->lock);
	return news;
}

void
pub_fetch_forget(struct pub *p, hd_id dev)
{
	struct pub_dev *e;

	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL)
		atomic_store(&e->fetch.news, true);
	pthread_rwlock_unlock(&p->lock);
}

int
pub_fetch_info(struct pub *p, hd_id dev, struct pub_fetch *out)
{
	struct pub_dev *e;

	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL) {
		pthread_mutex_lock(&p->fetch_mu);
		fetch_rec_get(&e->fetch, out);
		pthread_mutex_unlock(&p->fetch_mu);
	}
	pthread_rwlock_unlock(&p->lock);
	return e != NULL;
}

unsigned long long
pub_version(struct pub *p, hd_id dev)
{
	struct pub_dev *e;
	unsigned long long v = 0;

	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL)
		v = e->version;
	pthread_rwlock_unlock(&p->lock);
	return v;
}

int
pub_check(struct pub *p, const struct world *w, const hd_id *ids, size_t n, char *err,
          size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);
		const struct vendor_profile *prof = d ? vendor_profile_by_name(d->profile) : NULL;
		struct render_buf bufs[PUB_MAX_FILES] = { { 0 } };
		char e[256];
		int rc;

		if (d == NULL) /* a device being deleted: it gets no files */
			continue;
		if (prof == NULL) {
			hd_seterr(err, errlen, "device %s: unknown vendor profile", d->mac);
			return -1;
		}
		rc = render_files(p->tmpl, w, d, prof, pub_version(p, d->id) + 1, false, bufs, e,
		                  sizeof(e));
		for (size_t k = 0; k < PUB_MAX_FILES; k++)
			render_buf_free(&bufs[k]);
		if (rc != 0) {
			hd_seterr(err, errlen, "the configuration of device %s would not render: %s",
			          d->mac, e);
			return -1;
		}
	}
	return 0;
}

int
pub_preview(struct pub *p, const struct world *w, const struct hd_dev *d, bool redact,
            pub_preview_cb cb, void *arg, char *err, size_t errlen)
{
	const struct vendor_profile *prof = vendor_profile_by_name(d->profile);
	struct render_buf bufs[PUB_MAX_FILES] = { { 0 } };
	struct render_buf sb = { 0 };
	int rc = -1;

	if (prof == NULL) {
		hd_seterr(err, errlen, "unknown vendor profile");
		return -1;
	}
	if (render_files(p->tmpl, w, d, prof, pub_version(p, d->id), redact, bufs, err,
	                 errlen) != 0)
		goto out;
	for (size_t i = 0; i < prof->n_device_files && i < PUB_MAX_FILES; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (vendor_file_name(&prof->device_files[i], d->mac, d->model, name, sizeof(name)) != 0)
			continue;
		if (cb(name, bufs[i].p, bufs[i].len, false, arg) != 0) {
			hd_seterr(err, errlen, "%s: cannot be shown", name);
			goto out;
		}
	}
	/* the shared files whose name needs no model (those the phone's name
	 * for depends on its firmware are left out) */
	for (size_t i = 0; i < prof->n_shared_files; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (vendor_file_name(&prof->shared_files[i], NULL, NULL, name, sizeof(name)) != 0)
			continue;
		render_buf_reset(&sb);
		if (vendor_render_shared(prof, p->tmpl, i, NULL, &sb, err, errlen) != 0)
			goto out;
		if (cb(name, sb.p, sb.len, true, arg) != 0) {
			hd_seterr(err, errlen, "%s: cannot be shown", name);
			goto out;
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		render_buf_free(&bufs[i]);
	render_buf_free(&sb);
	return rc;
}

/* ---- template changes --------------------------------------------------- */

int
pub_template_default(const struct pub *p, const struct vendor_profile *prof, const char *name,
                     char **out, size_t *len, char *err, size_t errlen)
{
	char dir[4096];
	const char *base = NULL;

	*out = NULL;
	for (size_t i = 0; i < prof->n_device_files && base == NULL; i++)
		if (prof->device_files[i].tmpl && strcmp(prof->device_files[i].tmpl, name) == 0)
			base = p->tmpl_dir;
	for (size_t i = 0; i < prof->n_shared_files && base == NULL; i++) {
		const struct vendor_file *f = &prof->shared_files[i];

		if (strcmp(f->tmpl ? f->tmpl : f->pattern, name) == 0)
			base = f->tmpl ? p->tmpl_dir : p->static_dir;
	}
	if (base == NULL) {
		hd_seterr(err, errlen, "profile %s has no template named '%s'", prof->name, name);
		return -1;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", base, prof->name) >= sizeof(dir)) {
		hd_seterr(err, errlen, "%s/%s: path too long", prof->name, name);
		return -1;
	}
	if ((*out = fs_read_file(dir, name, VENDOR_FILE_MAX, len)) == NULL) {
		hd_seterr(err, errlen, "%s/%s: cannot read the default", prof->name, name);
		return -1;
	}
	return 0;
}

/* One file of a profile that a candidate template replaces. */
struct cand_file {
	bool shared;
	size_t index;
	struct render_tmpl *tm; /* NULL for a static file (raw bytes: the source) */
};

struct dry {
	struct pub *p;
	const struct world *w;
	const struct vendor_profile *prof;
	const char *src;
	size_t len;
	struct cand_file files[PUB_MAX_FILES + 8];
	size_t nfiles;
	pub_dry_cb cb;
	void *arg;
	int rc;
	/* shared files: the answer per model, so that thousands of phones of
	 * a few models cost a few renders */
	struct {
		size_t file;
		char model[33];
		int differs;
	} memo[64];
	size_t nmemo;
};

/* Renders candidate tm with vals as vendor_render_* do (XML checked). */
static int
cand_run(const struct render_tmpl *tm, const struct render_values *vals, struct render_buf *out,
         char *err, size_t errlen)
{
	if (render_run(tm, vals, out, err, errlen) != 0)
		return -1;
	if (render_tmpl_mode(tm) != RENDER_KV && vendor_check_xml(out->p, out->len, err, errlen) != 0)
		return -1;
	return 0;
}

/*
 * Whether shared file f of the dry run renders differently with the
 * candidate than with the templates in use, for one model (NULL: none).
 * 1 differs, 0 same, -1 the candidate fails (err).
 */
static int
dry_shared_differs(struct dry *dr, const struct cand_file *f, const char *model, char *err,
                   size_t errlen)
{
	struct render_buf a = { 0 }, b = { 0 };
	struct render_values vals;
	char e2[256];
	int rc = -1;

	if (f->tm == NULL) {
		if (render_buf_append(&b, dr->src, dr->len) != 0) {
			hd_seterr(err, errlen, "out of memory");
			goto out;
		}
	} else {
		render_values_empty(&vals);
		render_values_set(&vals, RV_MODEL, model);
		if (cand_run(f->tm, &vals, &b, err, errlen) != 0)
			goto out;
	}
	/* the file in use failing to render counts as "differs" */
	if (vendor_render_shared(dr->prof, dr->p->tmpl, f->index, model, &a, e2, sizeof(e2)) != 0)
		rc = 1;
	else
		rc = a.len != b.len || memcmp(a.p, b.p, a.len) != 0;
out:
	render_buf_free(&a);
	render_buf_free(&b);
	return rc;
}

/* dry_shared_differs through the memo (model NULL and "" are the same). */
static int
dry_shared_memo(struct dry *dr, size_t k, const char *model, char *err, size_t errlen)
{
	const char *m = model ? model : "";
	int rc;

	for (size_t i = 0; i < dr->nmemo; i++)
		if (dr->memo[i].file == k && strcmp(dr->memo[i].model, m) == 0)
			return dr->memo[i].differs;
	rc = dry_shared_differs(dr, &dr->files[k], m[0] ? m : NULL, err, errlen);
	if (rc >= 0 && dr->nmemo < sizeof(dr->memo) / sizeof(dr->memo[0]) &&
	    strlen(m) < sizeof(dr->memo[0].model)) {
		dr->memo[dr->nmemo].file = k;
		memcpy(dr->memo[dr->nmemo].model, m, strlen(m) + 1);
		dr->memo[dr->nmemo++].differs = rc;
	}
	return rc;
}

static int
dry_dev(struct hd_dev *d, void *arg)
{
	struct dry *dr = arg;
	struct pub_dry_dev r = { d, 0, NULL };
	struct pub_blob *cur[PUB_MAX_FILES] = { 0 };
	struct render_input in;
	struct pub_dev *e;
	char err[256] = "";
	unsigned long long version = 0;

	if (vendor_profile_by_name(d->profile) != dr->prof)
		return 0;
	pthread_rwlock_rdlock(&dr->p->lock);
	if ((e = idmap_get(&dr->p->by_id, d->id)) != NULL && e->profile == dr->prof) {
		version = e->version;
		for (size_t i = 0; i < e->nfiles; i++)
			cur[i] = blob_ref(e->files[i]);
	}
	pthread_rwlock_unlock(&dr->p->lock);
	pub_render_input(dr->w, d, &in);
	in.version = version;
	for (size_t k = 0; k < dr->nfiles && r.result >= 0; k++) {
		const struct cand_file *f = &dr->files[k];
		struct render_buf b = { 0 };
		struct render_values vals;
		int dif;

		if (f->shared) {
			if ((dif = dry_shared_memo(dr, k, d->model, err, sizeof(err))) == 0)
				dif = dry_shared_memo(dr, k, NULL, err, sizeof(err));
			r.result = dif < 0 ? -1 : (dif ? 1 : r.result);
			continue;
		}
		if (vendor_values(dr->prof, &in, &vals, err, sizeof(err)) != 0) {
			r.result = -1;
			continue;
		}
		if (cand_run(f->tm, &vals, &b, err, sizeof(err)) != 0)
			r.result = -1;
		else if (f->index >= PUB_MAX_FILES || cur[f->index] == NULL ||
		         cur[f->index]->len != b.len || memcmp(cur[f->index]->data, b.p, b.len) != 0)
			r.result = 1;
		render_buf_free(&b);
	}
	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		pub_release(cur[i]);
	r.error = r.result < 0 ? err : NULL;
	if (dr->cb(&r, dr->arg) != 0) {
		dr->rc = -1;
		return 1;
	}
	return 0;
}

int
pub_dry_run(struct pub *p, const struct world *w, const struct vendor_profile *prof,
            const char *name, const char *src, size_t len, pub_dry_cb cb, void *arg,
            char *err, size_t errlen)
{
	struct dry dr = { .p = p, .w = w, .prof = prof, .src = src, .len = len, .cb = cb,
	                  .arg = arg };
	size_t nfiles = prof->n_device_files + prof->n_shared_files;

	for (size_t k = 0; k < nfiles; k++) {
		bool shared = k >= prof->n_device_files;
		size_t i = shared ? k - prof->n_device_files : k;
		const struct vendor_file *f = shared ? &prof->shared_files[i] : &prof->device_files[i];
		struct cand_file *cf;

		if (strcmp(f->tmpl ? f->tmpl : shared ? f->pattern : "", name) != 0)
			continue;
		if (dr.nfiles == sizeof(dr.files) / sizeof(dr.files[0])) {
			hd_seterr(err, errlen, "too many files use '%s'", name);
			goto fail;
		}
		cf = &dr.files[dr.nfiles++];
		cf->shared = shared;
		cf->index = i;
		if (f->tmpl != NULL &&
		    render_compile(src, len, f->mode, &cf->tm, err, errlen) != 0)
			goto fail;
	}
	if (dr.nfiles == 0) {
		hd_seterr(err, errlen, "profile %s has no template named '%s'", prof->name, name);
		return -1;
	}
	world_each_dev(w, dry_dev, &dr);
	for (size_t k = 0; k < dr.nfiles; k++)
		render_tmpl_free(dr.files[k].tm);
	if (dr.rc != 0)
		hd_seterr(err, errlen, "out of memory");
	return dr.rc;
fail:
	for (size_t k = 0; k < dr.nfiles; k++)
		render_tmpl_free(dr.files[k].tm);
	return -1;
}

int
pub_with_access(struct pub *p, const struct pub_ref *ref, pub_access_fn fn, void *arg)
{
	struct pub_access_view v = { HD_PROV_NONE, NULL, NULL, NULL, HD_CERT_NONE, NULL };
	struct pub_access *a;
	struct pub_dev *e;
	int rc;

	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_id, ref->dev);
	v.profile = e != NULL && e->profile != NULL ? e->profile->name : NULL;
	if ((a = idmap_get(&p->access, ref->org)) == NULL) {
		/* every published device's organization has an entry; none
		 * means it could not be made (out of memory): refuse, never
		 * serve credentials unprotected */
		v.auth = HD_PROV_DEVICE;
	} else {
		v.auth = a->auth;
		v.client_cert = a->client_cert;
		v.nets = &a->nets;
		if (a->auth == HD_PROV_SHARED) {
			v.user = a->user;
			v.password = a->password;
		} else if (a->auth == HD_PROV_DEVICE) {
			v.user = ref->mac;
			v.password = e ? e->prov_password : NULL;
		}
	}
	rc = fn(&v, arg);
	pthread_rwlock_unlock(&p->lock);
	return rc;
}

int
pub_get_device(struct pub *p, const char *mac, struct pub_ref *ref)
{
	struct pub_dev *e;

	memset(ref, 0, sizeof(*ref));
	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_mac, mac_key(mac))) != NULL)
		ref_file(ref, e, 0);
	pthread_rwlock_unlock(&p->lock);
	return ref->blob != NULL;
}
