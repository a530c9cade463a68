/*
 * world.c -- the in-memory model of organizations, extensions and devices.
 *
 * Objects live in three id-keyed tables; secondary indexes map natural keys
 * (org name, MAC, sip_user, parking user, org+number) to ids.  All tables
 * are open-addressing hash maps with linear probing and tombstones, sized
 * to powers of two and grown at 50% load (or sized once, world_reserve,
 * before a load).  The string indexes hold ids only (below).
 *
 * Objects loaded from the store are packed (world_ext_pack,
 * world_dev_pack): the struct, its line keys and its strings one after
 * the other, in the world's arena (blocks mapped with their pages faulted
 * in at once, freed with the world).  The free functions free a string
 * only when it lies outside that tail, so a packed object may still get a
 * string of its own, and never free an object of the arena: they wipe it
 * (and, built with AddressSanitizer, poison it: a use after it was
 * replaced is still caught).
 *
 * Invariants kept by every function here:
 *   W1 every index entry points at a live object whose key it is;
 *   W2 ext->home_dev == d->id  iff  d->home_ext == ext->id;
 *   W3 dev->guest == e->id     iff  e->virtual_on == dev->id.
 * The virtualization rules (I1-I4) are not this file's business: see virt.c.
 */
#include "world.h"

#include "bigmap.h"
#include "errbuf.h"
#include "idmap.h"
#include "poison.h"
#include "wipe.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>


/* ---- hash maps ---------------------------------------------------------- */

/*
 * String-keyed indexes that store only ids.  A slot holds the id of the
 * object whose key it indexes; the key itself is read from the object
 * (its name, MAC, sip_user, parking user, or organization + number), so
 * the index holds no copy of any string.  Hence the rule every function
 * below follows: an object's entries are deleted while it is still in its
 * id table, and added once it is.
 *
 * Beside each slot, the high half of its key's hash (a tag): a probe
 * reads the object, and the string behind it, only when the tags agree,
 * not for every occupied slot it passes (three cache misses each: the
 * id table, the object, the string).
 */
enum skind { SK_ORG_NAME, SK_MAC, SK_SIP_USER, SK_PARKING, SK_NUMBER };

#define SLOT_EMPTY 0
#define SLOT_TOMB (-1)

struct smap {
	enum skind kind;
	hd_id *s;
	uint32_t *tag;  /* [cap]: tag_of the key's hash of each live slot */
	size_t cap, used, live;
};

static uint64_t
hash_key(hd_id scope, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)scope * 0x9e3779b97f4a7c15ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static uint32_t
tag_of(uint64_t h)
{
	return (uint32_t)(h >> 32);
}

/* The key of object id in this index (NULL when it has none). */
static const char *
skey(const struct world *w, enum skind k, hd_id id, hd_id *scope)
{
	const struct hd_ext *e;
	const struct hd_dev *d;
	const struct hd_org *o;

	*scope = 0;
	switch (k) {
	case SK_ORG_NAME:
		return (o = world_org(w, id)) ? o->name : NULL;
	case SK_MAC:
		return (d = world_dev(w, id)) ? d->mac : NULL;
	case SK_PARKING:
		return (d = world_dev(w, id)) ? d->parking_user : NULL;
	case SK_SIP_USER:
		return (e = world_ext(w, id)) ? e->sip_user : NULL;
	case SK_NUMBER:
		if ((e = world_ext(w, id)) == NULL)
			return NULL;
		*scope = e->org;
		return e->number;
	}
	return NULL;
}

/* Moves every live entry into a new table of ncap slots.  0, or -1 out
 * of memory (the map unchanged). */
static int
smap_rehash(struct smap *m, const struct world *w, size_t ncap)
{
	struct smap old = *m;

	m->s = bigmap_table(ncap, sizeof(*m->s));
	m->tag = bigmap_table(ncap, sizeof(*m->tag));
	if (m->s == NULL || m->tag == NULL) {
		bigmap_table_free(m->s, ncap, sizeof(*m->s));
		bigmap_table_free(m->tag, ncap, sizeof(*m->tag));
		*m = old;
		return -1;
	}
	m->cap = ncap;
	m->used = m->live = 0;
	for (size_t i = 0; i < old.cap; i++) {
		hd_id id = old.s[i], scope;
		const char *k;
		uint64_t h;

		if (id == SLOT_EMPTY || id == SLOT_TOMB || (k = skey(w, m->kind, id, &scope)) == NULL)
			continue;
		h = hash_key(scope, k);
		for (size_t j = h & (ncap - 1);; j = (j + 1) & (ncap - 1)) {
			if (m->s[j] == SLOT_EMPTY) {
				m->s[j] = id;
				m->tag[j] = tag_of(h);
				m->used++;
				m->live++;
				break;
			}
		}
	}
	bigmap_table_free(old.s, old.cap, sizeof(*old.s));
	bigmap_table_free(old.tag, old.cap, sizeof(*old.tag));
	return 0;
}

static int
smap_grow(struct smap *m, const struct world *w)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;

	if (m->live * 4 < m->cap)
		ncap = m->cap;
	return smap_rehash(m, w, ncap);
}

/* Room for n entries in all without growing (as idmap_reserve). */
static int
smap_reserve(struct smap *m, const struct world *w, size_t n)
{
	size_t ncap = 64;

	while (ncap / 2 <= n) {
		if (ncap > SIZE_MAX / 4)
			return -1;
		ncap *= 2;
	}
	return ncap <= m->cap ? 0 : smap_rehash(m, w, ncap);
}

static hd_id *
smap_find_h(const struct smap *m, const struct world *w, hd_id scope, const char *key,
            uint64_t h)
{
	uint32_t t = tag_of(h);

	if (m->cap == 0)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		hd_id id = m->s[i], sc;
		const char *k;

		if (id == SLOT_EMPTY)
			return NULL;
		if (id != SLOT_TOMB && m->tag[i] == t && (k = skey(w, m->kind, id, &sc)) != NULL &&
		    sc == scope && strcmp(k, key) == 0)
			return &m->s[i];
	}
}

static hd_id *
smap_find(const struct smap *m, const struct world *w, hd_id scope, const char *key)
{
	return smap_find_h(m, w, scope, key, hash_key(scope, key));
}

static hd_id
smap_get(const struct smap *m, const struct world *w, hd_id scope, const char *key)
{
	hd_id *s = smap_find(m, w, scope, key);

	return s ? *s : 0;
}

/*
 * Adds object id (already in its id table) under its key, which m does
 * not hold: world_put_* checked that no other object has it (taken) and
 * removed the object's old keys, so it is not looked up again (at
 * start-up every object is put once).  0, or -1.
 */
static int
smap_add(struct smap *m, const struct world *w, hd_id scope, const char *key, hd_id id)
{
	uint64_t h = hash_key(scope, key);

	if ((m->used + 1) * 2 > m->cap && smap_grow(m, w) == -1)
		return -1;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->s[i] == SLOT_EMPTY || m->s[i] == SLOT_TOMB) {
			if (m->s[i] == SLOT_EMPTY)
				m->used++;
			m->s[i] = id;
			m->tag[i] = tag_of(h);
			m->live++;
			return 0;
		}
	}
}

/* Removes the entry of key (its object still in its id table). */
static void
smap_del(struct smap *m, const struct world *w, hd_id scope, const char *key)
{
	hd_id *s = smap_find(m, w, scope, key);

	if (s != NULL) {
		*s = SLOT_TOMB;
		m->live--;
	}
}

static void
smap_free(struct smap *m)
{
	bigmap_table_free(m->s, m->cap, sizeof(*m->s));
	bigmap_table_free(m->tag, m->cap, sizeof(*m->tag));
}

/* ---- the arena of loaded rows ------------------------------------------- */

/*
 * Blocks of anonymous memory (bigmap_alloc): their pages come zeroed and
 * present in one system call, where rows calloc'ed one by one each
 * touched fresh heap pages (a page fault every dozen rows, a quarter of a
 * restart's time at 100,000 devices on a virtual machine), and blocks of
 * 2 MiB and more in huge pages.  A block is 256 KiB, then twice the last
 * up to 4 MiB (a small world maps little; at most one block's tail is
 * mapped unused).
 */
struct arena_block {
	struct arena_block *next;
	size_t size, used;
};

#define ARENA_FIRST ((size_t)256 << 10)
#define ARENA_MAX ((size_t)4 << 20)
#define ARENA_ALIGN 16
#define ARENA_HEAD ((sizeof(struct arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

/* ---- the world ---------------------------------------------------------- */

struct world {
	struct idmap orgs, exts, devs;
	struct smap org_name, mac, sip_user, parking, number;
	struct arena_block *arena; /* the newest block first */
};

/* n zeroed bytes in w's arena; NULL when out of memory, or when n is too
 * large for a block (the caller allocates it on its own). */
static void *
arena_alloc(struct world *w, size_t n)
{
	struct arena_block *b = w->arena;
	void *r;

	if (n > ARENA_MAX / 16)
		return NULL;
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (b == NULL || b->size - b->used < n) {
		size_t size = b == NULL ? ARENA_FIRST : b->size * 2 > ARENA_MAX ? ARENA_MAX : b->size * 2;
		void *m = bigmap_alloc(size);

		if (m == NULL)
			return NULL;
		b = m;
		b->next = w->arena;
		b->size = size;
		b->used = ARENA_HEAD;
		w->arena = b;
	}
	r = (char *)b + b->used;
	b->used += n;
	return r;
}

static void
arena_free(struct world *w)
{
	while (w->arena != NULL) {
		struct arena_block *b = w->arena;

		w->arena = b->next;
		HD_UNPOISON(b, b->size); /* a later mapping there starts clean */
		bigmap_free(b, b->size);
	}
}

struct world *
world_new(void)
{
	struct world *w = calloc(1, sizeof(struct world));

	if (w != NULL) {
		w->org_name.kind = SK_ORG_NAME;
		w->mac.kind = SK_MAC;
		w->sip_user.kind = SK_SIP_USER;
		w->parking.kind = SK_PARKING;
		w->number.kind = SK_NUMBER;
	}
	return w;
}

int
world_reserve(struct world *w, size_t orgs, size_t exts, size_t devs, size_t parking)
{
	if (idmap_reserve(&w->orgs, orgs) != 0 || smap_reserve(&w->org_name, w, orgs) != 0 ||
	    idmap_reserve(&w->exts, exts) != 0 || smap_reserve(&w->number, w, exts) != 0 ||
	    smap_reserve(&w->sip_user, w, exts) != 0 || idmap_reserve(&w->devs, devs) != 0 ||
	    smap_reserve(&w->mac, w, devs) != 0 || smap_reserve(&w->parking, w, parking) != 0)
		return -1;
	return 0;
}

static int
free_org(void *v, void *arg)
{
	hd_org_free(v);
	return 0;
}

static int
free_ext(void *v, void *arg)
{
	hd_ext_free(v);
	return 0;
}

static int
free_dev(void *v, void *arg)
{
	hd_dev_free(v);
	return 0;
}

void
world_free(struct world *w)
{
	if (w == NULL)
		return;
	idmap_each(&w->orgs, free_org, NULL);
	idmap_each(&w->exts, free_ext, NULL);
	idmap_each(&w->devs, free_dev, NULL);
	idmap_free(&w->orgs);
	idmap_free(&w->exts);
	idmap_free(&w->devs);
	smap_free(&w->org_name);
	smap_free(&w->mac);
	smap_free(&w->sip_user);
	smap_free(&w->parking);
	smap_free(&w->number);
	arena_free(w);
	free(w);
}

/* ---- object copies ------------------------------------------------------ */

static int
dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

static int
sip_dup(struct hd_sip_server *dst, const struct hd_sip_server *src)
{
	dst->port = src->port;
	return dup_str(&dst->host, src->host) | dup_str(&dst->transport, src->transport);
}

static void
sip_free(struct hd_sip_server *s)
{
	free(s->host);
	free(s->transport);
}

void
hd_org_free(struct hd_org *o)
{
	if (o == NULL)
		return;
	free(o->name);
	free(o->display_name);
	sip_free(&o->sip);
	free(o->prov.user);
	wipe_free(o->prov.password);
	free(o->prov.networks);
	free(o->site.ntp_server);
	free(o->site.language);
	free(o);
}

/* Whether s lies in the packed tail of obj (size bytes of struct, then
 * tail bytes of keys and strings): not an allocation of its own. */
static bool
in_tail(const void *obj, size_t size, size_t tail, const void *s)
{
	uintptr_t b = (uintptr_t)obj + size, a = (uintptr_t)s;

	return tail > 0 && s != NULL && a >= b && a < b + tail;
}

/* Frees a string of obj unless it lies in its packed tail. */
static void
tail_free(const void *obj, size_t size, size_t tail, char *s)
{
	if (!in_tail(obj, size, tail, s))
		free(s);
}

/* The same for a secret: wiped either way (a packed tail is wiped whole
 * when the object is freed). */
static void
tail_wipe_free(const void *obj, size_t size, size_t tail, char *s)
{
	if (!in_tail(obj, size, tail, s))
		wipe_free(s);
}

void
hd_ext_free(struct hd_ext *e)
{
	if (e == NULL)
		return;
	tail_free(e, sizeof(*e), e->packed, e->number);
	tail_free(e, sizeof(*e), e->packed, e->sip_user);
	tail_wipe_free(e, sizeof(*e), e->packed, e->sip_password);
	tail_free(e, sizeof(*e), e->packed, e->display_name);
	tail_free(e, sizeof(*e), e->packed, e->label);
	tail_free(e, sizeof(*e), e->packed, e->voicemail);
	tail_free(e, sizeof(*e), e->packed, e->language);
	hd_keys_clear(e);
	tail_free(e, sizeof(*e), e->packed, e->sip.host);
	tail_free(e, sizeof(*e), e->packed, e->sip.transport);
	wipe_free(e->secret_hash); /* never packed */
	if (e->packed > 0)
		sodium_memzero(e + 1, e->packed); /* the SIP password */
	if (e->arena)
		HD_POISON(e, sizeof(*e) + e->packed);
	else
		free(e);
}

void
hd_dev_free(struct hd_dev *d)
{
	if (d == NULL)
		return;
	tail_free(d, sizeof(*d), d->packed, d->profile);
	tail_free(d, sizeof(*d), d->packed, d->model);
	tail_free(d, sizeof(*d), d->packed, d->parking_user);
	tail_wipe_free(d, sizeof(*d), d->packed, d->parking_password);
	tail_free(d, sizeof(*d), d->packed, d->static_contact);
	tail_wipe_free(d, sizeof(*d), d->packed, d->prov_password);
	if (d->packed > 0)
		sodium_memzero(d + 1, d->packed); /* the passwords */
	if (d->arena)
		HD_POISON(d, sizeof(*d) + d->packed);
	else
		free(d);
}

struct hd_org *
hd_org_dup(const struct hd_org *o)
{
	struct hd_org *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->id = o->id;
	c->prov.auth = o->prov.auth;
	c->site.utc_offset = o->site.utc_offset;
	c->site.dst = o->site.dst;
	c->prov.client_cert = o->prov.client_cert;
	if (dup_str(&c->name, o->name) | dup_str(&c->display_name, o->display_name) |
	    dup_str(&c->site.ntp_server, o->site.ntp_server) |
	    dup_str(&c->site.language, o->site.language) |
	    sip_dup(&c->sip, &o->sip) | dup_str(&c->prov.user, o->prov.user) |
	    dup_str(&c->prov.password, o->prov.password) |
	    dup_str(&c->prov.networks, o->prov.networks)) {
		hd_org_free(c);
		return NULL;
	}
	return c;
}

struct hd_ext *
hd_ext_dup(const struct hd_ext *e)
{
	struct hd_ext *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->id = e->id;
	c->org = e->org;
	c->allow_virtualization = e->allow_virtualization;
	c->has_secret = e->has_secret;
	c->virtual_on = e->virtual_on;
	c->home_dev = e->home_dev;
	if (dup_str(&c->number, e->number) | dup_str(&c->sip_user, e->sip_user) |
	    dup_str(&c->sip_password, e->sip_password) |
	    dup_str(&c->display_name, e->display_name) | dup_str(&c->label, e->label) |
	    dup_str(&c->voicemail, e->voicemail) | dup_str(&c->language, e->language) |
	    sip_dup(&c->sip, &e->sip) | dup_str(&c->secret_hash, e->secret_hash)) {
		hd_ext_free(c);
		return NULL;
	}
	if (e->nkeys > 0 && (c->keys = calloc(e->nkeys, sizeof(*c->keys))) == NULL) {
		hd_ext_free(c);
		return NULL;
	}
	for (size_t i = 0; i < e->nkeys && i < HD_MAX_KEYS; i++) {
		c->keys[i].type = e->keys[i].type;
		c->nkeys = i + 1;
		if (dup_str(&c->keys[i].value, e->keys[i].value) |
		    dup_str(&c->keys[i].label, e->keys[i].label)) {
			hd_ext_free(c);
			return NULL;
		}
	}
	return c;
}

/* Packing: sizes first (pack_len), then the copies (pack_str) into the
 * tail that follows the struct. */
static size_t
pack_len(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

static char *
pack_str(char **at, const char *s)
{
	size_t n = pack_len(s);
	char *r = *at;

	if (s == NULL)
		return NULL;
	memcpy(r, s, n);
	*at += n;
	return r;
}

/* The bytes after the struct that a packed copy of e takes. */
static size_t
ext_tail(const struct hd_ext *e)
{
	size_t nk = e->nkeys < HD_MAX_KEYS ? e->nkeys : HD_MAX_KEYS;
	size_t tail = nk * sizeof(struct hd_key) + pack_len(e->number) + pack_len(e->sip_user) +
	              pack_len(e->sip_password) + pack_len(e->display_name) +
	              pack_len(e->label) + pack_len(e->voicemail) + pack_len(e->language) +
	              pack_len(e->sip.host) + pack_len(e->sip.transport);

	for (size_t i = 0; i < nk; i++)
		tail += pack_len(e->keys[i].value) + pack_len(e->keys[i].label);
	return tail;
}

/* n zeroed bytes for a packed copy: in w's arena when w is given and
 * the copy fits a block (*arena set), else an allocation of its own. */
static void *
pack_alloc(struct world *w, size_t n, bool *arena)
{
	void *c = w != NULL ? arena_alloc(w, n) : NULL;

	*arena = c != NULL;
	return c != NULL ? c : calloc(1, n);
}

/* A packed copy of e, in w's arena when w is given (pack_alloc). */
struct hd_ext *
world_ext_pack(struct world *w, const struct hd_ext *e)
{
	size_t nk = e->nkeys < HD_MAX_KEYS ? e->nkeys : HD_MAX_KEYS, tail = ext_tail(e);
	bool arena;
	struct hd_ext *c = pack_alloc(w, sizeof(*c) + tail, &arena);
	char *at;

	if (c == NULL)
		return NULL;
	c->arena = arena;
	c->packed = tail;
	c->id = e->id;
	c->org = e->org;
	c->sip.port = e->sip.port;
	c->allow_virtualization = e->allow_virtualization;
	c->has_secret = e->has_secret || e->secret_hash != NULL;
	c->virtual_on = e->virtual_on;
	c->home_dev = e->home_dev;
	at = (char *)(c + 1);
	if (nk > 0) {
		c->keys = (struct hd_key *)(void *)at;
		at += nk * sizeof(struct hd_key);
		for (size_t i = 0; i < nk; i++) {
			c->keys[i].type = e->keys[i].type;
			c->keys[i].value = pack_str(&at, e->keys[i].value);
			c->keys[i].label = pack_str(&at, e->keys[i].label);
		}
		c->nkeys = nk;
	}
	c->number = pack_str(&at, e->number);
	c->sip_user = pack_str(&at, e->sip_user);
	c->sip_password = pack_str(&at, e->sip_password);
	c->display_name = pack_str(&at, e->display_name);
	c->label = pack_str(&at, e->label);
	c->voicemail = pack_str(&at, e->voicemail);
	c->language = pack_str(&at, e->language);
	c->sip.host = pack_str(&at, e->sip.host);
	c->sip.transport = pack_str(&at, e->sip.transport);
	return c;
}


static size_t
dev_tail(const struct hd_dev *d)
{
	return pack_len(d->profile) + pack_len(d->model) + pack_len(d->parking_user) +
	       pack_len(d->parking_password) + pack_len(d->static_contact) +
	       pack_len(d->prov_password);
}

struct hd_dev *
world_dev_pack(struct world *w, const struct hd_dev *d)
{
	size_t tail = dev_tail(d);
	bool arena;
	struct hd_dev *c = pack_alloc(w, sizeof(*c) + tail, &arena);
	char *at;

	if (c == NULL)
		return NULL;
	c->arena = arena;
	c->packed = tail;
	c->id = d->id;
	c->org = d->org;
	memcpy(c->mac, d->mac, sizeof(c->mac));
	c->home_ext = d->home_ext;
	c->guest = d->guest;
	at = (char *)(c + 1);
	c->profile = pack_str(&at, d->profile);
	c->model = pack_str(&at, d->model);
	c->parking_user = pack_str(&at, d->parking_user);
	c->parking_password = pack_str(&at, d->parking_password);
	c->static_contact = pack_str(&at, d->static_contact);
	c->prov_password = pack_str(&at, d->prov_password);
	return c;
}


struct hd_dev *
hd_dev_dup(const struct hd_dev *d)
{
	struct hd_dev *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->id = d->id;
	c->org = d->org;
	memcpy(c->mac, d->mac, sizeof(c->mac));
	c->home_ext = d->home_ext;
	c->guest = d->guest;
	if (dup_str(&c->profile, d->profile) | dup_str(&c->model, d->model) |
	    dup_str(&c->parking_user, d->parking_user) |
	    dup_str(&c->parking_password, d->parking_password) |
	    dup_str(&c->static_contact, d->static_contact) |
	    dup_str(&c->prov_password, d->prov_password)) {
		hd_dev_free(c);
		return NULL;
	}
	return c;
}

/* ---- lookups ------------------------------------------------------------ */


struct hd_org *
world_org(const struct world *w, hd_id id)
{
	return idmap_get(&w->orgs, id);
}

struct hd_org *
world_org_by_name(const struct world *w, const char *name)
{
	return name ? world_org(w, smap_get(&w->org_name, w, 0, name)) : NULL;
}

struct hd_ext *
world_ext(const struct world *w, hd_id id)
{
	return idmap_get(&w->exts, id);
}

struct hd_ext *
world_ext_by_sip_user(const struct world *w, const char *sip_user)
{
	return sip_user ? world_ext(w, smap_get(&w->sip_user, w, 0, sip_user)) : NULL;
}

struct hd_ext *
world_ext_by_number(const struct world *w, hd_id org, const char *number)
{
	return number ? world_ext(w, smap_get(&w->number, w, org, number)) : NULL;
}

struct hd_dev *
world_dev(const struct world *w, hd_id id)
{
	return idmap_get(&w->devs, id);
}

struct hd_dev *
world_dev_by_mac(const struct world *w, const char *mac12)
{
	return mac12 ? world_dev(w, smap_get(&w->mac, w, 0, mac12)) : NULL;
}

struct hd_dev *
world_dev_by_parking_user(const struct world *w, const char *sip_user)
{
	return sip_user ? world_dev(w, smap_get(&w->parking, w, 0, sip_user)) : NULL;
}

/* ---- uniqueness checks -------------------------------------------------- */

/* Whether key in m is taken by an id other than self. */
static bool
taken(const struct world *w, const struct smap *m, hd_id scope, const char *key, hd_id self)
{
	hd_id other;

	if (key == NULL)
		return false;
	other = smap_get(m, w, scope, key);
	return other != 0 && other != self;
}

int
world_check_ext(const struct world *w, const struct hd_ext *e, char *err, size_t errlen)
{

	if (world_org(w, e->org) == NULL) {
		hd_seterr(err, errlen, "no such organization");
		return -1;
	}
	if (taken(w, &w->number, e->org, e->number, e->id)) {
		hd_seterr(err, errlen, "number %s already exists in this organization", e->number);
		return -1;
	}
	if (taken(w, &w->sip_user, 0, e->sip_user, e->id) || world_dev_by_parking_user(w, e->sip_user)) {
		hd_seterr(err, errlen, "sip_user is already used");
		return -1;
	}
	return 0;
}

int
world_check_dev(const struct world *w, const struct hd_dev *d, char *err, size_t errlen)
{
	if (world_org(w, d->org) == NULL) {
		hd_seterr(err, errlen, "no such organization");
		return -1;
	}
	if (taken(w, &w->mac, 0, d->mac, d->id)) {
		hd_seterr(err, errlen, "mac %s already exists", d->mac);
		return -1;
	}
	if (d->parking_user != NULL &&
	    (taken(w, &w->parking, 0, d->parking_user, d->id) ||
	     world_ext_by_sip_user(w, d->parking_user))) {
		hd_seterr(err, errlen, "parking sip_user is already used");
		return -1;
	}
	if (d->home_ext != 0) {
		struct hd_ext *h = world_ext(w, d->home_ext);

		if (h == NULL || h->org != d->org) {
			hd_seterr(err, errlen, "home extension not in the device's organization");
			return -1;
		}
		if (h->home_dev != 0 && h->home_dev != d->id) {
			struct hd_dev *other = world_dev(w, h->home_dev);

			hd_seterr(err, errlen, "extension %s is already home on device %s",
			          h->number, other ? other->mac : "?");
			return -1;
		}
	}
	return 0;
}

/* ---- changes ------------------------------------------------------------ */

int
world_put_org(struct world *w, struct hd_org *o, char *err, size_t errlen)
{
	struct hd_org *old = world_org(w, o->id);

	if (taken(w, &w->org_name, 0, o->name, o->id)) {
		hd_seterr(err, errlen, "organization %s already exists", o->name);
		hd_org_free(o);
		return -1;
	}
	if (old != NULL)
		smap_del(&w->org_name, w, 0, old->name);
	if (idmap_put(&w->orgs, o->id, o) == -1)
		goto oom;
	if (smap_add(&w->org_name, w, 0, o->name, o->id) == -1)
		goto oom;
	hd_org_free(old);
	return 0;
oom:
	hd_seterr(err, errlen, "out of memory");
	return -1;
}

int
world_put_ext(struct world *w, struct hd_ext *e, char *err, size_t errlen)
{
	struct hd_ext *old = world_ext(w, e->id);

	if (world_check_ext(w, e, err, errlen) == -1) {
		hd_ext_free(e);
		return -1;
	}
	if (e->secret_hash != NULL) {
		e->has_secret = true;
		wipe_free(e->secret_hash);
		e->secret_hash = NULL;
	}
	if (old != NULL) {
		smap_del(&w->number, w, old->org, old->number);
		smap_del(&w->sip_user, w, 0, old->sip_user);
		e->home_dev = old->home_dev;
		if (old->virtual_on != e->virtual_on) {
			struct hd_dev *od = world_dev(w, old->virtual_on);

			if (od != NULL && od->guest == e->id)
				od->guest = 0;
		}
	} else {
		e->home_dev = 0;
	}
	if (idmap_put(&w->exts, e->id, e) == -1 || smap_add(&w->number, w, e->org, e->number, e->id) == -1 ||
	    smap_add(&w->sip_user, w, 0, e->sip_user, e->id) == -1) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (e->virtual_on != 0) {
		struct hd_dev *d = world_dev(w, e->virtual_on);

		if (d != NULL)
			d->guest = e->id;
	}
	hd_ext_free(old);
	return 0;
}

int
world_put_dev(struct world *w, struct hd_dev *d, char *err, size_t errlen)
{
	struct hd_dev *old = world_dev(w, d->id);

	if (world_check_dev(w, d, err, errlen) == -1) {
		hd_dev_free(d);
		return -1;
	}
	d->guest = 0;
	if (old != NULL) {
		smap_del(&w->mac, w, 0, old->mac);
		if (old->parking_user)
			smap_del(&w->parking, w, 0, old->parking_user);
		d->guest = old->guest;
		if (old->home_ext != d->home_ext) {
			struct hd_ext *h = world_ext(w, old->home_ext);

			if (h != NULL)
				h->home_dev = 0;
		}
	}
	if (idmap_put(&w->devs, d->id, d) == -1 || smap_add(&w->mac, w, 0, d->mac, d->id) == -1 ||
	    (d->parking_user && smap_add(&w->parking, w, 0, d->parking_user, d->id) == -1)) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (d->home_ext != 0)
		world_ext(w, d->home_ext)->home_dev = d->id;
	hd_dev_free(old);
	return 0;
}

void
world_del_org(struct world *w, hd_id id)
{
	struct hd_org *o = world_org(w, id);

	if (o == NULL)
		return;
	smap_del(&w->org_name, w, 0, o->name);
	idmap_del(&w->orgs, id);
	hd_org_free(o);
}

void
world_del_ext(struct world *w, hd_id id)
{
	struct hd_ext *e = world_ext(w, id);

	if (e == NULL)
		return;
	if (e->home_dev) {
		struct hd_dev *d = world_dev(w, e->home_dev);

		if (d != NULL)
			d->home_ext = 0;
	}
	if (e->virtual_on) {
		struct hd_dev *d = world_dev(w, e->virtual_on);

		if (d != NULL && d->guest == id)
			d->guest = 0;
	}
	smap_del(&w->number, w, e->org, e->number);
	smap_del(&w->sip_user, w, 0, e->sip_user);
	idmap_del(&w->exts, id);
	hd_ext_free(e);
}

void
world_del_dev(struct world *w, hd_id id)
{
	struct hd_dev *d = world_dev(w, id);

	if (d == NULL)
		return;
	if (d->home_ext) {
		struct hd_ext *h = world_ext(w, d->home_ext);

		if (h != NULL)
			h->home_dev = 0;
	}
	if (d->guest) {
		struct hd_ext *g = world_ext(w, d->guest);

		if (g != NULL && g->virtual_on == id)
			g->virtual_on = 0;
	}
	smap_del(&w->mac, w, 0, d->mac);
	if (d->parking_user)
		smap_del(&w->parking, w, 0, d->parking_user);
	idmap_del(&w->devs, id);
	hd_dev_free(d);
}

void
world_set_virtual_on(struct world *w, hd_id ext, hd_id dev)
{
	struct hd_ext *e = world_ext(w, ext);
	struct hd_dev *d;

	if (e == NULL)
		return;
	if (e->virtual_on != 0 && (d = world_dev(w, e->virtual_on)) != NULL && d->guest == ext)
		d->guest = 0;
	e->virtual_on = dev;
	if (dev != 0 && (d = world_dev(w, dev)) != NULL)
		d->guest = ext;
}

/* ---- iteration ---------------------------------------------------------- */

int
world_each_org(const struct world *w, world_org_cb cb, void *arg)
{
	return idmap_each(&w->orgs, (idmap_cb)cb, arg);
}

int
world_each_ext(const struct world *w, world_ext_cb cb, void *arg)
{
	return idmap_each(&w->exts, (idmap_cb)cb, arg);
}

int
world_each_dev(const struct world *w, world_dev_cb cb, void *arg)
{
	return idmap_each(&w->devs, (idmap_cb)cb, arg);
}

int
world_walk_devs(const struct world *w, struct idmap_walk *c, size_t n, world_dev_cb cb,
                void *arg)
{
	return idmap_walk_step(&w->devs, c, n, (idmap_cb)cb, arg);
}

size_t
world_count_orgs(const struct world *w)
{
	return idmap_count(&w->orgs);
}

size_t
world_count_exts(const struct world *w)
{
	return idmap_count(&w->exts);
}

size_t
world_count_devs(const struct world *w)
{
	return idmap_count(&w->devs);
}

/* ---- small values ------------------------------------------------------- */

int
hd_mac_normalize(const char *in, char out[HD_MAC_LEN + 1])
{
	size_t n = 0;

	if (in == NULL)
		return -1;
	for (const char *p = in; *p; p++) {
		if (*p == ':' || *p == '-') {
			/* separators only between pairs of digits */
			if (n == 0 || n % 2 != 0 || p[1] == '\0')
				return -1;
			continue;
		}
		if (!isxdigit((unsigned char)*p) || n == HD_MAC_LEN)
			return -1;
		out[n++] = (char)tolower((unsigned char)*p);
	}
	if (n != HD_MAC_LEN)
		return -1;
	out[n] = '\0';
	return 0;
}

/*
 * Small sets are searched linearly; from IDSET_INDEX_MIN members on, a
 * hash index makes membership O(1) (template changes and resyncs of whole
 * organizations hand tens of thousands of devices around).
 */
#define IDSET_INDEX_MIN 32

static int
idset_index(struct hd_idset *s)
{
	if ((s->idx = calloc(1, sizeof(*s->idx))) == NULL)
		return -1;
	for (size_t i = 0; i < s->n; i++)
		if (idmap_put(s->idx, s->v[i], (void *)1) != 0)
			return -1;
	return 0;
}

int
hd_idset_add(struct hd_idset *s, hd_id id)
{
	if (hd_idset_has(s, id))
		return 0;
	return hd_idset_push(s, id);
}

int
hd_idset_push(struct hd_idset *s, hd_id id)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 8;
		hd_id *v = realloc(s->v, ncap * sizeof(*v));

		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = ncap;
	}
	s->v[s->n++] = id;
	if (s->idx != NULL)
		return idmap_put(s->idx, id, (void *)1);
	return s->n >= IDSET_INDEX_MIN ? idset_index(s) : 0;
}

bool
hd_idset_has(const struct hd_idset *s, hd_id id)
{
	if (s->idx != NULL)
		return idmap_get(s->idx, id) != NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

void
hd_idset_clear(struct hd_idset *s)
{
	s->n = 0;
	if (s->idx != NULL) {
		idmap_free(s->idx);
		free(s->idx);
		s->idx = NULL;
	}
}

void
hd_idset_free(struct hd_idset *s)
{
	hd_idset_clear(s);
	free(s->v);
	s->v = NULL;
	s->cap = 0;
}

/* ---- line keys as stored ------------------------------------------------ */

bool
hd_dial_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++)
		if (!isdigit((unsigned char)s[n]) && s[n] != '*' && s[n] != '#' && s[n] != '+')
			return false;
	return n >= 1 && n <= 32;
}

void
hd_keys_clear(struct hd_ext *e)
{
	for (size_t i = 0; e->keys != NULL && i < e->nkeys && i < HD_MAX_KEYS; i++) {
		tail_free(e, sizeof(*e), e->packed, e->keys[i].value);
		tail_free(e, sizeof(*e), e->packed, e->keys[i].label);
	}
	if (!in_tail(e, sizeof(*e), e->packed, e->keys))
		free(e->keys);
	e->keys = NULL;
	e->nkeys = 0;
}

char *
hd_keys_format(const struct hd_ext *e, bool *oom)
{
	size_t len = 1;
	char *out, *p;

	*oom = false;
	if (e->nkeys == 0)
		return NULL;
	for (size_t i = 0; i < e->nkeys; i++)
		len += 4 + strlen(e->keys[i].value) + 1 +
		       (e->keys[i].label ? strlen(e->keys[i].label) : 0) + 1;
	if ((out = malloc(len)) == NULL) {
		*oom = true;
		return NULL;
	}
	p = out;
	for (size_t i = 0; i < e->nkeys; i++) {
		int n = snprintf(p, len - (size_t)(p - out), "%s\t%s\t%s\n",
		                 e->keys[i].type == HD_KEY_BLF ? "blf" : "sd", e->keys[i].value,
		                 e->keys[i].label ? e->keys[i].label : "");
		if (n < 0 || (size_t)n >= len - (size_t)(p - out)) { /* cannot happen: sized above */
			free(out);
			*oom = true;
			return NULL;
		}
		p += n;
	}
	return out;
}

int
hd_keys_parse(struct hd_ext *e, const char *text)
{
	size_t lines = 0;

	hd_keys_clear(e);
	for (const char *l = text; l != NULL && *l != '\0'; lines++)
		l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "";
	if (lines > HD_MAX_KEYS)
		return -1;
	if (lines > 0 && (e->keys = calloc(lines, sizeof(*e->keys))) == NULL)
		return -1;
	for (const char *l = text; l != NULL && *l != '\0';) {
		const char *eol = strchr(l, '\n'), *t1, *t2;
		struct hd_key *k;

		if (eol == NULL)
			eol = l + strlen(l);
		t1 = memchr(l, '\t', (size_t)(eol - l));
		t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(eol - t1 - 1)) : NULL;
		if (t2 == NULL || e->nkeys == HD_MAX_KEYS)
			goto bad;
		k = &e->keys[e->nkeys];
		if ((size_t)(t1 - l) == 3 && memcmp(l, "blf", 3) == 0)
			k->type = HD_KEY_BLF;
		else if ((size_t)(t1 - l) == 2 && memcmp(l, "sd", 2) == 0)
			k->type = HD_KEY_SPEED_DIAL;
		else
			goto bad;
		k->value = strndup(t1 + 1, (size_t)(t2 - t1 - 1));
		k->label = t2 + 1 < eol ? strndup(t2 + 1, (size_t)(eol - t2 - 1)) : NULL;
		e->nkeys++;
		if (k->value == NULL || (t2 + 1 < eol && k->label == NULL) || !hd_dial_ok(k->value))
			goto bad;
		l = *eol ? eol + 1 : eol;
	}
	return 0;
bad:
	hd_keys_clear(e);
	return -1;
}
