/*
 * pubcache.c -- the publisher's in-memory cache (pubcache.h): published
 * blobs, the entries by id and by MAC, download access settings, fetch
 * records, shared files rendered on request, and what the TFTP writer
 * reads of it.  Every serving path of publish.h (pub_get, pub_fetched,
 * pub_with_access, ...) lives here; none renders a per-device file.
 */
#include "pubcache.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "fsutil.h"
#include "poison.h"
#include "log.h"
#include "metrics.h"
#include "slab.h"
#include "vendor.h"
#include "wipe.h"
#include "lockorder.h" /* the publisher's locks, ranked in publish.c */

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

void
pcache_fetch_set(struct fetch_rec *f, const char *source, const char *ua,
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
int
pcache_file_name(const struct vendor_profile *prof, size_t i, const char *mac, char *buf,
              size_t len)
{
	return i < prof->n_device_files ? vendor_file_name(&prof->device_files[i], mac, NULL, buf, len)
	                                : -1;
}

int64_t
pcache_mac_key(const char *mac)
{
	uint64_t v = 0;

	/* as strtoull(mac, NULL, 16) for its 12 hex digits, at a tenth of
	 * the cost (every fetch, and each device and name at start-up) */
	for (size_t i = 0; i < 16; i++) {
		unsigned c = (unsigned char)mac[i];

		if (c - '0' < 10)
			v = v << 4 | (c - '0');
		else if ((c | 0x20) - 'a' < 6)
			v = v << 4 | ((c | 0x20) - 'a' + 10);
		else
			break;
	}
	return (int64_t)v;
}

/* A blob of len bytes, data not filled in (one reference; heap: malloc'd,
 * else from the slab); NULL when out of memory. */
static struct pub_blob *
blob_alloc(size_t len, unsigned long long version, bool heap)
{
	size_t n = sizeof(struct pub_blob) + len + 1;
	struct pub_blob *b = heap ? malloc(n) : slab_alloc(n);

	if (b == NULL)
		return NULL;
	atomic_init(&b->refs, 1);
	b->version = version;
	b->heap = heap;
	b->len = len;
	b->etag[0] = '\0';
	b->data[len] = '\0';
	return b;
}

struct pub_blob *
pcache_blob_new(const struct pub *p, const char *data, size_t len, unsigned long long version,
                uint64_t sum)
{
	struct pub_blob *b = blob_alloc(len, version, false);

	if (b == NULL)
		return NULL;
	memcpy(b->data, data, len);
	pcache_etag(p, sum != 0 ? sum : pcache_file_sum(p, data, len), b->etag);
	return b;
}

void
pub_release(struct pub_blob *b)
{
	if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1) {
		sodium_memzero(b->data, b->len); /* may hold SIP passwords */
		if (b->heap)
			free(b);
		else
			slab_free(b, sizeof(*b) + b->len + 1);
	}
}

struct pub_blob *
pcache_blob_ref(struct pub_blob *b)
{
	if (b != NULL)
		atomic_fetch_add(&b->refs, 1);
	return b;
}

int
pcache_dev_free(void *v, void *arg)
{
	struct pub_dev *d = v;

	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		pub_release(d->files[i]);
	wipe_free(d->prov_password);
	if (d->in_block)
		HD_POISON(d, sizeof(*d)); /* unmapped with the pub */
	else
		free(d);
	return 0;
}

int
pcache_access_free(void *v, void *arg)
{
	struct pub_access *a = v;

	free(a->user);
	wipe_free(a->password);
	free(a->nets_src);
	cfg_netlist_free(&a->nets);
	free(a);
	return 0;
}

bool
pcache_str_eq(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

char *
pcache_dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Brings the access settings of org o up to date (writer, under wrlock). */
void
pcache_access_refresh(struct pub *p, const struct hd_org *o)
{
	struct pub_access *a = idmap_get(&p->access, o->id), *n;
	char msg[128];

	if (a != NULL && a->auth == o->prov.auth && a->client_cert == o->prov.client_cert &&
	    pcache_str_eq(a->user, o->prov.user) &&
	    pcache_str_eq(a->password, o->prov.password) && pcache_str_eq(a->nets_src, o->prov.networks))
		return;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return;
	n->auth = o->prov.auth;
	n->client_cert = o->prov.client_cert;
	n->user = pcache_dup_or_null(o->prov.user);
	n->password = pcache_dup_or_null(o->prov.password);
	n->nets_src = pcache_dup_or_null(o->prov.networks);
	if (o->prov.networks != NULL &&
	    cfg_netlist_parse(o->prov.networks, &n->nets, msg, sizeof(msg)) != 0) {
		/* validated by the API; an unparsable list allows nothing */
		log_error("organization %s: download networks: %s", o->name, msg);
		n->nets.n = 0;
		n->auth = HD_PROV_DEVICE; /* and no device password: refuse */
	}
	if (idmap_put(&p->access, o->id, n) != 0) {
		pcache_access_free(n, NULL);
		return;
	}
	if (a != NULL)
		pcache_access_free(a, NULL);
}

void
pcache_shared_flush(struct pub *p)
{
	pthread_mutex_lock(&p->shared_mu);
	for (size_t i = 0; i < p->nshared; i++)
		pub_release(p->shared[i].blob);
	p->nshared = 0;
	pthread_mutex_unlock(&p->shared_mu);
}

int
pcache_tftp_files(void *arg, hd_id dev, struct tftpw_file *files, unsigned long long *version)
{
	struct pub *p = arg;
	struct pub_dev *e;
	int n = -1;

	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL) {
		/* the files the publisher found changed since this job's last
		 * run; none noted: every file */
		unsigned want = atomic_exchange(&e->tftp_want, 0);

		n = 0;
		*version = e->version;
		for (size_t i = 0; i < e->nfiles && i < TFTPW_MAX_FILES; i++) {
			if ((want != 0 && !(want & 1u << i)) || e->files[i] == NULL ||
			    pcache_file_name(e->profile, i, e->mac, files[n].name, sizeof(files[n].name)) != 0)
				continue;
			files[n].ref = pcache_blob_ref(e->files[i]);
			files[n].data = e->files[i]->data;
			files[n].len = e->files[i]->len;
			n++;
		}
	}
	pthread_rwlock_unlock(&p->lock);
	return n;
}

void
pcache_tftp_release(void *ref)
{
	pub_release(ref);
}

bool
pcache_tftp_owned(void *arg, const char *name)
{
	struct pub *p = arg;
	bool owned;

	pthread_rwlock_rdlock(&p->lock);
	owned = pcache_name_owned(p, name);
	pthread_rwlock_unlock(&p->lock);
	return owned;
}

/* Whether some device entry owns TFTP file `name`. */
bool
pcache_name_owned(struct pub *p, const char *name)
{
	struct vendor_file_match m;
	struct pub_dev *e;

	if (vendor_match_file(name, &m) != 1 || m.kind != VENDOR_DEVICE)
		return false;
	if ((e = idmap_get(&p->by_mac, pcache_mac_key(m.mac))) == NULL)
		return false;
	return pcache_entry_owns(e, name);
}

bool
pcache_entry_owns(const struct pub_dev *e, const char *name)
{
	for (size_t i = 0; i < e->nfiles; i++) {
		char own[VENDOR_NAME_MAX + 1];

		if (pcache_file_name(e->profile, i, e->mac, own, sizeof(own)) == 0 &&
		    strcmp(own, name) == 0)
			return true;
	}
	return false;
}

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
			blob = pcache_blob_ref(s->blob);
			goto out;
		}
	}
	if (vendor_render_shared(m->profile, p->tmpl, m->file_index, m->model[0] ? m->model : NULL,
	                         &b, err, sizeof(err)) != 0) {
		log_warn("shared file of %s: %s", m->profile->name, err);
		goto out;
	}
	if ((blob = pcache_blob_new(p, b.p, b.len, 0, 0)) == NULL)
		goto out;
	if (p->nshared < SHARED_MAX) {
		struct shared_entry *s = &p->shared[p->nshared++];

		s->profile = m->profile;
		s->index = m->file_index;
		snprintf(s->model, sizeof(s->model), "%s", m->model);
		s->blob = pcache_blob_ref(blob);
	}
out:
	pthread_mutex_unlock(&p->shared_mu);
	render_buf_free(&b);
	return blob;
}

void
pcache_files_hash(const char *const data[], const size_t len[], size_t n, unsigned char out[16])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 16);
	for (size_t i = 0; i < n; i++) {
		unsigned char l8[8];
		uint64_t l = len[i];

		for (int k = 0; k < 8; k++)
			l8[k] = (unsigned char)(l >> (8 * k));
		crypto_generichash_update(&st, l8, sizeof(l8));
		crypto_generichash_update(&st, (const unsigned char *)data[i], len[i]);
	}
	crypto_generichash_final(&st, out, 16);
}

uint64_t
pcache_file_sum(const struct pub *p, const char *data, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(out, (const unsigned char *)data, len, p->sum_key);
	for (size_t i = 0; i < sizeof(v) && i < sizeof(out); i++)
		v = v << 8 | out[i];
	return v != 0 ? v : 1;
}

void
pcache_sum_key_set(struct pub *p, const unsigned char key[16])
{
	static const unsigned char ctx[] = "hotdeskd ETag of a file's sum";

	memcpy(p->sum_key, key, sizeof(p->sum_key));
	/* a key of its own: an ETag is no function of the sum key's outputs
	 * that could be compared with a sum */
	crypto_generichash(p->etag_key, sizeof(p->etag_key), ctx, sizeof(ctx) - 1, key, 16);
}

void
pcache_etag(const struct pub *p, uint64_t sum, char out[40])
{
	unsigned char in[8], h[crypto_shorthash_siphashx24_BYTES];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(sum >> (8 * i));
	crypto_shorthash_siphashx24(h, in, sizeof(in), p->etag_key);
	out[0] = '"';
	sodium_bin2hex(out + 1, 2 * sizeof(h) + 1, h, sizeof(h));
	out[1 + 2 * sizeof(h)] = '"';
	out[2 + 2 * sizeof(h)] = '\0';
}

/* fs_read_at_into's room: a blob of the file's size (struct blob_read) */
struct blob_read {
	struct pub_blob *b;
	unsigned long long version;
	bool heap;
};

static char *
blob_room(void *arg, size_t len)
{
	struct blob_read *r = arg;

	return (r->b = blob_alloc(len, r->version, r->heap)) != NULL ? r->b->data : NULL;
}

/* Reads file name from the TFTP root straight into a new blob (heap:
 * malloc'd, for one answer; else in the slab, to keep) and checks it
 * against sum (a file's pcache_file_sum, not 0): the blob, its ETag set,
 * or NULL when the file is missing, unreadable, not as published, or
 * memory is short (nothing kept; what was read is wiped). */
static struct pub_blob *
blob_read_checked(struct pub *p, const char *name, uint64_t sum, unsigned long long version,
                  bool heap)
{
	struct blob_read r = { NULL, version, heap };
	size_t len = 0;

	if (fs_read_at_into(p->root_fd, name, VENDOR_FILE_MAX, blob_room, &r, &len) == NULL ||
	    pcache_file_sum(p, r.b->data, len) != sum) {
		pub_release(r.b); /* NULL-safe; wipes what was read */
		return NULL;
	}
	pcache_etag(p, sum, r.b->etag);
	return r.b;
}

/* Frees what pcache_root_read read. */
void
pcache_root_free(char *data[], const size_t len[], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (data[i] != NULL) {
			sodium_memzero(data[i], len[i]); /* may hold SIP passwords */
			free(data[i]);
		}
		data[i] = NULL;
	}
}

int
pcache_root_read(struct pub *p, const struct vendor_profile *prof, const char *mac, size_t n,
                 const unsigned char want[16], char *data[], size_t len[])
{
	unsigned char got[16];
	bool ok = p->tw != NULL && prof != NULL && n <= PUB_MAX_FILES;

	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		data[i] = NULL;
		len[i] = 0;
	}
	/* the files as the writer (or a clean stop) left them: whole, and
	 * what was published as long as they hash as it */
	for (size_t i = 0; ok && i < n; i++) {
		char name[VENDOR_NAME_MAX + 1];

		if (pcache_file_name(prof, i, mac, name, sizeof(name)) != 0 ||
		    (data[i] = fs_read_file(tftpw_root(p->tw), name, VENDOR_FILE_MAX, &len[i])) == NULL)
			ok = false;
	}
	if (ok) {
		pcache_files_hash((const char *const *)data, len, n, got);
		ok = sodium_memcmp(got, want, sizeof(got)) == 0;
	}
	if (!ok)
		pcache_root_free(data, len, PUB_MAX_FILES);
	return ok ? 0 : -1;
}

void
pub_set_loaded_max(struct pub *p, size_t max)
{
	p->loaded_max = max;
}

static int
count_resident(void *v, void *arg)
{
	const struct pub_dev *e = v;

	if (!e->lazy && e->nfiles > 0)
		(*(size_t *)arg)++;
	return 0;
}

size_t
pub_resident(struct pub *p)
{
	size_t n = 0;

	pthread_rwlock_rdlock(&p->lock);
	idmap_each(&p->by_id, count_resident, &n);
	pthread_rwlock_unlock(&p->lock);
	return n;
}

/* Notes that entry dev now holds files a reader loaded; when that makes
 * more than loaded_max, the entry loaded longest ago that still holds
 * its loaded files turns lazy again: its blobs go to drop[] (released by
 * the caller without the lock).  Write lock held. */
static void
loaded_note(struct pub *p, hd_id dev, struct pub_blob *drop[PUB_MAX_FILES])
{
	size_t max = p->loaded_max != 0 ? p->loaded_max : PUB_LOADED_MAX;

	if (p->loaded.cap != max + 1) { /* first use: the ring, once */
		hd_id *v = calloc(max + 1, sizeof(*v));

		if (v == NULL)
			return; /* out of memory: nothing is counted, nothing leaves */
		free(p->loaded.v);
		p->loaded.v = v;
		p->loaded.cap = max + 1;
		p->loaded.head = p->loaded.n = 0;
	}
	p->loaded.v[(p->loaded.head + p->loaded.n++) % p->loaded.cap] = dev;
	while (p->loaded.n > max) {
		hd_id old = p->loaded.v[p->loaded.head];
		struct pub_dev *e;

		p->loaded.head = (p->loaded.head + 1) % p->loaded.cap;
		p->loaded.n--;
		/* gone, published since (not loaded), or noted again later */
		if ((e = idmap_get(&p->by_id, old)) == NULL || !e->loaded || e->lazy || old == dev)
			continue;
		for (size_t i = 0; i < PUB_MAX_FILES; i++) {
			drop[i] = e->files[i];
			e->files[i] = NULL;
		}
		e->loaded = false;
		e->lazy = true;
		break; /* one in, one out */
	}
}

void
pcache_fill(struct pub *p, hd_id dev)
{
	char *data[PUB_MAX_FILES] = { 0 };
	size_t len[PUB_MAX_FILES] = { 0 }, n = 0;
	struct pub_blob *nb[PUB_MAX_FILES] = { 0 }, *drop[PUB_MAX_FILES] = { 0 };
	unsigned char want[16];
	unsigned long long version = 0;
	uint64_t sum[PUB_MAX_FILES];
	char mac[HD_MAC_LEN + 1] = "";
	const struct vendor_profile *prof;
	struct pub_dev *e;
	bool ok, sums = true;

	pthread_rwlock_rdlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) == NULL || !e->lazy) {
		pthread_rwlock_unlock(&p->lock);
		return;
	}
	n = e->nfiles < PUB_MAX_FILES ? e->nfiles : PUB_MAX_FILES;
	prof = e->profile;
	memcpy(want, e->fhash, sizeof(want));
	memcpy(mac, e->mac, sizeof(mac));
	version = e->version;
	memcpy(sum, e->sum, sizeof(sum));
	for (size_t i = 0; i < n; i++)
		sums = sums && sum[i] != 0;
	pthread_rwlock_unlock(&p->lock);

	if (sums && p->root_fd != -1) {
		/* each file's sum known: each read straight into its blob and
		 * checked against its sum (no copy, no hash of the set) */
		ok = true;
		for (size_t i = 0; ok && i < n; i++) {
			char name[VENDOR_NAME_MAX + 1];

			ok = pcache_file_name(prof, i, mac, name, sizeof(name)) == 0 &&
			     (nb[i] = blob_read_checked(p, name, sum[i], version, false)) != NULL;
		}
	} else {
		/* sums unknown (a row of an older release): the set's hash */
		ok = pcache_root_read(p, prof, mac, n, want, data, len) == 0;
		for (size_t i = 0; ok && i < n; i++)
			if ((nb[i] = pcache_blob_new(p, data[i], len[i], version, 0)) == NULL)
				ok = false;
	}
	if (ok) {
		pthread_rwlock_wrlock(&p->lock);
		/* unless a publication replaced them meanwhile */
		if ((e = idmap_get(&p->by_id, dev)) != NULL && e->lazy && e->version == version &&
		    memcmp(e->fhash, want, sizeof(want)) == 0) {
			for (size_t i = 0; i < n; i++) {
				e->files[i] = nb[i];
				nb[i] = NULL;
			}
			e->lazy = false;
			e->loaded = true;
			loaded_note(p, dev, drop);
			metrics_inc(METRICS_FILES_LOADED, 1);
		}
		pthread_rwlock_unlock(&p->lock);
	}
	for (size_t i = 0; i < PUB_MAX_FILES; i++) {
		pub_release(nb[i]);
		pub_release(drop[i]);
	}
	pcache_root_free(data, len, PUB_MAX_FILES);
	if (!ok && p->refill != NULL) {
		log_warn("device %s: its TFTP files are not what was published: rendering them", mac);
		p->refill(p->refill_arg, dev);
	}
}

/* The root holds exactly e's files: they leave memory, their references
 * go to drop[] (write lock held).  A reader loads them back from the root
 * (pcache_fill, checked against e->fhash). */
static void
drop_locked(struct pub_dev *e, struct pub_blob *drop[PUB_MAX_FILES])
{
	for (size_t i = 0; i < e->nfiles && i < PUB_MAX_FILES; i++) {
		drop[i] = e->files[i];
		e->files[i] = NULL;
	}
	e->lazy = true;
}

void
pcache_tftp_written(void *arg, hd_id dev, unsigned long long version, void *const *refs,
                    size_t n)
{
	struct pub *p = arg;
	struct pub_blob *drop[PUB_MAX_FILES] = { 0 };
	struct pub_dev *e;
	bool same;

	if (!p->drop_written || n == 0 || n > PUB_MAX_FILES)
		return;
	pthread_rwlock_wrlock(&p->lock);
	e = idmap_get(&p->by_id, dev);
	/* the files written are those published now (the others were in
	 * place already: pcache_tftp_files wrote only the changed ones) */
	same = e != NULL && !e->lazy && e->version == version && n <= e->nfiles;
	for (size_t i = 0; same && i < n; i++) {
		bool found = false;

		for (size_t j = 0; j < e->nfiles && !found; j++)
			found = (void *)e->files[j] == refs[i];
		same = found;
	}
	if (same)
		drop_locked(e, drop);
	pthread_rwlock_unlock(&p->lock);
	for (size_t i = 0; i < n; i++)
		pub_release(drop[i]); /* the writer still holds its reference */
	if (same)
		metrics_inc(METRICS_FILES_DROPPED, 1);
}

void
pcache_drop_in_place(struct pub *p, hd_id dev)
{
	struct pub_blob *drop[PUB_MAX_FILES] = { 0 };
	struct pub_dev *e;
	bool dropped = false;

	if (!p->drop_written)
		return;
	pthread_rwlock_wrlock(&p->lock);
	if ((e = idmap_get(&p->by_id, dev)) != NULL && !e->lazy) {
		drop_locked(e, drop);
		dropped = true;
	}
	pthread_rwlock_unlock(&p->lock);
	for (size_t i = 0; i < PUB_MAX_FILES; i++)
		pub_release(drop[i]);
	if (dropped)
		metrics_inc(METRICS_FILES_DROPPED, 1);
}

/* Fills ref with a reference to file i of entry e, if published (lock
 * held by the caller). */
static void
ref_file(struct pub_ref *ref, const struct pub_dev *e, size_t i)
{
	if (i >= e->nfiles || e->files[i] == NULL)
		return;
	ref->blob = pcache_blob_ref(e->files[i]);
	ref->per_device = true;
	ref->dev = e->id;
	ref->org = e->org;
	memcpy(ref->mac, e->mac, sizeof(ref->mac));
}

/* The entry of mac, or NULL, with the read lock taken (the caller
 * releases it); an entry whose files are not in memory (lazy: taken as
 * they are at start-up, or dropped once written) has them loaded first
 * (pcache_fill).  A load that found them not as published renders them
 * (the refill), and the writer may drop that render again once it wrote
 * it: then the root holds it, and the next pass loads it.  A lazy entry
 * whose loads all failed has no files (404). */
static struct pub_dev *
entry_rdlock(struct pub *p, const char *mac)
{
	for (int pass = 0;; pass++) {
		struct pub_dev *e;
		hd_id lazy;

		pthread_rwlock_rdlock(&p->lock);
		e = idmap_get(&p->by_mac, pcache_mac_key(mac));
		if (e == NULL || !e->lazy || pass > 2)
			return e;
		lazy = e->id;
		pthread_rwlock_unlock(&p->lock);
		pcache_fill(p, lazy);
	}
}

/* What a fetch of one lazy file needs of its entry (copied under the
 * read lock). */
struct lazy_file {
	hd_id dev, org;
	char mac[HD_MAC_LEN + 1];
	const struct vendor_profile *prof;
	size_t index;
	unsigned long long version;
	uint64_t sum;
};

/* Whether entry dev still publishes what lf was copied from (lazy, same
 * version and sum); read lock taken here. */
static bool
lazy_file_current(struct pub *p, const struct lazy_file *lf)
{
	const struct pub_dev *e;
	bool cur;

	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_id, lf->dev);
	cur = e != NULL && e->lazy && e->version == lf->version && e->profile == lf->prof &&
	      lf->index < e->nfiles && e->sum[lf->index] == lf->sum;
	pthread_rwlock_unlock(&p->lock);
	return cur;
}

/*
 * A fetch of file `name` of a lazy entry (its files not in memory) whose
 * sum is known, the first or second since the entry was published: reads
 * that file only from the TFTP root (openat on p->root_fd, no symbolic
 * link followed), checks it against its sum and serves it from the buffer
 * read, without keeping it (no write lock, no other file read, no hash of
 * the set).  1 served (ref filled); 0 not for this path (no such entry,
 * not lazy, sum unknown, fetched twice before: the caller loads the
 * entry's files, pcache_fill).  A file missing or not as published is never
 * served: the device is rendered again (p->refill) and 0 returned, the
 * caller serving that render.
 */
static int
lazy_file_get(struct pub *p, const char *name, const struct vendor_file_match *m,
              struct pub_ref *ref)
{
	struct vendor_file_match dm;
	struct lazy_file lf;
	struct pub_dev *e;
	char fname[VENDOR_NAME_MAX + 1];
	unsigned bit;

	if (p->root_fd == -1)
		return 0;
	pthread_rwlock_rdlock(&p->lock);
	e = idmap_get(&p->by_mac, pcache_mac_key(m->mac));
	if (e == NULL || !e->lazy) {
		pthread_rwlock_unlock(&p->lock);
		return 0;
	}
	lf.index = m->file_index;
	if (e->profile != m->profile) {
		/* the same name in another family: the device's own profile */
		if (vendor_profile_match_file(e->profile, name, &dm) != 1 || dm.kind != VENDOR_DEVICE) {
			pthread_rwlock_unlock(&p->lock);
			return 0;
		}
		lf.index = dm.file_index;
	}
	/* bit: fetched once; bit << PUB_MAX_FILES: twice (pub_dev.fetched) */
	bit = lf.index < PUB_MAX_FILES ? 1u << lf.index : 0;
	if (bit == 0 || lf.index >= e->nfiles || e->sum[lf.index] == 0 ||
	    ((atomic_fetch_or(&e->fetched, bit) & bit) != 0 &&
	     (atomic_fetch_or(&e->fetched, bit << PUB_MAX_FILES) & bit << PUB_MAX_FILES) != 0)) {
		pthread_rwlock_unlock(&p->lock);
		return 0;
	}
	lf.dev = e->id;
	lf.org = e->org;
	memcpy(lf.mac, e->mac, sizeof(lf.mac));
	lf.prof = e->profile;
	lf.version = e->version;
	lf.sum = e->sum[lf.index];
	pthread_rwlock_unlock(&p->lock);

	/* read straight into a blob of this answer's (malloc'd: freed, and
	 * wiped, once sent), its ETag from the sum just checked */
	if (pcache_file_name(lf.prof, lf.index, lf.mac, fname, sizeof(fname)) == 0 &&
	    (ref->blob = blob_read_checked(p, fname, lf.sum, lf.version, true)) != NULL) {
		ref->per_device = true;
		ref->dev = lf.dev;
		ref->org = lf.org;
		memcpy(ref->mac, lf.mac, sizeof(ref->mac));
		return 1;
	}
	/* published anew meanwhile (the writer replaced the file): the
	 * caller serves what is published now; else the root's copy is
	 * missing or not what was published */
	if (lazy_file_current(p, &lf) && p->refill != NULL) {
		log_warn("device %s: its TFTP files are not what was published: rendering them",
		         lf.mac);
		p->refill(p->refill_arg, lf.dev);
	}
	return 0;
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
	if (lazy_file_get(p, name, &m, ref) == 1)
		return 1;
	e = entry_rdlock(p, m.mac);
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
	if ((e = entry_rdlock(p, mac)) != NULL)
		ref_file(ref, e, 0);
	pthread_rwlock_unlock(&p->lock);
	return ref->blob != NULL;
}
