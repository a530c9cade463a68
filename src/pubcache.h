/*
 * pubcache.h -- the publisher's in-memory side, shared by its two files
 * (private to them: other modules use publish.h).
 *
 * struct pub and its entries are defined here.  pubcache.c owns the
 * entries' life and everything the serving side reads: blobs (immutable,
 * reference-counted, in slab memory), the maps by id and by MAC, the
 * download access settings per organization, the fetch records, the
 * shared-file cache, and the TFTP writer's view of the entries
 * (pcache_tftp_*).  publish.c renders, swaps blobs into entries under the
 * write lock, and drives the TFTP writer (tftpw.c).
 *
 * Locks: see publish.c (lock, fetch_mu, shared_mu).
 */
#ifndef HD_PUBCACHE_H
#define HD_PUBCACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "idmap.h"
#include "publish.h"
#include "render.h"
#include "tftpw.h"
#include "world.h"

#define PUB_MAX_FILES 4 /* at most 4: pub_dev.fetched holds 2 bits a file */
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
	unsigned char key[16];                /* render_key of what is published */
	unsigned char fhash[16];              /* pcache_files_hash of the files published */
	/* each file's pcache_file_sum as published, 0 unknown (a restart
	 * took the files as they were from a row without sums: an older
	 * release's): a file whose sum a change leaves as it was is not
	 * written to the TFTP root again, and a fetch of a lazy entry's file
	 * reads and checks that file only (pub_get).  Stored with the
	 * device (sql/018_file_sums.sql); never shown in an answer or a log. */
	uint64_t sum[PUB_MAX_FILES];
	/* lazy only: the files fetches read from the root without keeping
	 * them (bit i: file i read once; bit PUB_MAX_FILES + i: twice).  The
	 * third fetch of such a file loads the device's files into memory
	 * (pcache_fill, the loaded ring): a boot storm's fetches of each
	 * file, and a phone's fetch again once it applied its files, take
	 * no write lock and evict no other device's files from the ring (at
	 * 1,000,000 devices it holds 1.6 % of them: loading at the second
	 * fetch churned it); a file fetched more often is kept.  Cleared
	 * when the entry is published. */
	_Atomic unsigned char fetched;
	/* the files the TFTP writer's next job for this entry writes (bit i:
	 * file i; 0: every file), set by the publisher, taken by the job */
	_Atomic unsigned char tftp_want;
	/* files not in memory: a clean restart took them as they are in the
	 * TFTP root (same render key), or the writer wrote them there and
	 * they were dropped (pcache_tftp_written); the first read loads them
	 * (pcache_fill).  files[] are NULL while set. */
	bool lazy;
	/* files[] were loaded by a reader (pcache_fill), not published: they
	 * leave memory again, oldest first, when more than p->loaded_max
	 * entries hold such files (pub_set_loaded_max) */
	bool loaded;
	struct fetch_rec fetch;               /* under fetch_mu */
	char *prov_password;                  /* digest password (per-device auth) */
	/* the TFTP writer's job that writes these files (tftpw.h) */
	enum tftpw_queue tftp_q;
	uint64_t tftp_ticket;
	bool in_block;                        /* one of pub.block: never passed to free() */
};

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
 * A device's files as pub_check rendered them (version stamp 0, checked),
 * kept for the pub_update of the same change, so that a move renders each
 * file once (pub_prerender's, kept for the check to come, alike): used only
 * while the device's render input, its profile and the templates are
 * those it was made from (key: render_key).
 */
struct stash {
	hd_id dev;
	unsigned char key[16]; /* render_key */
	struct render_buf bufs[PUB_MAX_FILES];
};
#define PUB_STASH_MAX 8 /* a move changes two devices; larger changes: no stash */
/* renders ahead kept: the moves of four codes checked at once */
#define PUB_PRERENDER_MAX 8

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
	struct tftpw *tw;        /* NULL = no TFTP publishing */
	/* writer only: devices with TFTP names new to the manifest, their
	 * files not written yet: recorded in the open transaction (fresh:
	 * written once it commits), or not recorded (unlisted: the store
	 * failed; recorded again at the next change) */
	struct hd_idset tftp_fresh, tftp_unlisted;
	bool tftp_clean;         /* the last run stopped cleanly and no name was
	                          * added to, removed from or replaced in the root
	                          * since (its directory entry as recorded): its
	                          * files are whole and hotdeskd's */
	unsigned char build[16]; /* hash of the running hotdeskd executable */
	/* pcache_file_sum's key: kept in the store's meta (pub_reconcile),
	 * random until then; sum_key_kept: the store has it (sums are stored
	 * with each device only then) */
	unsigned char sum_key[16];
	bool sum_key_kept;
	/* pcache_etag's key, derived from sum_key (pcache_sum_key_set) */
	unsigned char etag_key[16];
	int root_fd;             /* the TFTP root, open (O_DIRECTORY); -1 none */
	unsigned char (*tkeys)[16]; /* [vendor_registry_len] vendor_templates_device_key */
	/* renders devices whose lazy files did not match (pub_set_refill) */
	void (*refill)(void *arg, hd_id dev);
	void *refill_arg;
	bool bulk;               /* writer only: queue TFTP jobs as bulk */
	/* writer only: start-up (pub_reconcile) queues new files at once,
	 * the backlog bounded, not when its transaction commits */
	bool starting;
	struct stash stash[PUB_STASH_MAX]; /* writer only: pub_check's renders */
	size_t nstash;
	/* writer only: pub_prerender's renders, which pub_check takes (dev 0:
	 * free); when none is free, each in turn (prerender_next) */
	struct stash prerendered[PUB_PRERENDER_MAX];
	size_t prerender_next;
	char *tmpl_dir, *static_dir; /* where the defaults were loaded from */
	/* writer only: the devices pub_update was given since pub_track_begin
	 * (a template save's dry run, which releases the service lock) */
	bool tracking, track_lost; /* track_lost: out of memory, incomplete */
	/* a device's files leave memory once the TFTP writer wrote them
	 * (pcache_tftp_written); readers load them back from the root */
	bool drop_written;
	struct hd_idset track;
	/* the entries whose files a reader loaded, in the order loaded (a
	 * ring; under the write lock): at most loaded_max keep them */
	struct {
		hd_id *v;
		size_t head, n, cap;
	} loaded;
	size_t loaded_max;
	/* the entries start-up makes, one after the other in one mapping
	 * whose pages are present at once (MAP_POPULATE): a calloc each
	 * page-faulted its way through the heap.  Freed with the pub; an
	 * entry of it unpublished leaves its slot unused. */
	struct pub_dev *block;
	size_t block_n, block_used;
};

/* Entries whose loaded files stay in memory (pub_set_loaded_max). */
#define PUB_LOADED_MAX 16384

/* The hash of a device's files (each length, then its bytes). */
void pcache_files_hash(const char *const data[], const size_t len[], size_t n,
                       unsigned char out[16]);
/* A file's own sum (SipHash-2-4 under p->sum_key, never 0): what tells a
 * file a change left as it was from one it changed, and a file in the
 * TFTP root as published from one that is not, once its bytes are out of
 * memory.  Keyed: the sum of a file holding a password tells nothing of
 * it without the key (and no sum leaves the process but to the store). */
uint64_t pcache_file_sum(const struct pub *p, const char *data, size_t len);
/* Sets p->sum_key (and the ETag key derived from it). */
void pcache_sum_key_set(struct pub *p, const unsigned char key[16]);
/* The ETag of a file whose pcache_file_sum is sum: quoted hex of a
 * keyed hash of the sum (SipHash-2-4-128 under a key derived from
 * p->sum_key), so it costs no pass over the file, and tells nothing of
 * the sum (which never leaves the process but to the store). */
void pcache_etag(const struct pub *p, uint64_t sum, char out[40]);
/* Loads lazy entry dev's files from the TFTP root (any thread, no lock
 * held); when they are not what was published, asks p->refill to render
 * them. */
void pcache_fill(struct pub *p, hd_id dev);
/* Reads the n files of device mac (profile prof) from the TFTP root into
 * data/len (allocated; pcache_root_free), checked against want (the
 * hash of the files published, pcache_files_hash).  0, or -1 when one is
 * missing, unreadable or they are not those files (nothing kept). */
int pcache_root_read(struct pub *p, const struct vendor_profile *prof, const char *mac,
                     size_t n, const unsigned char want[16], char *data[], size_t len[]);
void pcache_root_free(char *data[], const size_t len[], size_t n);

/* Blobs: a new one (one reference, NULL when out of memory; sum: the
 * data's pcache_file_sum if the caller has it, 0 to compute it here, for
 * the ETag), another reference on b (NULL-safe).  pub_release drops one. */
struct pub_blob *pcache_blob_new(const struct pub *p, const char *data, size_t len,
                                 unsigned long long version, uint64_t sum);
struct pub_blob *pcache_blob_ref(struct pub_blob *b);

/* The TFTP name of per-device file i of a device (derived from its MAC:
 * per-device patterns name the device by MAC only).  0 or -1. */
int pcache_file_name(const struct vendor_profile *prof, size_t i, const char *mac, char *buf,
                     size_t len);
/* The key of a MAC (12 hex digits) in by_mac. */
int64_t pcache_mac_key(const char *mac);
/* Whether some entry owns TFTP file name (lock held, or the writer). */
bool pcache_name_owned(struct pub *p, const char *name);
/* Whether name is exactly the name of one of e's files. */
bool pcache_entry_owns(const struct pub_dev *e, const char *name);

/* Frees an entry (its blobs released, its password wiped); idmap_each
 * callbacks, arg unused. */
int pcache_dev_free(void *v, void *arg);
int pcache_access_free(void *v, void *arg);
/* Brings the access settings of org o up to date (writer, wrlock held). */
void pcache_access_refresh(struct pub *p, const struct hd_org *o);
/* Empties the shared-file cache (a template changed). */
void pcache_shared_flush(struct pub *p);
/* Records a fetch read from the store (start-up). */
void pcache_fetch_set(struct fetch_rec *f, const char *source, const char *ua,
                      unsigned long long version, long long at);

bool pcache_str_eq(const char *a, const char *b); /* NULL equals only NULL */
char *pcache_dup_or_null(const char *s);

/* The TFTP writer's view of the entries (tftpw_ops; arg: the pub). */
int pcache_tftp_files(void *arg, hd_id dev, struct tftpw_file *files,
                      unsigned long long *version);
void pcache_tftp_release(void *ref);
/* The writer put dev's files (refs, of version) in place: unless the
 * entry changed since, its files leave memory (the entry turns lazy, see
 * pub_dev.lazy) when p->drop_written. */
void pcache_tftp_written(void *arg, hd_id dev, unsigned long long version, void *const *refs,
                         size_t n);
/* The root holds dev's files as published already (start-up found them
 * in place): they leave memory as if just written, when p->drop_written. */
void pcache_drop_in_place(struct pub *p, hd_id dev);
bool pcache_tftp_owned(void *arg, const char *name);

#endif
