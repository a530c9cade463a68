/*
 * publish.c -- the publisher's renderer and driver: renders devices when
 * something changes (change hook, template change, start-up), swaps the
 * results into the in-memory cache (pubcache.c) and queues them for the
 * TFTP writer (tftpw.c); start-up reconciliation, render checks,
 * previews, dry runs of templates, the templates in use.
 *
 * The cache holds per device one entry (keyed by id and by MAC) with one
 * blob per per-device file of its profile, the configuration version and
 * the hash of all its files.  Shared files (device-independent) are
 * rendered on first request and cached per (profile, file, model); a
 * template change empties that cache.
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
 * TFTP: the writer thread (tftpw.c) mirrors the entries into the TFTP
 * root: publish_dev swaps a device's blobs in memory and queues the device
 * (urgent for a few devices, bulk for many); the thread writes whatever
 * the entry holds when it gets there.  Each per-device name is in the
 * store's manifest (tftp_files) before its file is first written, so
 * start-up can remove the files of deleted devices (even deleted while
 * hotdeskd was stopped) without touching anything else in the directory:
 * a device with new names is recorded in the caller's transaction and
 * queued only once that commits (store_after_txn); when the store fails
 * its files wait, unwritten, for the next change to record them.
 * Temporaries are private until renamed (fsutil.h: 0600 in a 0700
 * subdirectory), and the writer removes those a crash left before
 * anything is published.  Files are not synced one by one: pub_stop syncs
 * the root once and records a clean stop with the state of the root's
 * directory; a start without that record, or with the directory changed
 * since, compares every file's content (tftp_holds) instead of its size.
 * Render keys: each version is stored with the render_key of the device
 * and the hash of its files; a start after a clean stop that left the
 * root's directory as it was (its state recorded by pub_stop) takes the
 * files of a device whose key is unchanged as they are: its entry is
 * "lazy" (no blobs).  A fetch reads the file it asks for from the root,
 * checked against that file's sum (stored with the version, under a key
 * kept in the store's meta), and keeps nothing; so does the second; a
 * third fetch of a file loads the device's files (pcache_fill, each
 * checked against its sum).  A mismatch is rendered through the refill
 * function.
 *
 * Versions: a device's content hash is that of its files rendered with the
 * version stamp 0, so a template using {{version}} does not make every
 * re-render (or restart) look like a change; the files published carry the
 * real version.  A dry run (pub_dry_run) compares a candidate template's
 * output with the published blobs, rendered with the same stamp, so it
 * lists exactly the devices pub_update will then find changed.
 */
#include "publish.h"
#include "pubcache.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bigmap.h"
#include "config.h"
#include "errbuf.h"
#include "fsutil.h"
#include "hex.h"
#include "idmap.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "tftpw.h"
#include "virt.h"
#include "wipe.h"
#include "lockorder.h"
#include "poison.h"

#define PUB_BATCH_MIN 8 /* pub_update batches from this many devices on */
/* Start-up renders every device whose files are not in place (the first
 * start, or a TFTP root on tmpfs after a reboot): each PUB_START_STEP
 * devices it waits until the TFTP writer has at most PUB_START_BACKLOG
 * devices' files to write, so their memory stays bounded (it grew by the
 * whole root before: 1.9 GiB at 1,000,000 devices). */
#define PUB_START_STEP 64
#define PUB_START_BACKLOG 4096
/* meta key: the TFTP root whose files a clean stop synced (pub_stop) */
#define PUB_META_CLEAN "tftp_clean"
/* meta key: the TFTP root's directory entry as the clean stop left it */
#define PUB_META_ROOT_STATE "tftp_root_state"
/* meta key: pcache_file_sum's key (hex), kept so that the sums stored
 * with each device (sql/018_file_sums.sql) hold across a restart */
#define PUB_META_SUM_KEY "file_sum_key"

/* The publications of the calling thread not yet known written (waited
 * for by pub_settle). */
static _Thread_local struct {
	const struct pub *p;
	uint64_t ticket[TFTPW_NQUEUES];
} tl_pending;

/* Notes ticket t of queue q for the calling thread's pub_settle. */
static void
pending_add(const struct pub *p, enum tftpw_queue q, uint64_t t)
{
	if (tl_pending.p != p)
		memset(&tl_pending, 0, sizeof(tl_pending));
	tl_pending.p = p;
	if (t > tl_pending.ticket[q])
		tl_pending.ticket[q] = t;
}

static long long
now_s(void)
{
	return (long long)time(NULL);
}


/* ---- blobs -------------------------------------------------------------- */




/* ---- life cycle --------------------------------------------------------- */

static void stash_clear(struct pub *p);
static void stash_free(struct stash *s);

/* The hash of the running executable: a render key made by another build
 * never matches (its rendering code may differ).  Random when it cannot
 * be read, so that nothing matches. */
static void
build_id(unsigned char out[16])
{
	crypto_generichash_state h;
	unsigned char buf[65536];
	ssize_t n = -1;
	int fd = open("/proc/self/exe", O_RDONLY);

	crypto_generichash_init(&h, NULL, 0, 16);
	while (fd != -1 && (n = read(fd, buf, sizeof(buf))) > 0)
		crypto_generichash_update(&h, buf, (size_t)n);
	crypto_generichash_final(&h, out, 16);
	if (fd != -1)
		close(fd);
	if (n != 0)
		randombytes_buf(out, 16);
}

/* The template keys of every profile (after the templates changed). */
static void
tkeys_refresh(struct pub *p)
{
	for (size_t i = 0; i < vendor_registry_len; i++)
		vendor_templates_device_key(p->tmpl, vendor_registry[i], p->tkeys[i]);
}

struct pub *
pub_new(const struct pub_opts *o, char *err, size_t errlen)
{
	struct pub *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	p->root_fd = -1;
	pthread_rwlock_init(&p->lock, NULL);
	pthread_mutex_init(&p->fetch_mu, NULL);
	pthread_mutex_init(&p->shared_mu, NULL);
	lockorder_register(&p->lock, LOCK_PUB, "pub");
	lockorder_register(&p->shared_mu, LOCK_PUB_SHARED, "pub shared");
	lockorder_register(&p->fetch_mu, LOCK_PUB_FETCH, "pub fetch");
	if (vendor_templates_load(o->templates, o->static_dir, &p->tmpl, err, errlen) != 0)
		goto fail;
	if ((p->tkeys = calloc(vendor_registry_len, sizeof(*p->tkeys))) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	tkeys_refresh(p);
	build_id(p->build);
	{
		unsigned char key[sizeof(p->sum_key)];

		randombytes_buf(key, sizeof(key));
		pcache_sum_key_set(p, key);
		sodium_memzero(key, sizeof(key));
	}
	if ((p->tmpl_dir = strdup(o->templates)) == NULL ||
	    (p->static_dir = strdup(o->static_dir)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (o->tftp_root != NULL && o->tftp_root[0] != '\0') {
		struct tftpw_ops ops = { pcache_tftp_files, pcache_tftp_release, pcache_tftp_owned, p,
		                         pcache_tftp_written };

		if ((p->tw = tftpw_open(o->tftp_root, &ops, err, errlen)) == NULL)
			goto fail;
		/* fetches of files not in memory open them relative to it */
		if ((p->root_fd = open(o->tftp_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
			hd_seterr(err, errlen, "%s: %s", o->tftp_root, strerror(errno));
			goto fail;
		}
		p->drop_written = true;
	}
	return p;
fail:
	pub_free(p);
	return NULL;
}







void
pub_free(struct pub *p)
{
	if (p == NULL)
		return;
	tftpw_close(p->tw); /* first: its thread reads the entries */
	if (p->root_fd != -1)
		close(p->root_fd);
	hd_idset_free(&p->tftp_fresh);
	hd_idset_free(&p->tftp_unlisted);
	hd_idset_free(&p->track);
	if (tl_pending.p == p) /* a later pub at this address has no tickets */
		memset(&tl_pending, 0, sizeof(tl_pending));
	stash_clear(p);
	for (size_t i = 0; i < PUB_PRERENDER_MAX; i++)
		stash_free(&p->prerendered[i]);
	idmap_each(&p->by_id, pcache_dev_free, NULL);
	idmap_free(&p->by_id);
	if (p->block != NULL) {
		HD_UNPOISON(p->block, p->block_n * sizeof(*p->block));
		bigmap_free(p->block, p->block_n * sizeof(*p->block));
	}
	idmap_each(&p->access, pcache_access_free, NULL);
	idmap_free(&p->access);
	idmap_free(&p->by_mac);
	pcache_shared_flush(p);
	free(p->loaded.v);
	vendor_templates_free(p->tmpl);
	free(p->tkeys);
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
	if (rc == 0) {
		tkeys_refresh(p);
		pcache_shared_flush(p);
	}
	return rc;
}

void
pub_set_refill(struct pub *p, void (*fn)(void *arg, hd_id dev), void *arg)
{
	p->refill = fn;
	p->refill_arg = arg;
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
 * redact: line.password rendered as PUB_REDACTED (previews only).  check:
 * each file's XML checked; else known (NULL: not asked) says which are
 * known well-formed without vendor_check_device_output. */
static int
render_files2(const struct vendor_templates *t, const struct world *w, const struct hd_dev *d,
              const struct vendor_profile *prof, unsigned long long version, bool redact,
              bool check, struct render_buf bufs[PUB_MAX_FILES], bool *known, char *err,
              size_t errlen)
{
	struct render_input in;

	metrics_inc(METRICS_DEVICE_RENDERS, 1);
	pub_render_input(w, d, &in);
	in.version = version;
	if (redact && in.line.password != NULL && in.line.password[0] != '\0')
		in.line.password = PUB_REDACTED;
	for (size_t i = 0; i < prof->n_device_files && i < PUB_MAX_FILES; i++)
		if ((check ? vendor_render_device(prof, t, i, &in, &bufs[i], err, errlen)
		           : vendor_render_device_unchecked(prof, t, i, &in, &bufs[i],
		                                            known ? &known[i] : NULL, err,
		                                            errlen)) != 0)
			return -1;
	return 0;
}

static int
render_files(const struct vendor_templates *t, const struct world *w, const struct hd_dev *d,
             const struct vendor_profile *prof, unsigned long long version, bool redact,
             struct render_buf bufs[PUB_MAX_FILES], char *err, size_t errlen)
{
	return render_files2(t, w, d, prof, version, redact, true, bufs, NULL, err, errlen);
}

/* ---- one render per change --------------------------------------------- */

/* The render key's input, gathered in a buffer and hashed a block at a
 * time (one update per field cost more than the hash itself). */
struct keybuf {
	crypto_generichash_state h;
	size_t n;
	unsigned char b[512];
};

static void
key_bytes(struct keybuf *k, const void *v, size_t len)
{
	if (k->n + len > sizeof(k->b)) {
		crypto_generichash_update(&k->h, k->b, k->n);
		k->n = 0;
		if (len > sizeof(k->b)) {
			crypto_generichash_update(&k->h, v, len);
			return;
		}
	}
	memcpy(k->b + k->n, v, len);
	k->n += len;
}

static void
key_num(struct keybuf *k, long long v)
{
	key_bytes(k, &v, sizeof(v));
}

/* A string, NULL told apart from "" and every string from the next. */
static void
key_str(struct keybuf *k, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	key_num(k, s == NULL ? -1 : (long long)n);
	if (s != NULL)
		key_bytes(k, s, n);
}

/*
 * The render key of a device: a hash of everything its per-device files
 * are rendered from (every field of struct render_input but the version
 * stamp, its profile's templates, the build).  Equal keys render alike:
 * a move's check render is reused (stash), and a clean restart takes the
 * files of a device whose key is the one stored with its version as they
 * are in the TFTP root.  A field added to struct render_input (render.h)
 * must be added here (the assertion below is a reminder).
 */
#if defined(__x86_64__)
_Static_assert(sizeof(struct render_input) == 392, "render_key: render_input changed");
#endif
static void
render_key(const struct pub *p, const struct world *w, const struct hd_dev *d,
           const struct vendor_profile *prof, unsigned char key[16])
{
	struct keybuf h;
	struct render_input in;
	size_t pi = vendor_profile_index(prof);

	pub_render_input(w, d, &in);
	crypto_generichash_init(&h.h, NULL, 0, 16);
	h.n = 0;
	key_bytes(&h, p->build, sizeof(p->build));
	key_str(&h, prof->name);
	if (pi < vendor_registry_len)
		key_bytes(&h, p->tkeys[pi], sizeof(p->tkeys[pi]));
	key_str(&h, in.mac);
	key_str(&h, in.model);
	key_str(&h, in.org);
	key_num(&h, in.parked);
	key_num(&h, in.line_enabled);
	key_str(&h, in.line.sip_user);
	key_str(&h, in.line.auth_name);
	key_str(&h, in.line.password);
	key_str(&h, in.line.display_name);
	key_str(&h, in.line.label);
	key_str(&h, in.line.registrar_host);
	key_num(&h, in.line.registrar_port);
	key_str(&h, in.line.transport);
	key_str(&h, in.line.voicemail);
	key_str(&h, in.language);
	key_str(&h, in.site.ntp_server);
	key_num(&h, in.site.utc_offset);
	key_num(&h, in.site.dst);
	key_num(&h, (long long)in.nkeys);
	for (size_t i = 0; i < in.nkeys && i < RENDER_MAX_KEYS; i++) {
		key_num(&h, in.keys[i].blf);
		key_str(&h, in.keys[i].value);
		key_str(&h, in.keys[i].label);
	}
	key_num(&h, in.parking);
	crypto_generichash_update(&h.h, h.b, h.n);
	crypto_generichash_final(&h.h, key, 16);
	sodium_memzero(&h, sizeof(h)); /* it saw the SIP password */
}

static void
stash_free(struct stash *s)
{
	for (size_t k = 0; k < PUB_MAX_FILES; k++)
		render_buf_free(&s->bufs[k]);
	s->dev = 0;
}

static void
stash_clear(struct pub *p)
{
	for (size_t i = 0; i < p->nstash; i++)
		stash_free(&p->stash[i]);
	p->nstash = 0;
}

/* Moves the render of d among v[0..n) into bufs if it is still what d
 * renders to (key: its render_key now); true when it did (the files are
 * checked already).  One that is not is freed. */
static bool
stash_take_from(struct stash *v, size_t n, const struct hd_dev *d, const unsigned char key[16],
                struct render_buf bufs[PUB_MAX_FILES])
{
	for (size_t i = 0; i < n; i++) {
		struct stash *s = &v[i];

		if (s->dev != d->id)
			continue;
		if (sodium_memcmp(key, s->key, 16) != 0) {
			stash_free(s);
			return false;
		}
		for (size_t k = 0; k < PUB_MAX_FILES; k++) {
			bufs[k] = s->bufs[k];
			memset(&s->bufs[k], 0, sizeof(s->bufs[k]));
		}
		s->dev = 0;
		return true;
	}
	return false;
}

static bool
stash_take(struct pub *p, const struct hd_dev *d, const unsigned char key[16],
           struct render_buf bufs[PUB_MAX_FILES])
{
	return stash_take_from(p->stash, p->nstash, d, key, bufs);
}

/* Whether dir/name is a regular file of len bytes (start-up: a file whose
 * content hash is unchanged since it was written needs no rewrite). */
static bool
tftp_present(const struct pub *p, const char *name, size_t len)
{
	char path[4096];
	struct stat sb;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", tftpw_root(p->tw), name) >= sizeof(path))
		return false;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size == len &&
	       (sb.st_mode & 0777) == 0644;
}

static void
files_hash_bin(const struct render_buf bufs[PUB_MAX_FILES], size_t n, unsigned char out[16])
{
	const char *data[PUB_MAX_FILES];
	size_t len[PUB_MAX_FILES];

	for (size_t i = 0; i < n && i < PUB_MAX_FILES; i++) {
		data[i] = bufs[i].p;
		len[i] = bufs[i].len;
	}
	pcache_files_hash(data, len, n < PUB_MAX_FILES ? n : PUB_MAX_FILES, out);
}

/* files_hash_bin, in hex (h: the binary hash) */
static void
files_hash(const struct render_buf bufs[PUB_MAX_FILES], size_t n, unsigned char h[16],
           char hex[33])
{
	files_hash_bin(bufs, n, h);
	sodium_bin2hex(hex, 33, h, 16);
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

/* Whether dir/name holds exactly b (start-up after a crash: a file may
 * be torn whatever its size). */
static bool
tftp_holds(const struct pub *p, const char *name, const struct render_buf *b)
{
	size_t oldlen;
	char *old = fs_read_file(tftpw_root(p->tw), name, b->len, &oldlen);
	bool same = old != NULL && oldlen == b->len && memcmp(old, b->p, b->len) == 0;

	if (old != NULL) {
		sodium_memzero(old, oldlen);
		free(old);
	}
	return same;
}

/* Writes one shared file now unless it already holds b. */
static void
tftp_write(struct pub *p, struct store *st, const char *name, const struct render_buf *b)
{
	char err[256];

	if (p->tw == NULL || tftp_holds(p, name, b))
		return;
	if (tftpw_write_now(p->tw, name, b->p, b->len, err, sizeof(err)) != 0) {
		log_error("tftp: %s", err);
		return;
	}
	if (st != NULL && store_tftp_add(st, name) != 0)
		log_error("tftp: cannot record %s: %s", name, store_errmsg(st));
}

/* Queues the removal of a file hotdeskd wrote (the writer removes it
 * unless a device owns the name by then). */
static void
tftp_remove(struct pub *p, struct store *st, const char *name)
{
	enum tftpw_queue q = p->bulk ? TFTPW_BULK : TFTPW_URGENT;

	if (p->tw == NULL || name[0] == '\0')
		return;
	pending_add(p, q, tftpw_queue_remove(p->tw, q, name));
	if (st != NULL)
		(void)store_tftp_del(st, name);
}

/* ---- the TFTP writer's view of the entries ---------------------------- */






/* Queues device e's files for the writer, then notes the ticket in e
 * under the write lock (writer only).  Queued without the publisher's
 * lock: out of memory, the job runs in place and reads e's files. */
static void
tftp_queue(struct pub *p, struct pub_dev *e)
{
	enum tftpw_queue q = p->bulk ? TFTPW_BULK : TFTPW_URGENT;
	uint64_t t = tftpw_queue_dev(p->tw, q, e->id, 0);

	pthread_rwlock_wrlock(&p->lock);
	e->tftp_q = q;
	e->tftp_ticket = t;
	pthread_rwlock_unlock(&p->lock);
	pending_add(p, q, t);
}

void
pub_settle_ahead(struct pub *p)
{
	if (p->tw != NULL)
		tftpw_thread_waits(p->tw);
}

void
pub_settle_done(struct pub *p)
{
	if (p->tw != NULL)
		tftpw_thread_done(p->tw);
}

void
pub_tftp_start(struct pub *p)
{
	if (p->tw != NULL)
		tftpw_start(p->tw);
}

void
pub_settle(struct pub *p)
{
	if (p->tw == NULL || tl_pending.p != p)
		return;
	for (int q = 0; q < TFTPW_NQUEUES; q++)
		tftpw_wait(p->tw, (enum tftpw_queue)q, tl_pending.ticket[q]);
	memset(&tl_pending, 0, sizeof(tl_pending));
}

void
pub_tftp_backlog(struct pub *p, size_t max)
{
	if (p->tw != NULL)
		tftpw_wait_backlog(p->tw, TFTPW_BULK, max);
}

void
pub_tftp_wait(struct pub *p, hd_id dev)
{
	struct pub_dev *e;
	enum tftpw_queue q = TFTPW_URGENT;
	uint64_t t = 0;

	if (p->tw == NULL)
		return;
	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL) {
		q = e->tftp_q;
		t = e->tftp_ticket;
	}
	pthread_rwlock_unlock(&p->lock);
	tftpw_wait(p->tw, q, t);
}

/*
 * The transaction that recorded the new names of the devices in
 * tftp_fresh ended (store_after_txn): committed, their files are queued;
 * rolled back, they wait unwritten (tftp_unlisted) for the next change.
 * Writer only (the service lock is held).
 */
static void
tftp_committed(void *arg, bool committed)
{
	struct pub *p = arg;
	bool bulk = p->bulk;

	p->bulk = p->tftp_fresh.n >= PUB_BATCH_MIN;
	for (size_t i = 0; i < p->tftp_fresh.n; i++) {
		hd_id id = p->tftp_fresh.v[i];
		struct pub_dev *e = idmap_get(&p->by_id, id);

		if (e == NULL)
			continue; /* unpublished meanwhile: nothing to write */
		if (committed)
			tftp_queue(p, e);
		else if (hd_idset_add(&p->tftp_unlisted, id) != 0)
			log_error("tftp: out of memory: device %s's files are not written", e->mac);
	}
	hd_idset_clear(&p->tftp_fresh);
	p->bulk = bulk;
	if (!committed)
		log_warn("tftp: the manifest was not recorded: new files wait for the next change");
}

/* Device id's new names are recorded in st's transaction (listed) or
 * could not be: its files are written once that commits, or wait. */
static void
tftp_defer(struct pub *p, struct store *st, hd_id id, bool listed)
{
	if (listed && hd_idset_add(&p->tftp_fresh, id) == 0) {
		if (store_after_txn(st, tftp_committed, p) != 0)
			tftp_committed(p, false); /* not known committed: wait */
		return;
	}
	if (hd_idset_add(&p->tftp_unlisted, id) != 0)
		log_error("tftp: out of memory: a device's files are not written");
}

/* Whether device id's files wait for their names to be recorded. */
static bool
tftp_waiting(const struct pub *p, hd_id id)
{
	return hd_idset_has(&p->tftp_fresh, id) || hd_idset_has(&p->tftp_unlisted, id);
}

/* Records the names of the devices whose files wait unlisted (a change
 * with the store at hand), then writes them as tftp_defer says. */
static void
tftp_relist(struct pub *p, struct store *st)
{
	struct hd_idset again = p->tftp_unlisted;

	memset(&p->tftp_unlisted, 0, sizeof(p->tftp_unlisted));
	for (size_t k = 0; k < again.n; k++) {
		struct pub_dev *e = idmap_get(&p->by_id, again.v[k]);
		bool listed = true;

		if (e == NULL || e->profile == NULL)
			continue;
		for (size_t i = 0; i < e->nfiles; i++) {
			char name[VENDOR_NAME_MAX + 1];

			if (pcache_file_name(e->profile, i, e->mac, name, sizeof(name)) == 0 &&
			    store_tftp_add(st, name) != 0)
				listed = false;
		}
		tftp_defer(p, st, e->id, listed);
	}
	hd_idset_free(&again);
}

void
pub_tftp_relist(struct pub *p, struct store *st)
{
	if (p->tw != NULL && p->tftp_unlisted.n > 0)
		tftp_relist(p, st);
}

/*
 * After device e (d) was published in memory: queues the files the root
 * does not hold for the writer (start-up: checked by size after a clean
 * stop that left the root untouched, by content otherwise; after that by
 * the bytes replaced, or, out of memory, by each file's sum before the
 * change, prior_sum: NULL when not to be trusted, a forced publish).
 * Names new to the manifest are recorded first, and those files written
 * only once that is committed (tftp_defer).  The old profile's names are
 * removed.  Writer only.
 */
static void
tftp_publish(struct pub *p, struct store *st, struct pub_dev *e, const struct hd_dev *d,
             const struct vendor_profile *prof, const struct vendor_profile *old_prof,
             bool same, const struct render_buf *bufs, struct pub_blob *const *old, size_t n,
             bool was_lazy, const uint64_t *prior_sum)
{
	bool need = false, fresh = false, listed = st != NULL;
	bool waiting = tftp_waiting(p, d->id); /* never written: every file is due */
	/* a file the root holds already (in place and unchanged) is not
	 * written again; after a failed write, every file of a change is */
	bool trust = !tftpw_failed(p->tw);
	unsigned want = 0;

	/* another family names its files otherwise: remove the old names */
	for (size_t i = 0; old_prof != NULL && old_prof != prof && i < old_prof->n_device_files; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (pcache_file_name(old_prof, i, d->mac, name, sizeof(name)) == 0)
			tftp_remove(p, st, name);
	}
	for (size_t i = 0; i < n; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (pcache_file_name(prof, i, d->mac, name, sizeof(name)) != 0)
			continue;
		if (old[i] == NULL && same &&
		    (p->tftp_clean ? tftp_present(p, name, bufs[i].len) : tftp_holds(p, name, &bufs[i])))
			continue; /* start-up: in place since the last run */
		if (trust && !waiting && old[i] != NULL && old_prof == prof &&
		    old[i]->len == bufs[i].len && memcmp(old[i]->data, bufs[i].p, bufs[i].len) == 0)
			continue; /* the file holds this already */
		if (trust && !waiting && was_lazy && prior_sum != NULL && old_prof == prof &&
		    prior_sum[i] != 0 && prior_sum[i] == e->sum[i])
			continue; /* the same, told by its sum: its bytes were out of memory */
		/* a lazy entry's names are listed: its files were written */
		if ((old[i] == NULL && !was_lazy) || old_prof != prof || waiting) {
			fresh = true;
			if (st != NULL && store_tftp_add(st, name) != 0) {
				log_error("tftp: cannot record %s: %s", name, store_errmsg(st));
				listed = false;
			}
		}
		need = true;
		want |= 1u << i;
	}
	if (!need) {
		/* start-up found every file in place: kept in memory, the files
		 * of a start that renders every device (a new build) would add
		 * up to the whole root */
		if (p->starting)
			pcache_drop_in_place(p, e->id);
		return;
	}
	/* the writer's job writes these (with those of earlier changes
	 * still waiting for it); a device whose names are new: all */
	atomic_fetch_or(&e->tftp_want, fresh ? 0xffu : want);
	if (fresh && !(p->starting && listed))
		tftp_defer(p, st, d->id, listed);
	else
		tftp_queue(p, e);
}

/* What the store says was last published for a device (start-up). */
struct known {
	hd_id dev;
	unsigned long long version;
	char hash[33];
	bool has_key;          /* key and fhash known (sql/017) */
	bool has_sums;         /* sum[] stored (sql/018; a sum may still be 0) */
	unsigned char key[16], fhash[16];
	uint64_t sum[PUB_MAX_FILES]; /* each file's pcache_file_sum, 0 unknown */
};

/* The sums as stored (sql/018_file_sums.sql): the first 8 bytes of the
 * files' hash (fhash: what ties the sums to the file_hash of the same
 * row), then each file's sum, 16 hex digits each; "" when none is known
 * or the key they were made with is not kept in the store (a restart
 * would not know them). */
#define SUMS_HEX_LEN (16 * (PUB_MAX_FILES + 1))
static void
sums_hex(const struct pub *p, const struct pub_dev *e, char out[SUMS_HEX_LEN + 1])
{
	bool any = false;

	out[0] = '\0';
	for (size_t i = 0; i < e->nfiles && i < PUB_MAX_FILES; i++)
		any |= e->sum[i] != 0;
	if (!any || !p->sum_key_kept)
		return;
	sodium_bin2hex(out, 17, e->fhash, 8);
	for (size_t i = 0; i < e->nfiles && i < PUB_MAX_FILES; i++)
		snprintf(out + 16 * (i + 1), 17, "%016llx", (unsigned long long)e->sum[i]);
}

/* Records what e now publishes (version, content hash, key, file hash,
 * each file's sum). */
static void
devcfg_record(struct pub *p, struct store *st, const struct pub_dev *e)
{
	char key[33], fh[33], sums[SUMS_HEX_LEN + 1];
	struct store_devcfg c = { e->id, e->version, e->hash, key, fh, sums };

	sodium_bin2hex(key, sizeof(key), e->key, sizeof(e->key));
	sodium_bin2hex(fh, sizeof(fh), e->fhash, sizeof(e->fhash));
	sums_hex(p, e, sums);
	if (st != NULL && store_devcfg_put(st, &c, now_s()) != 0)
		log_error("device %s: cannot record version %llu: %s", e->mac, e->version,
		          store_errmsg(st));
}

/* A new entry for d (writer, wrlock held); NULL when out of memory.  At
 * start-up, the next of p->block (zeroed, never used). */
static struct pub_dev *
entry_new(struct pub *p, const struct hd_dev *d)
{
	struct pub_dev *e;

	if (p->block_used < p->block_n) {
		e = &p->block[p->block_used++];
		e->in_block = true;
	} else if ((e = calloc(1, sizeof(*e))) == NULL) {
		return NULL;
	}
	e->id = d->id;
	memcpy(e->mac, d->mac, sizeof(e->mac));
	if (idmap_put(&p->by_id, d->id, e) != 0 ||
	    idmap_put(&p->by_mac, pcache_mac_key(d->mac), e) != 0) {
		idmap_del(&p->by_id, d->id);
		if (e->in_block)
			p->block_used--; /* the last one: used again */
		else
			free(e);
		return NULL;
	}
	return e;
}

/* Maps p->block for n entries (start-up, once; bigmap_alloc: present,
 * in huge pages when large).  Without it (out of memory, or none
 * needed) entries are allocated one by one. */
static void
entry_block(struct pub *p, size_t n)
{
	void *m;

	if (p->block != NULL || n == 0)
		return;
	if ((m = bigmap_alloc(n * sizeof(*p->block))) == NULL)
		return;
	p->block = m;
	p->block_n = n;
	p->block_used = 0;
}

/* The download settings of e from d and its organization (wrlock held). */
static void
entry_access(struct pub *p, const struct world *w, struct pub_dev *e, const struct hd_dev *d)
{
	if (!pcache_str_eq(e->prov_password, d->prov_password)) {
		wipe_free(e->prov_password);
		e->prov_password = pcache_dup_or_null(d->prov_password);
	}
	if (world_org(w, d->org) != NULL)
		pcache_access_refresh(p, world_org(w, d->org));
}

/*
 * Start-up after a clean stop that left the TFTP root untouched: when the
 * render key of d is the one stored with its version (k), its files in
 * the root are what a render gives; its entry is made without rendering
 * (lazy: the first read loads them, pcache_fill).  have: d's render key
 * computed already (pub_reconcile's second thread), or NULL.  Returns
 * true when it did.
 */
static bool
take_as_is(struct pub *p, const struct world *w, const struct hd_dev *d, const struct known *k,
           const unsigned char *have)
{
	const struct vendor_profile *prof = vendor_profile_by_name(d->profile);
	unsigned char key[16];
	struct pub_dev *e;

	if (prof == NULL || k == NULL || !k->has_key || !p->tftp_clean)
		return false;
	if (have != NULL)
		memcpy(key, have, sizeof(key));
	else
		render_key(p, w, d, prof, key);
	if (sodium_memcmp(key, k->key, sizeof(key)) != 0)
		return false;
	pthread_rwlock_wrlock(&p->lock);
	if (idmap_get(&p->by_id, d->id) != NULL || (e = entry_new(p, d)) == NULL) {
		pthread_rwlock_unlock(&p->lock);
		return false;
	}
	e->org = d->org;
	e->profile = prof;
	e->version = k->version;
	memcpy(e->hash, k->hash, sizeof(e->hash));
	memcpy(e->key, key, sizeof(key));
	memcpy(e->fhash, k->fhash, sizeof(e->fhash));
	memcpy(e->sum, k->sum, sizeof(e->sum)); /* 0s: not stored (an older release's row) */
	e->nfiles = prof->n_device_files < PUB_MAX_FILES ? prof->n_device_files : PUB_MAX_FILES;
	e->lazy = true;
	entry_access(p, w, e, d);
	pthread_rwlock_unlock(&p->lock);
	return true;
}

/*
 * Renders device d; publishes when the content differs from what e holds.
 * e is the existing entry or NULL.  k: what the store says was last
 * published (start-up), or NULL.  force: publish even when the content is
 * the same (the entry's lazy files did not match: memory and the TFTP
 * root get the render).  Returns 1 changed, 0 unchanged, -1 failed (last
 * good kept).
 */
static int
publish_dev(struct pub *p, const struct world *w, struct store *st, const struct hd_dev *d,
            const struct known *k, bool force)
{
	const struct vendor_profile *prof = vendor_profile_by_name(d->profile);
	struct render_buf bufs[PUB_MAX_FILES] = { { 0 } };
	struct pub_blob *nb[PUB_MAX_FILES] = { 0 }, *old[PUB_MAX_FILES] = { 0 };
	struct pub_dev *e;
	char err[256], hash[33];
	unsigned char key[16], fhash[16], prior_key[16] = { 0 }, prior_fhash[16] = { 0 };
	uint64_t sum[PUB_MAX_FILES] = { 0 }, prior_sum[PUB_MAX_FILES] = { 0 };
	bool known[PUB_MAX_FILES] = { false };
	unsigned long long version;
	const struct vendor_profile *old_prof = NULL;
	bool same, checked = false, prior = false, keyed, was_lazy = false, prior_sums = true;
	size_t n;
	int rc = -1;

	if (prof == NULL) {
		render_failed(st, d, "unknown vendor profile");
		return -1;
	}
	n = prof->n_device_files < PUB_MAX_FILES ? prof->n_device_files : PUB_MAX_FILES;
	render_key(p, w, d, prof, key);
	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_id, d->id);
	version = e ? e->version : k ? k->version : 0;
	if (e != NULL) {
		prior = true;
		memcpy(prior_key, e->key, sizeof(prior_key));
		memcpy(prior_fhash, e->fhash, sizeof(prior_fhash));
		memcpy(prior_sum, e->sum, sizeof(prior_sum));
	}
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL && k != NULL && k->has_key) {
		prior = true;
		prior_sums = k->has_sums;
		memcpy(prior_key, k->key, sizeof(prior_key));
		memcpy(prior_fhash, k->fhash, sizeof(prior_fhash));
	}
	/* the version stamp ({{version}}) must not make every render
	 * "different": the content hash is that of a render with the fixed
	 * stamp 0; the files published carry the real version (below).
	 * Unchecked: content seen before was checked when it was published;
	 * new content is checked below before it can be published. */
	if (stash_take(p, d, key, bufs)) {
		checked = true; /* pub_check rendered it for this change */
	} else if (render_files2(p->tmpl, w, d, prof, 0, false, false, bufs, known, err,
	                         sizeof(err)) != 0) {
		render_failed(st, d, err);
		goto out;
	}
	files_hash(bufs, n, fhash, hash);
	same = e != NULL ? strcmp(e->hash, hash) == 0 && e->profile == prof
	                 : (k != NULL && strcmp(k->hash, hash) == 0);
	if (!same && !checked) {
		for (size_t i = 0; i < n; i++) {
			if (!known[i] &&
			    vendor_check_device_output(prof, i, bufs[i].p, bufs[i].len, err,
			                               sizeof(err)) != 0) {
				render_failed(st, d, err);
				goto out;
			}
		}
	}
	if (same && e != NULL && !force) {
		/* same files; the download settings may still have changed, and
		 * the key (what the next clean restart compares) */
		pthread_rwlock_wrlock(&p->lock);
		entry_access(p, w, e, d);
		keyed = sodium_memcmp(e->key, key, sizeof(key)) == 0;
		memcpy(e->key, key, sizeof(key));
		pthread_rwlock_unlock(&p->lock);
		if (!keyed)
			devcfg_record(p, st, e);
		rc = 0;
		goto out;
	}
	if (!same)
		version++; /* else: unchanged since the last run (or forced): keep it */
	/* the files themselves carry the version they are published as (a
	 * number in place of a number: still well-formed) */
	if (version != 0 && vendor_device_uses(prof, p->tmpl, RV_VERSION)) {
		for (size_t i = 0; i < n; i++)
			render_buf_reset(&bufs[i]);
		if (render_files2(p->tmpl, w, d, prof, version, false, false, bufs, NULL, err,
		                  sizeof(err)) != 0) {
			render_failed(st, d, err);
			goto out;
		}
		files_hash_bin(bufs, n, fhash);
	} /* else fhash is the hash of these files already (above) */
	for (size_t i = 0; i < n; i++) {
		sum[i] = pcache_file_sum(p, bufs[i].p, bufs[i].len);
		if ((nb[i] = pcache_blob_new(p, bufs[i].p, bufs[i].len, version, sum[i])) == NULL)
			goto out;
	}

	pthread_rwlock_wrlock(&p->lock);
	if (e == NULL && (e = entry_new(p, d)) == NULL) {
		pthread_rwlock_unlock(&p->lock);
		goto out;
	}
	old_prof = e->profile;
	was_lazy = e->lazy;
	e->org = d->org;
	e->profile = prof;
	e->version = version;
	entry_access(p, w, e, d);
	memcpy(e->hash, hash, sizeof(e->hash));
	memcpy(e->key, key, sizeof(key));
	memcpy(e->fhash, fhash, sizeof(fhash));
	memcpy(e->sum, sum, sizeof(sum));
	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		old[i] = e->files[i];
		e->files[i] = i < n ? nb[i] : NULL;
		nb[i] = NULL;
	}
	e->nfiles = n;
	e->lazy = false;
	e->loaded = false;
	atomic_store(&e->fetched, 0);
	pthread_rwlock_unlock(&p->lock);

	if (p->tw != NULL)
		tftp_publish(p, st, e, d, prof, old_prof, same && !force, bufs, old, n, was_lazy,
		             force ? NULL : prior_sum);
	/* start-up: a device unchanged since the last run keeps its row
	 * (unless the row has no sums yet: an older release wrote it) */
	if (!same || !prior || !prior_sums || memcmp(prior_key, key, sizeof(key)) != 0 ||
	    memcmp(prior_fhash, fhash, sizeof(fhash)) != 0)
		devcfg_record(p, st, e);
	rc = 1;
out:
	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		pub_release(old[i]);
		pub_release(nb[i]);
		render_buf_free(&bufs[i]);
	}
	return rc;
}

int
pub_refill(struct pub *p, const struct world *w, struct store *st, hd_id dev)
{
	const struct hd_dev *d = world_dev(w, dev);

	return d == NULL ? -1 : publish_dev(p, w, st, d, NULL, true) < 0 ? -1 : 0;
}

static void
unpublish(struct pub *p, struct store *st, hd_id id)
{
	struct pub_dev *e;

	pthread_rwlock_wrlock(&p->lock);
	if ((e = idmap_get(&p->by_id, id)) != NULL) {
		idmap_del(&p->by_id, id);
		idmap_del(&p->by_mac, pcache_mac_key(e->mac));
	}
	pthread_rwlock_unlock(&p->lock);
	if (e == NULL)
		return;
	for (size_t i = 0; e->profile != NULL && i < e->profile->n_device_files; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (pcache_file_name(e->profile, i, e->mac, name, sizeof(name)) == 0)
			tftp_remove(p, st, name);
	}
	pcache_dev_free(e, NULL);
}


/* After publishing thousands of devices: old blobs and render buffers
 * were freed in a scattered order; hand the free pages back to the system
 * so resident memory stays what the published files need. */
void
pub_give_back(void)
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

	if (st != NULL)
		pub_tftp_relist(p, st);
	p->bulk = bulk;

	for (size_t i = 0; i < n; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);

		if (p->tracking && hd_idset_add(&p->track, ids[i]) != 0)
			p->track_lost = true;
		if (d == NULL) {
			unpublish(p, st, ids[i]);
			continue;
		}
		/* ids are distinct within one call: push, no search */
		if (publish_dev(p, w, st, d, NULL, false) == 1 && changed != NULL &&
		    hd_idset_push(changed, d->id) != 0) {
			rc = -1;
			break;
		}
	}
	stash_clear(p); /* valid for this change only */
	p->bulk = false;
	if (n >= 1024)
		pub_give_back();
	/* a *30 move: published when its last file is in the TFTP root (the
	 * writer runs a queue in order), or now without TFTP */
	if (p->tw != NULL)
		(void)tftpw_queue_mark(p->tw, bulk ? TFTPW_BULK : TFTPW_URGENT, metrics_move_stamp());
	else
		metrics_move_published();
	return rc;
}

/* ---- start-up ----------------------------------------------------------- */

struct recon {
	struct pub *p;
	const struct world *w;
	struct store *st;
	struct known *kv;   /* the rows of device_config, in one array */
	size_t nkv, capkv;
	struct idmap known; /* dev -> its struct known in kv */
	char **stale;       /* tftp names no device owns */
	size_t nstale, capstale;
	size_t taken;       /* devices whose files were taken as they are */
	size_t rendered;    /* devices rendered */
	int rc;
	/* After a clean stop: every device, and its render key computed by
	 * two threads (recon_keys) while the store is read; keyed[i] false
	 * when devs[i] has no known profile (no key). */
	struct hd_dev **devs;
	size_t ndevs;
	unsigned char (*keys)[16];
	bool *keyed;
	atomic_size_t next; /* the first device no thread has taken yet */
};

/* Decodes exactly 32 hex digits (either case) into out; false for any
 * other text.  Not sodium_hex2bin: that one is constant-time, for
 * secrets, and took a tenth of a restart's CPU on 200,000 hashes. */
static bool
hex16(const char *s, unsigned char out[16])
{
	for (size_t i = 0; i < 16; i++) {
		int hi = hex_value((unsigned char)s[2 * i]), lo;

		/* the NUL of a shorter text is not a digit either */
		if (hi < 0 || (lo = hex_value((unsigned char)s[2 * i + 1])) < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return s[32] == '\0';
}

/* Decodes the sums of sql/018 (sums_hex) into sum[] (0: unknown);
 * false, every sum 0, for any other text (NULL in the store: an older
 * release's row) and for sums not of the files whose hash is fhash (a
 * release that knows no sums updated file_hash and left them). */
static bool
sums_parse(const char *s, const unsigned char fhash[16], uint64_t sum[PUB_MAX_FILES])
{
	size_t len = strlen(s);
	uint64_t v[PUB_MAX_FILES + 1] = { 0 }, tie = 0;

	memset(sum, 0, PUB_MAX_FILES * sizeof(*sum));
	if (len < 32 || len % 16 != 0 || len > SUMS_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		int d = hex_value((unsigned char)s[i]);

		if (d < 0)
			return false;
		v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
	}
	for (size_t i = 0; i < 8; i++)
		tie = tie << 8 | fhash[i];
	if (v[0] != tie)
		return false;
	memcpy(sum, v + 1, PUB_MAX_FILES * sizeof(*sum));
	return true;
}

/* One row of device_config into r->kv (indexed once all are read: the
 * array may still move). */
static int
recon_known(const struct store_devcfg *c, void *arg)
{
	struct recon *r = arg;
	struct known *k;
	size_t n;

	if (r->nkv == r->capkv) {
		size_t nc = r->capkv ? r->capkv * 2 : 1024;
		struct known *v = realloc(r->kv, nc * sizeof(*v));

		if (v == NULL)
			return -1;
		r->kv = v;
		r->capkv = nc;
	}
	k = &r->kv[r->nkv];
	memset(k, 0, sizeof(*k));
	k->dev = c->dev;
	k->version = c->version;
	n = strnlen(c->hash, sizeof(k->hash) - 1);
	memcpy(k->hash, c->hash, n); /* truncated as snprintf would */
	k->has_key = hex16(c->key, k->key) && hex16(c->file_hash, k->fhash);
	k->has_sums = k->has_key && sums_parse(c->file_sums, k->fhash, k->sum);
	r->nkv++;
	return 0;
}

/* Indexes r->kv by device (the table sized once). */
static int
recon_index(struct recon *r)
{
	if (idmap_reserve(&r->known, r->nkv) != 0)
		return -1;
	for (size_t i = 0; i < r->nkv; i++)
		if (idmap_put(&r->known, r->kv[i].dev, &r->kv[i]) != 0)
			return -1;
	return 0;
}

/* Device d (its render key computed already, or NULL): taken as it is
 * in the TFTP root, or rendered and published. */
static void
recon_one(struct recon *r, const struct hd_dev *d, const unsigned char *key)
{
	struct known *k = idmap_get(&r->known, d->id);

	if (take_as_is(r->p, r->w, d, k, key)) {
		r->taken++;
		return;
	}
	(void)publish_dev(r->p, r->w, r->st, d, k, false);
	/* files wait in memory for the TFTP writer: a few thousand at most */
	if (++r->rendered % PUB_START_STEP == 0)
		pub_tftp_backlog(r->p, PUB_START_BACKLOG);
}

static int
recon_dev(struct hd_dev *d, void *arg)
{
	recon_one(arg, d, NULL);
	return 0;
}

static int
recon_collect(struct hd_dev *d, void *arg)
{
	struct recon *r = arg;

	r->devs[r->ndevs++] = d;
	return 0;
}

/* Render keys per chunk of devices, taken in turn by the threads that
 * compute them (the second one starts earlier: no thread idles while the
 * other has work). */
#define RECON_KEYS_CHUNK 256

/* Computes render keys of chunks no thread has taken, until none is left.
 * render_key only reads the world, which no one changes during start-up
 * (the caller holds the service lock), and the publisher's build and
 * template keys. */
static void
recon_keys(struct recon *r)
{
	size_t i;

	while ((i = atomic_fetch_add(&r->next, RECON_KEYS_CHUNK)) < r->ndevs) {
		size_t end = r->ndevs - i > RECON_KEYS_CHUNK ? i + RECON_KEYS_CHUNK : r->ndevs;

		for (; i < end; i++) {
			const struct vendor_profile *prof = vendor_profile_by_name(r->devs[i]->profile);

			r->keyed[i] = prof != NULL;
			if (prof != NULL)
				render_key(r->p, r->w, r->devs[i], prof, r->keys[i]);
		}
	}
}

static void *
recon_keys_thread(void *arg)
{
	recon_keys(arg);
	return NULL;
}

/* Lists the devices and makes room for their keys; 0, or -1 out of
 * memory (then every key is computed where it is used). */
static int
recon_keys_alloc(struct recon *r)
{
	size_t n = world_count_devs(r->w);

	if (n == 0 || (r->devs = calloc(n, sizeof(*r->devs))) == NULL ||
	    (r->keys = calloc(n, sizeof(*r->keys))) == NULL ||
	    (r->keyed = calloc(n, sizeof(*r->keyed))) == NULL)
		return -1;
	world_each_dev(r->w, recon_collect, r);
	return 0;
}

static int
recon_fetch(hd_id dev, const char *source, const char *ua, unsigned long long version,
            long long at, void *arg)
{
	struct recon *r = arg;
	struct pub_dev *e = idmap_get(&r->p->by_id, dev);

	if (e != NULL)
		pcache_fetch_set(&e->fetch, source, ua, version, at);
	return 0;
}

/* Whether name is, exactly, one of the files of the device whose MAC
 * is a run of 12 hex digits in it: the common case of the manifest sweep
 * told without matching every profile's patterns (a name it does not
 * find owned goes through pcache_name_owned). */
static bool
recon_owned(struct pub *p, const char *name)
{
	size_t len = strlen(name), run = 0;

	for (size_t i = 0; i < len; i++) {
		char mac[HD_MAC_LEN + 1];
		const struct pub_dev *e;

		run = isxdigit((unsigned char)name[i]) ? run + 1 : 0;
		if (run < HD_MAC_LEN)
			continue;
		memcpy(mac, name + i + 1 - HD_MAC_LEN, HD_MAC_LEN);
		mac[HD_MAC_LEN] = '\0';
		if ((e = idmap_get(&p->by_mac, pcache_mac_key(mac))) != NULL &&
		    pcache_entry_owns(e, name))
			return true;
	}
	return false;
}

/* A name of the manifest: kept for removal unless a device owns it or it
 * is a shared file (removed after the statement, not while it reads). */
static int
recon_name(const char *name, void *arg)
{
	struct recon *r = arg;
	struct vendor_file_match m;

	if (recon_owned(r->p, name) || pcache_name_owned(r->p, name) ||
	    (vendor_match_file(name, &m) == 1 && m.kind == VENDOR_SHARED))
		return 0;
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

/* The TFTP root's directory entry: device, inode, modification and change
 * times.  Adding, removing or renaming a name in the directory changes
 * them; so does a new file system mounted there (a tmpfs after a reboot).
 * 0, or -1 when it cannot be read or does not fit. */
static int
root_state(const struct pub *p, char *buf, size_t len)
{
	struct stat sb;

	if (stat(tftpw_root(p->tw), &sb) != 0)
		return -1;
	return (size_t)snprintf(buf, len, "%llu:%llu:%lld.%09ld:%lld.%09ld",
	                        (unsigned long long)sb.st_dev, (unsigned long long)sb.st_ino,
	                        (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec,
	                        (long long)sb.st_ctim.tv_sec, sb.st_ctim.tv_nsec) < len
	           ? 0 : -1;
}

int
pub_tftp_take_clean(struct pub *p, struct store *st, char *err, size_t errlen)
{
	char root[4096], was[128], now[128];
	bool clean;
	int rc;

	if (p->tw == NULL)
		return 0;
	rc = store_meta_get(st, PUB_META_CLEAN, root, sizeof(root));

	/* a root touched since the clean stop (a file replaced, added or
	 * removed) is compared by content, as after a crash: only an
	 * untouched one is trusted by name and size */
	clean = rc == 1 && strcmp(root, tftpw_root(p->tw)) == 0;
	p->tftp_clean = clean && store_meta_get(st, PUB_META_ROOT_STATE, was, sizeof(was)) == 1 &&
	                root_state(p, now, sizeof(now)) == 0 && strcmp(was, now) == 0;
	if (!clean)
		log_info("tftp: no clean stop recorded: every file's content is checked");
	else if (!p->tftp_clean)
		log_info("tftp: the root changed since the clean stop: every file's content is checked");
	if (rc != 0 && store_meta_put_synced(st, PUB_META_CLEAN, NULL) != 0) {
		hd_seterr(err, errlen, "cannot record the TFTP root in use: %s", store_errmsg(st));
		return -1;
	}
	return 0;
}

void
pub_stop(struct pub *p, struct store *st)
{
	char state[128];
	bool known;

	if (p->tw == NULL || !tftpw_stop(p->tw))
		return;
	/* the state first (or none): it counts only with the clean record */
	known = root_state(p, state, sizeof(state)) == 0;
	if (store_meta_put(st, PUB_META_ROOT_STATE, known ? state : NULL) != 0 ||
	    store_meta_put(st, PUB_META_CLEAN, tftpw_root(p->tw)) != 0)
		log_error("tftp: cannot record the clean stop: %s", store_errmsg(st));
}

/*
 * pcache_file_sum's key: the one kept in the store, or this process's
 * (random) kept there now, so that the sums stored with each device hold
 * after a restart.  Not kept (the store failed): sums are not stored, and
 * the next start knows none (each is a detail of this process then).
 */
static void
sum_key_take(struct pub *p, struct store *st)
{
	char hex[2 * sizeof(p->sum_key) + 1];
	unsigned char key[sizeof(p->sum_key)];

	if (store_meta_get(st, PUB_META_SUM_KEY, hex, sizeof(hex)) == 1 && hex16(hex, key)) {
		pcache_sum_key_set(p, key);
		sodium_memzero(key, sizeof(key));
		sodium_memzero(hex, sizeof(hex));
		p->sum_key_kept = true;
		return;
	}
	sodium_bin2hex(hex, sizeof(hex), p->sum_key, sizeof(p->sum_key));
	p->sum_key_kept = store_meta_put(st, PUB_META_SUM_KEY, hex) == 0;
	sodium_memzero(hex, sizeof(hex));
	if (!p->sum_key_kept)
		log_error("cannot keep the files' sum key: %s", store_errmsg(st));
}

int
pub_reconcile(struct pub *p, const struct world *w, struct store *st, char *err, size_t errlen)
{
	struct recon r = { .p = p, .w = w, .st = st };
	pthread_t keys_th;
	bool keys_threaded = false;
	int rc = -1;

	/* before any sum is made or read (every render computes them) */
	sum_key_take(p, st);

	/* After a clean stop, most devices are taken as they are once their
	 * render key is checked: the keys (a third of a restart's CPU) are
	 * computed on a second thread while this one reads the published
	 * versions, then by both. */
	if (p->tftp_clean && recon_keys_alloc(&r) == 0)
		keys_threaded = pthread_create(&keys_th, NULL, recon_keys_thread, &r) == 0;
	if (store_devcfg_each(st, recon_known, &r) != 0) {
		hd_seterr(err, errlen, "cannot read published versions: %s", store_errmsg(st));
		goto out;
	}
	if (recon_index(&r) != 0) {
		hd_seterr(err, errlen, "out of memory");
		goto out;
	}
	/* an entry per device: the maps sized once, not grown 12 times */
	pthread_rwlock_wrlock(&p->lock);
	if (idmap_reserve(&p->by_id, world_count_devs(w)) != 0 ||
	    idmap_reserve(&p->by_mac, world_count_devs(w)) != 0) {
		pthread_rwlock_unlock(&p->lock);
		hd_seterr(err, errlen, "out of memory");
		goto out;
	}
	entry_block(p, world_count_devs(w));
	pthread_rwlock_unlock(&p->lock);
	p->bulk = true;
	/* New names are recorded in the start-up's transaction, and their
	 * files written before it commits.  Should it not commit, the daemon
	 * does not start; the next start renders the same devices and records
	 * and writes their names again. */
	p->starting = true;
	if (r.keyed != NULL) {
		recon_keys(&r);
		if (keys_threaded)
			pthread_join(keys_th, NULL);
		keys_threaded = false;
		for (size_t i = 0; i < r.ndevs; i++)
			recon_one(&r, r.devs[i], r.keyed[i] ? r.keys[i] : NULL);
	} else {
		world_each_dev(w, recon_dev, &r);
	}
	if (p->tw != NULL) {
		tftp_shared(p, st);
		/* files of devices that no longer exist */
		if (store_tftp_each(st, recon_name, &r) != 0) {
			hd_seterr(err, errlen, "cannot read the TFTP manifest: %s", store_errmsg(st));
			goto out;
		}
		for (size_t i = 0; i < r.nstale; i++)
			tftp_remove(p, st, r.stale[i]);
	}
	(void)store_fetch_each(st, recon_fetch, &r);
	if (r.taken > 0)
		log_info("%zu devices' files taken as they are in the TFTP root (render key unchanged)",
		         r.taken);
	rc = 0;
out:
	if (keys_threaded) {
		atomic_store(&r.next, r.ndevs); /* no chunk more: it ends soon */
		pthread_join(keys_th, NULL);
	}
	/* the files are in place when start-up goes on (I5) */
	p->bulk = false;
	p->starting = false;
	if (p->tw != NULL)
		tftpw_drain(p->tw);
	free(r.devs);
	free(r.keys);
	free(r.keyed);
	idmap_free(&r.known);
	free(r.kv);
	for (size_t i = 0; i < r.nstale; i++)
		free(r.stale[i]);
	free(r.stale);
	return rc;
}

/* ---- serving ------------------------------------------------------------ */

/* The slot of pub_prerender's render of dev, freed: its last one, else a
 * free one, else the next in turn (prerender_next). */
static struct stash *
prerender_slot(struct pub *p, hd_id dev)
{
	struct stash *s = NULL;

	for (size_t i = 0; i < PUB_PRERENDER_MAX && s == NULL; i++)
		if (p->prerendered[i].dev == dev)
			s = &p->prerendered[i];
	for (size_t i = 0; i < PUB_PRERENDER_MAX && s == NULL; i++)
		if (p->prerendered[i].dev == 0)
			s = &p->prerendered[i];
	if (s == NULL)
		s = &p->prerendered[p->prerender_next++ % PUB_PRERENDER_MAX];
	stash_free(s);
	return s;
}

void
pub_prerender(struct pub *p, const struct world *w, const hd_id *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);
		const struct vendor_profile *prof = d ? vendor_profile_by_name(d->profile) : NULL;
		struct stash *s;
		char e[256];

		if (prof == NULL)
			continue; /* the check says why */
		s = prerender_slot(p, d->id);
		/* as pub_check renders: its check takes it as it is */
		if (render_files(p->tmpl, w, d, prof, 0, false, s->bufs, e, sizeof(e)) != 0) {
			stash_free(s);
			continue;
		}
		s->dev = d->id;
		render_key(p, w, d, prof, s->key);
	}
}

int
pub_check(struct pub *p, const struct world *w, const hd_id *ids, size_t n, char *err,
          size_t errlen)
{
	/* a check begins a change: what an earlier one stashed is stale */
	stash_clear(p);
	for (size_t i = 0; i < n; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);
		const struct vendor_profile *prof = d ? vendor_profile_by_name(d->profile) : NULL;
		struct render_buf bufs[PUB_MAX_FILES] = { { 0 } };
		unsigned char key[16];
		char e[256];
		int rc = 0;

		if (d == NULL) /* a device being deleted: it gets no files */
			continue;
		if (prof == NULL) {
			hd_seterr(err, errlen, "device %s: unknown vendor profile", d->mac);
			return -1;
		}
		render_key(p, w, d, prof, key);
		/* the version stamp 0, as pub_update renders for the content
		 * hash (a number in place of a number renders alike); rendered
		 * ahead with the same input: taken as it is */
		if (!stash_take_from(p->prerendered, PUB_PRERENDER_MAX, d, key, bufs))
			rc = render_files(p->tmpl, w, d, prof, 0, false, bufs, e, sizeof(e));
		if (rc == 0 && p->nstash < PUB_STASH_MAX && n <= PUB_STASH_MAX) {
			struct stash *s = &p->stash[p->nstash++];

			s->dev = d->id;
			memcpy(s->key, key, sizeof(s->key));
			memcpy(s->bufs, bufs, sizeof(s->bufs));
		} else {
			for (size_t k = 0; k < PUB_MAX_FILES; k++)
				render_buf_free(&bufs[k]);
		}
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
	struct vendor_xml_memo *memo; /* an XML template's checks per shape */
};

struct pub_dry {
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

/* Renders candidate f with vals as vendor_render_* do (XML checked). */
static int
cand_run(const struct cand_file *f, const struct render_values *vals, struct render_buf *out,
         char *err, size_t errlen)
{
	return vendor_render_memo(f->tm, f->memo, vals, out, err, errlen);
}

/*
 * Whether shared file f of the dry run renders differently with the
 * candidate than with the templates in use, for one model (NULL: none).
 * 1 differs, 0 same, -1 the candidate fails (err).
 */
static int
dry_shared_differs(struct pub_dry *dr, const struct cand_file *f, const char *model, char *err,
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
		if (cand_run(f, &vals, &b, err, errlen) != 0)
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
dry_shared_memo(struct pub_dry *dr, size_t k, const char *model, char *err, size_t errlen)
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

static void
dry_one(struct pub_dry *dr, const struct hd_dev *d)
{
	struct pub_dry_dev r = { d, 0, NULL };
	struct pub_blob *cur[PUB_MAX_FILES] = { 0 };
	struct render_buf whole[PUB_MAX_FILES] = { { 0 } }; /* lazy: the files as they would be */
	bool have[PUB_MAX_FILES] = { false };               /* ... rendered from the candidate */
	struct render_input in;
	struct pub_dev *e;
	char err[256] = "";
	unsigned long long version = 0;
	unsigned char fhash[16];
	size_t nprof = dr->prof->n_device_files < PUB_MAX_FILES ? dr->prof->n_device_files
	                                                        : PUB_MAX_FILES;
	bool lazy = false;

	if (vendor_profile_by_name(d->profile) != dr->prof)
		return;
	pthread_rwlock_rdlock(&dr->p->lock);
	if ((e = idmap_get(&dr->p->by_id, d->id)) != NULL && e->profile == dr->prof) {
		version = e->version;
		lazy = e->lazy;
		memcpy(fhash, e->fhash, sizeof(fhash));
		for (size_t i = 0; i < e->nfiles; i++)
			cur[i] = pcache_blob_ref(e->files[i]);
	}
	pthread_rwlock_unlock(&dr->p->lock);
	/* Files not in memory (written, or taken as they are at a clean
	 * restart) are what the templates in use render (their key was
	 * unchanged, and any change since would have published the device):
	 * the device's files as the candidate would make them are hashed and
	 * compared with the hash of those published (below), without reading
	 * them back from the TFTP root. */
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
		if (cand_run(f, &vals, &b, err, sizeof(err)) != 0)
			r.result = -1;
		else if (lazy) {
			whole[f->index] = b;
			b = (struct render_buf){ 0 };
			have[f->index] = true;
		} else if (f->index >= PUB_MAX_FILES || cur[f->index] == NULL ||
		         cur[f->index]->len != b.len || memcmp(cur[f->index]->data, b.p, b.len) != 0)
			r.result = 1;
		render_buf_free(&b);
	}
	for (size_t i = 0; lazy && i < nprof && r.result >= 0; i++)
		if (!have[i] && /* a file of another template: as it is */
		    vendor_render_device_unchecked(dr->prof, dr->p->tmpl, i, &in, &whole[i], NULL,
		                                   err, sizeof(err)) != 0)
			r.result = -1;
	if (lazy && r.result >= 0) {
		unsigned char got[16];

		/* (a count of files unlike the profile's hashes otherwise:
		 * changed) */
		files_hash_bin(whole, nprof, got);
		if (sodium_memcmp(got, fhash, sizeof(got)) != 0)
			r.result = 1;
	}
	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		render_buf_free(&whole[i]);
	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		pub_release(cur[i]);
	r.error = r.result < 0 ? err : NULL;
	if (dr->cb(&r, dr->arg) != 0)
		dr->rc = -1;
}

/* dry_one for world_each_dev. */
static int
dry_dev(struct hd_dev *d, void *arg)
{
	struct pub_dry *dr = arg;

	dry_one(dr, d);
	return dr->rc != 0;
}

struct pub_dry *
pub_dry_open(struct pub *p, const struct vendor_profile *prof, const char *name,
             const char *src, size_t len, char *err, size_t errlen)
{
	struct pub_dry *dr = calloc(1, sizeof(*dr));
	size_t nfiles = prof->n_device_files + prof->n_shared_files;

	if (dr == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	dr->p = p;
	dr->prof = prof;
	dr->src = src;
	dr->len = len;

	for (size_t k = 0; k < nfiles; k++) {
		bool shared = k >= prof->n_device_files;
		size_t i = shared ? k - prof->n_device_files : k;
		const struct vendor_file *f = shared ? &prof->shared_files[i] : &prof->device_files[i];
		struct cand_file *cf;

		if (strcmp(f->tmpl ? f->tmpl : shared ? f->pattern : "", name) != 0)
			continue;
		if (dr->nfiles == sizeof(dr->files) / sizeof(dr->files[0])) {
			hd_seterr(err, errlen, "too many files use '%s'", name);
			goto fail;
		}
		cf = &dr->files[dr->nfiles++];
		cf->shared = shared;
		cf->index = i;
		if (f->tmpl != NULL &&
		    render_compile(src, len, f->mode, &cf->tm, err, errlen) != 0)
			goto fail;
		if (cf->tm != NULL && f->mode != RENDER_KV &&
		    (cf->memo = vendor_xml_memo_new()) == NULL) {
			hd_seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (dr->nfiles == 0) {
		hd_seterr(err, errlen, "profile %s has no template named '%s'", prof->name, name);
		goto fail;
	}
	return dr;
fail:
	pub_dry_close(dr);
	return NULL;
}

int
pub_dry_devs(struct pub_dry *dr, const struct world *w, const hd_id *ids, size_t n,
             pub_dry_cb cb, void *arg)
{
	dr->w = w;
	dr->cb = cb;
	dr->arg = arg;
	dr->rc = 0;
	for (size_t i = 0; i < n && dr->rc == 0; i++) {
		const struct hd_dev *d = world_dev(w, ids[i]);

		if (d != NULL)
			dry_one(dr, d);
	}
	dr->w = NULL;
	return dr->rc;
}

void
pub_dry_close(struct pub_dry *dr)
{
	if (dr == NULL)
		return;
	for (size_t k = 0; k < dr->nfiles; k++) {
		render_tmpl_free(dr->files[k].tm);
		vendor_xml_memo_free(dr->files[k].memo);
	}
	free(dr);
}

int
pub_dry_run(struct pub *p, const struct world *w, const struct vendor_profile *prof,
            const char *name, const char *src, size_t len, pub_dry_cb cb, void *arg,
            char *err, size_t errlen)
{
	struct pub_dry *dr = pub_dry_open(p, prof, name, src, len, err, errlen);
	int rc;

	if (dr == NULL)
		return -1;
	dr->w = w;
	dr->cb = cb;
	dr->arg = arg;
	world_each_dev(w, dry_dev, dr);
	if ((rc = dr->rc) != 0)
		hd_seterr(err, errlen, "out of memory");
	pub_dry_close(dr);
	return rc;
}

void
pub_track_begin(struct pub *p)
{
	hd_idset_clear(&p->track);
	p->tracking = true;
	p->track_lost = false;
}

int
pub_track_end(struct pub *p, struct hd_idset *out)
{
	bool ok = p->tracking && !p->track_lost;

	*out = p->track;
	memset(&p->track, 0, sizeof(p->track));
	p->tracking = false;
	p->track_lost = false;
	return ok ? 0 : -1;
}


