/*
 * publish.h -- rendered phone configuration, kept in memory for HTTP and
 * written atomically to the TFTP root.
 *
 * The publisher renders a device's files when something changes (the
 * service's change hook, a template change, start-up), never per request.
 * Each rendered file is an immutable, reference-counted blob: an HTTP
 * response holds a reference while it is sent, and a re-render swaps in a
 * new blob without waiting for readers.  A device's configuration version
 * increases whenever the content of any of its files changes; it is
 * persisted with a content hash so versions survive restarts.
 *
 * Threads: pub_update / pub_reconcile / pub_template_set
 * / pub_dry_run / pub_preview / pub_shared_refresh are called by one writer
 * at a time (under the service lock); pub_get, pub_fetched and the readers
 * may run on any thread at the same time.
 *
 * Invariant (I5 of SPEC 2.1): after pub_update returns, what pub_get
 * serves for each device equals the render of its current carried()
 * identity, and so does what the TFTP root holds once the TFTP writer ran
 * the jobs pub_update queued (pub_settle, pub_tftp_wait; pub_reconcile
 * returns with the root complete) -- unless rendering failed, in which
 * case the last good file stays and an event "render.failed" is
 * recorded.
 */
#ifndef HD_PUBLISH_H
#define HD_PUBLISH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "vendor.h"
#include "world.h"

struct store;

struct pub_opts {
	const char *templates;  /* directory of the default templates */
	const char *static_dir; /* directory of static vendor files */
	const char *tftp_root;  /* NULL = no TFTP publishing */
};

/* One published file: immutable once published. */
struct pub_blob {
	atomic_int refs;
	unsigned long long version; /* the device's configuration version (0 shared) */
	/* quoted, ready for the header: a one-way function of the file's
	 * sum (pcache_etag), so the same bytes have the same ETag whichever
	 * way they are served (in memory, read from the TFTP root) */
	char etag[40];
	bool heap;                  /* malloc'd (a single fetch's), not in the slab */
	size_t len;
	char data[];                /* NUL-terminated */
};

/* The last configuration fetch of a device (user_agent: always "" from
 * pub_fetch_info; the store's device_fetch keeps it). */
struct pub_fetch {
	char source[64];            /* "ip" of the client */
	char user_agent[160];
	unsigned long long version; /* version it received */
	long long at;               /* 0 = never */
};

struct pub;

struct pub *pub_new(const struct pub_opts *o, char *err, size_t errlen);
void pub_free(struct pub *p); /* NULL-safe */

/*
 * Renders every device of the world, keeps versions in step with the
 * store, writes what is missing or stale to the TFTP root, removes the
 * files of devices that no longer exist (only files hotdeskd wrote), and
 * writes the shared files.  Start-up, inside the caller's transaction
 * (svc_transact).  Returns 0, or -1 with err.
 */
int pub_reconcile(struct pub *p, const struct world *w, struct store *st, char *err,
                  size_t errlen);

/*
 * Re-renders devices (ids of the world; an id no longer in the world has
 * its files removed).  Devices whose content changed are pushed to
 * `changed` when it is not NULL.  Render failures keep the last good file
 * and record an event.  What it records goes in the caller's transaction
 * (the service's change hook); st may be NULL (nothing recorded).
 * Returns 0, or -1 when out of memory.
 */
int pub_update(struct pub *p, const struct world *w, struct store *st, const hd_id *ids,
               size_t n, struct hd_idset *changed);
/* Hands the memory freed by a large change (old files, render buffers,
 * a template save's lists) back to the system; any thread. */
void pub_give_back(void);

/* What pub_get found. */
struct pub_ref {
	struct pub_blob *blob;      /* a reference: release with pub_release */
	bool per_device;
	hd_id dev, org;             /* per-device files */
	char mac[HD_MAC_LEN + 1];
};

/*
 * Looks a requested file name up.  Returns 1 (ref filled, holding a
 * reference), 0 when no such file is published (unknown name or MAC),
 * -1 when name is not a plain file name.
 */
int pub_get(struct pub *p, const char *name, struct pub_ref *ref);
/* The same for a device by MAC (12 lowercase hex): its first file. */
int pub_get_device(struct pub *p, const char *mac, struct pub_ref *ref);
/* Drops a reference.  NULL-safe; safe from any thread. */
void pub_release(struct pub_blob *b);

/*
 * The TFTP root follows memory on the publisher's writer thread
 * (tftpw.h): pub_update swaps the files in memory and queues them.
 * pub_settle waits until every file the calling thread queued is in the
 * TFTP root (an API answer is sent after it); pub_tftp_wait waits until
 * device dev's files are (a NOTIFY is sent after it).  Neither holds a
 * lock while it waits.  No-ops without a TFTP root.
 */
void pub_settle(struct pub *p);
/* Around a request's change: pub_settle_ahead says the calling thread
 * will pub_settle (its urgent TFTP jobs then wake no writer thread: it
 * writes them itself), pub_settle_done ends that once the latency-bound
 * work is done (the writer then hears of the files to remove). */
void pub_settle_ahead(struct pub *p);
void pub_settle_done(struct pub *p);
/* The urgent files queued so far go to the writer thread at once
 * (tftpw_start): for a change that has its transaction still to commit
 * when it is published, so that both are done at once. */
void pub_tftp_start(struct pub *p);
void pub_tftp_wait(struct pub *p, hd_id dev);
/* Waits (no lock held) until at most max devices wait for the TFTP
 * writer's bulk queue: a long re-render keeps no more than that many
 * devices' files in memory only for the writer.  No-op without a TFTP
 * root. */
void pub_tftp_backlog(struct pub *p, size_t max);
/*
 * A device's file goes into the TFTP root only once its name is in the
 * store's manifest (tftp_files, committed), so that start-up can remove
 * it after its device is gone.  Files whose names the store could not
 * record wait unwritten; this records them and queues them (service lock
 * held; the main loop calls it every few seconds, each change too).
 * Cheap when none wait.
 */
void pub_tftp_relist(struct pub *p, struct store *st);
/*
 * A clean stop: writes what is queued, syncs the TFTP root and records
 * that in the store, so the next start checks files by size only (without
 * the record it compares every file's content: a crash or a power loss may
 * have torn one).  Nothing is published after it.  Writer only (under the
 * service lock).
 */
void pub_stop(struct pub *p, struct store *st);
/*
 * Start-up, before pub_reconcile and outside any transaction: whether the
 * last run stopped cleanly with this TFTP root (then pub_reconcile checks
 * files by size, else by content), and from now on not: the record goes,
 * durably, before any file is written.  0, or -1 with err.
 *
 * After a clean stop that left the root's directory as it was (no name
 * added, removed or renamed since: pub_stop records its state), a device
 * whose render key (its render input, its profile's templates, the
 * build) is the one stored with its version is not rendered at all: its
 * files are taken as they are, and read from the TFTP root when fetched
 * (each file checked against its own sum, stored with the version, or,
 * for a row without sums, the device's files against the hash of what
 * was published; when they differ, the refill function renders and
 * publishes the device).
 */
int pub_tftp_take_clean(struct pub *p, struct store *st, char *err, size_t errlen);

/*
 * The function a reader calls when a device's files read from the root
 * are not as published (see pub_tftp_take_clean): it must call
 * pub_refill with the world, under the lock writers hold.  Set before
 * serving; without one such a file is not served.
 */
void pub_set_refill(struct pub *p, void (*fn)(void *arg, hd_id dev), void *arg);
/* Files that left memory once written are read from the root by the
 * fetches that need them: the first fetch of a file (its sum known)
 * reads that file and keeps nothing; a file fetched again loads the
 * device's files back.  At most max devices (0: PUB_LOADED_MAX, 16,384)
 * keep theirs, the longest loaded leave again, so that memory does not
 * grow with the number of devices fetched.  Before serving. */
void pub_set_loaded_max(struct pub *p, size_t max);
/* The number of devices whose files are in memory now. */
size_t pub_resident(struct pub *p);
/* Renders device dev and publishes it, in memory and in the TFTP root,
 * even when its content is unchanged.  Writer only.  0, or -1 (no such
 * device, or it does not render). */
int pub_refill(struct pub *p, const struct world *w, struct store *st, hd_id dev);

/*
 * The download access settings that apply to a per-device file: calls fn
 * with them (borrowed for the call, which runs under the publisher's read
 * lock: keep it short) and returns what fn returns.  auth NONE and nets
 * NULL when the organization sets nothing.
 */
struct cfg_netlist;
struct pub_access_view {
	enum hd_prov_auth auth;
	const char *user;          /* digest user name (the MAC for per-device) */
	const char *password;      /* NULL: no password set (refuse) */
	const struct cfg_netlist *nets; /* NULL or empty: any source */
	enum hd_prov_cert client_cert;  /* factory certificate needed? */
	const char *profile;            /* the device's vendor profile name, or NULL */
};
typedef int (*pub_access_fn)(const struct pub_access_view *v, void *arg);
int pub_with_access(struct pub *p, const struct pub_ref *ref, pub_access_fn fn, void *arg);

/*
 * Records a device's configuration fetch.  Returns true when it is news
 * (another version, address or User-Agent than the last fetch recorded), false
 * for a repeat, which then takes no lock but the read lock.
 */
struct sockaddr;
bool pub_fetched(struct pub *p, hd_id dev, const struct sockaddr *peer, const char *user_agent,
                 unsigned long long version, long long now);
/* Makes the device's next fetch news, whatever it repeats (a resync that
 * waits for a version the phone may already have); what is recorded of
 * the last fetch stays. */
void pub_fetch_forget(struct pub *p, hd_id dev);
/* The last fetch of a device (zeroed if none); 1 if the device is known. */
int pub_fetch_info(struct pub *p, hd_id dev, struct pub_fetch *out);
/* The current configuration version of a device, 0 if unknown. */
unsigned long long pub_version(struct pub *p, hd_id dev);

/*
 * Renders the per-device files of devices ids (of w) and throws them
 * away: whether a change that leaves the world as w can be published
 * (the service's check hook, svc_check_hook).  Ids no longer in w are
 * skipped.  Returns 0, or -1 with err naming the first device that fails
 * and why (a template position or a variable, never a value).  Writer
 * only.
 */
int pub_check(struct pub *p, const struct world *w, const hd_id *ids, size_t n, char *err,
              size_t errlen);

/*
 * Renders ahead what pub_check would render for ids (of w), and keeps it
 * for a check to come: one that finds a device's render input, profile
 * and templates as they were here takes the files as they are (the
 * service's ahead hook, svc_prerender_hook: a move rendered while its code is
 * checked).  A device that fails is left to the check, which says why.
 * The last PUB_PRERENDER_MAX devices' renders are kept.  Writer only.
 */
void pub_prerender(struct pub *p, const struct world *w, const hd_id *ids, size_t n);

/*
 * Renders one device's files for a preview, without publishing: its
 * per-device files (shared = false), then the shared files of its profile
 * whose name needs no model (shared = true), each through cb (data
 * borrowed for the call; it may hold the SIP password: never log it).
 * redact: line.password is rendered as "********".  Returns 0, -1 with
 * err (a render failed), or cb's non-zero answer as -1.  Writer only.
 */
typedef int (*pub_preview_cb)(const char *name, const char *data, size_t len, bool shared,
                              void *arg);
int pub_preview(struct pub *p, const struct world *w, const struct hd_dev *d, bool redact,
                pub_preview_cb cb, void *arg, char *err, size_t errlen);

/*
 * What installing src as template or static file `name` of profile prof
 * would change, changing nothing.  For every device of that profile, cb is
 * called once with result 1 (some file it fetches would differ from what
 * is served now), 0 (no difference) or -1 (the candidate fails for that
 * device; error says why, naming a position or a variable, never a
 * value).  A per-device file is compared with the published one, rendered
 * with the same version stamp; a shared file is compared with the one in
 * use, rendered for the device's model and for none.  The caller has
 * checked src (vendor_template_check).  Writer only (under the service
 * lock).  Returns 0, or -1 with err (unknown name, compile error, out of
 * memory, or cb answered non-zero).
 */
struct pub_dry_dev {
	const struct hd_dev *dev; /* borrowed for the call */
	int result;
	const char *error;        /* result -1 only */
};
typedef int (*pub_dry_cb)(const struct pub_dry_dev *r, void *arg);
int pub_dry_run(struct pub *p, const struct world *w, const struct vendor_profile *prof,
                const char *name, const char *src, size_t len, pub_dry_cb cb, void *arg,
                char *err, size_t errlen);

/*
 * The same dry run in steps, so that the service lock need not be held
 * for all of it: pub_dry_open compiles the candidate (no lock needed;
 * NULL with err), pub_dry_devs runs it for the devices ids of w that
 * exist and are of the profile (writer only, under the service lock; 0,
 * or -1 when cb answered non-zero), pub_dry_close frees it.  src is
 * borrowed until the close.
 */
struct pub_dry;
struct pub_dry *pub_dry_open(struct pub *p, const struct vendor_profile *prof,
                             const char *name, const char *src, size_t len, char *err,
                             size_t errlen);
int pub_dry_devs(struct pub_dry *dr, const struct world *w, const hd_id *ids, size_t n,
                 pub_dry_cb cb, void *arg);
void pub_dry_close(struct pub_dry *dr);

/*
 * Between pub_track_begin and pub_track_end every device given to
 * pub_update (changed, created, deleted) is noted: a dry run made in
 * steps re-runs those devices before it commits.  pub_track_end hands
 * the set over (the caller frees it); -1 when it is incomplete (out of
 * memory).  Writer only (under the service lock).
 */
void pub_track_begin(struct pub *p);
int pub_track_end(struct pub *p, struct hd_idset *out);

/*
 * Reads the shipped default of template or static file `name` of prof
 * from the directories the publisher was started with (as it is on disk
 * now).  *out: malloc'd, NUL-terminated, caller frees.  0, or -1 with err.
 */
int pub_template_default(const struct pub *p, const struct vendor_profile *prof,
                         const char *name, char **out, size_t *len, char *err, size_t errlen);

/* The templates in use (borrowed; changed only by the writer, through
 * pub_template_set). */
const struct vendor_templates *pub_templates(const struct pub *p);
/* Rewrites the shared files that need no model in the TFTP root (after a
 * shared template or static file changed); unchanged ones are left alone.
 * Writer only. */
void pub_shared_refresh(struct pub *p, struct store *st);

/* Checks and installs one template or static file (vendor_templates_set)
 * in the set in use.  Writer only.  0, or -1 with err and nothing changed. */
int pub_template_set(struct pub *p, const struct vendor_profile *prof, const char *name,
                     const char *src, size_t len, char *err, size_t errlen);

#endif
