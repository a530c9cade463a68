/*
 * virt.h -- the virtualization engine (SPEC 2): pure rules over a world.
 *
 * The only state the rules change is virtual_on(X) for each extension X.
 * Every operation is split in two steps:
 *   1. decide: read the world and a request, produce a virt_plan (a list of
 *      moves "extension X goes from device A to device B", B = 0 meaning it
 *      returns to base) or a refusal.  Nothing is changed.
 *   2. virt_apply: apply a plan to the world and report the set of devices
 *      whose carried identity changed (what the renderers and the resync
 *      queue hang off).
 * The service layer persists the plan between the two steps, so a database
 * failure never leaves the world and the store apart.
 *
 * No I/O, no clock, no secrets: the code check is done by the caller, who
 * tells the engine whether a code was verified.
 *
 * Invariants (checked by virt_check_invariants after every operation in
 * debug builds and in tests):
 *   I1 at most one virtual extension per device;
 *   I2 nobody is virtualized onto their own home device;
 *   I3 a virtualization stays within one organization, on a device whose
 *      home extension allows virtualization (and the extension has a code);
 *   I4 every set of SIP credentials is carried by at most one device.
 */
#ifndef HD_VIRT_H
#define HD_VIRT_H

#include "world.h"

enum virt_result {
	VIRT_NEED_CODE,
	VIRT_ACCEPTED,
	VIRT_RETURNED,
	VIRT_NOTHING,
	VIRT_RETRY,
	VIRT_HANGUP,
	VIRT_DENIED,
};

enum virt_reason {
	VIRT_R_NONE,
	VIRT_R_UNKNOWN_CALLER,
	VIRT_R_UNKNOWN_EXTENSION,
	VIRT_R_BASE_NOT_ALLOWED,
	VIRT_R_NO_SECRET,
	VIRT_R_LOCKED,
};

const char *virt_result_name(enum virt_result r);  /* "accepted", ... */

/*
 * The SIP meaning of a *30 result (docs/API.md, "SIP mapping"): the final
 * response a PBX or proxy answers the *30 call with.  Writes the reason
 * phrase to buf (always terminated; tries_left is used with VIRT_RETRY)
 * and returns the status code: 200 accepted/returned/nothing, 484
 * need_code/retry, 603 hangup, 403 denied.  Cannot fail.
 */
int virt_sip_status(enum virt_result r, enum virt_reason why, int tries_left, char *buf,
                    size_t len);
const char *virt_reason_name(enum virt_reason r);  /* "" for NONE */

enum virt_carry {
	VIRT_CARRY_EXT,    /* carries an extension's credentials */
	VIRT_CARRY_PARKED, /* home extension away (or no home): parking/disabled */
};

struct virt_carried {
	enum virt_carry kind;
	const struct hd_ext *ext; /* VIRT_CARRY_EXT only */
	bool guest;               /* ext is a virtual extension (not home) */
};

/* carried(D) of SPEC 2.1. */
struct virt_carried virt_carried(const struct world *w, const struct hd_dev *d);

enum virt_status { VIRT_ST_HOME, VIRT_ST_VIRTUALIZED, VIRT_ST_INACTIVE, VIRT_ST_UNPLACED };
const char *virt_status_name(enum virt_status s);
enum virt_status virt_ext_status(const struct world *w, const struct hd_ext *e);

/*
 * The calling device: the device that carries the SIP identity `caller`
 * (an extension it carries, or its parking account while it is parked).
 * NULL when no device carries it.
 */
const struct hd_dev *virt_calling_device(const struct world *w, const char *caller);

#define VIRT_MAX_MOVES 64

struct virt_move {
	hd_id ext;
	hd_id from; /* virtual_on before */
	hd_id to;   /* virtual_on after; 0 = returns to base */
};

struct virt_plan {
	size_t n;
	struct virt_move moves[VIRT_MAX_MOVES];
};

enum virt_code { VIRT_CODE_NONE, VIRT_CODE_VERIFIED };

struct virt_decision {
	enum virt_result result;  /* NEED_CODE, ACCEPTED, RETURNED, NOTHING or DENIED */
	enum virt_reason reason;  /* with DENIED */
	const struct hd_dev *caller; /* calling device, NULL if unknown */
	const struct hd_ext *ext;    /* the extension moved or returned (or asked for) */
	const struct hd_dev *dev;    /* where ext is after the plan (NULL if unplaced) */
	struct virt_plan plan;       /* moves to apply (ACCEPTED, RETURNED) */
};

/*
 * A *30 event (SPEC 2.2).  `digits` NULL or "" is a bare *30.  With
 * code == VIRT_CODE_NONE a virtualization that needs a code answers
 * VIRT_NEED_CODE; the caller verifies the code and asks again with
 * VIRT_CODE_VERIFIED to get the plan.  Returns to base (bare *30, *30 of
 * the device's own home extension) never need a code.
 */
void virt_star30(const struct world *w, const char *caller, const char *digits,
                 enum virt_code code, struct virt_decision *out);

/*
 * The decision once the code asked for by a *30 from device `dev` for
 * extension `ext` proved right: virt_star30 with VIRT_CODE_VERIFIED, in
 * the world as it is now (it may have changed while the code was
 * checked).  A caller now on another device, or on none (it moved
 * meanwhile), is DENIED unknown_caller with nothing planned: which phone
 * dialed is no longer known.  Every decision's caller is then `dev`, the
 * phone that asked (NULL if it is gone).  Digits that now name another extension answer
 * NEED_CODE: the code proves nothing about it.  Otherwise whatever the
 * rules decide now, a return to base included (the device became the
 * extension's home).
 */
void virt_star30_checked(const struct world *w, const char *caller, const char *digits,
                         hd_id dev, hd_id ext, struct virt_decision *out);

/* Return via API or web: virtual_on(X) = none.  RETURNED or NOTHING. */
void virt_return(const struct world *w, const struct hd_ext *x, struct virt_decision *out);

/*
 * After an admin change has been applied to the world: returns every
 * virtualization that now breaks a rule (host device gone or in another
 * organization, host's home extension gone or not allowing virtualization,
 * extension on its own home device, extension without a secret code).
 * Appends the moves to plan.  Returns 0, or -1 if the plan is full.
 */
int virt_repair(const struct world *w, struct virt_plan *plan);

/*
 * The moves needed before deleting a device / an extension, so that the
 * deletion leaves every rule true.  Appends to plan; 0 or -1 (plan full).
 */
int virt_plan_delete_dev(const struct world *w, const struct hd_dev *d, struct virt_plan *plan);
int virt_plan_delete_ext(const struct world *w, const struct hd_ext *e, struct virt_plan *plan);

/*
 * Applies a plan to the world.  Adds to `changed` every device whose
 * carried() differs before and after (base, the device left, parked and
 * unparked home devices).  Returns 0, or -1 when out of memory.
 */
int virt_apply(struct world *w, const struct virt_plan *plan, struct hd_idset *changed);

/*
 * The SIP identities whose location an applied plan changed: the one a
 * changed device carried before and the one it carries after (an
 * extension's SIP user, or the device's parking account while parked),
 * each once.  The strings are borrowed from the world: valid until its
 * extensions or devices are next replaced or deleted.
 */
#define VIRT_MAX_MOVED (VIRT_MAX_MOVES * 6)
struct virt_moved {
	size_t n;
	const char *sip_user[VIRT_MAX_MOVED];
};

/* virt_apply, also filling *moved (cleared first) when it is not NULL. */
int virt_apply_moved(struct world *w, const struct virt_plan *plan, struct hd_idset *changed,
                     struct virt_moved *moved);

/*
 * Checks I1-I4 over the whole world.  Returns 0, or -1 with a description
 * of the first violation in err.
 */
int virt_check_invariants(const struct world *w, char *err, size_t errlen);

#endif
