/*
 * vendor_cisco_ent.c -- the "cisco-enterprise" profile: Cisco 79x1, 88xx,
 * 89xx phones on enterprise (CUCM-style) SIP firmware.
 *
 * Files (see docs/TEMPLATES.md):
 *   SEP<MAC>.cnf.xml  per-device template, uppercase MAC in the canonical
 *                     name (matched in any case): a whole <device>
 *                     document, since this firmware fetches nothing else
 *                     that hotdeskd serves.  It is replaced whole on each
 *                     fetch, so a parked device without a parking account
 *                     simply has no line.
 * CTL/ITL files and XMLDefault.cnf.xml are not served (404 is fine without
 * security).
 *
 * User-Agent (unverified): "Cisco-CP8845/12.8.1" -- any "Cisco-..." agent
 * that is not an MPP one (those end their model in -3PCC/-MPP).
 * NOTIFY: "service-control" with a text/plain body asking for a restart
 * (re-download and re-register, no reboot), the REGISTER's Call-ID when
 * known, and zero version stamps in the GUID form with
 * "Subscription-State: active", as the usecallmanager patches send them
 * (VENDORS.md; whether empty "{}" stamps are accepted is unverified).
 *
 * transportLayerProtocol: 1 TCP, 2 UDP, 3 TLS (as wazo-provd renders it).
 */
#include "vendor.h"

#include <stdio.h>
#include <string.h>

static const struct vendor_file ent_device[] = {
	{"SEP{MAC}.cnf.xml", "device.cnf.xml", RENDER_XML, NULL},
};

static int
ent_parse_ua(const char *ua, struct vendor_ua *out)
{
	struct vendor_tok tok[8];
	size_t n = vendor_split(ua, tok, 8);
	if (n < 1 || !vendor_prefix(tok[0].s, tok[0].n, "Cisco-"))
		return -1;
	const char *m = tok[0].s + 6, *end = tok[0].s + tok[0].n;
	const char *slash = memchr(m, '/', (size_t)(end - m));
	const char *me = slash ? slash : end;
	vendor_copy(out->model, sizeof(out->model), m, (size_t)(me - m));
	if (slash)
		vendor_copy(out->firmware, sizeof(out->firmware), slash + 1,
		            (size_t)(end - slash - 1));
	if (out->model[0] == '\0')
		return -1;
	if (vendor_mac_in_parens(ua, NULL, out->mac) < 0)
		out->mac[0] = '\0';
	return 0;
}

/* The Call-ID goes inside {...} on a line of its own: only printable ASCII
 * without braces can be sent. */
static bool
callid_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == '{' || *s == '}')
			return false;
	return true;
}

/* The zero version stamp the phones accept. */
#define ENT_ZERO_STAMP "{00000000-0000-0000-0000-000000000000}"

static int
ent_notify_body(const struct vendor_notify *in, char *buf, size_t len)
{
	const char *cid = in->register_call_id ? in->register_call_id : "";
	if (!callid_ok(cid))
		return -1;
	int n = snprintf(buf, len,
	                 "action=restart\r\n"
	                 "RegisterCallId={%s}\r\n"
	                 "ConfigVersionStamp=" ENT_ZERO_STAMP "\r\n"
	                 "DialplanVersionStamp=" ENT_ZERO_STAMP "\r\n"
	                 "SoftkeyVersionStamp=" ENT_ZERO_STAMP "\r\n",
	                 cid);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

/* The phone takes at most 30 characters in <name>, <displayName>,
 * <authName>, <authPassword> and <featureLabel> (VENDORS.md): the admin
 * API refuses longer values for this profile. */
static const struct vendor_field_limit ent_limits[] = {
	{"sip_user", 30},          /* name, authName, contact */
	{"sip_password", 30},      /* authPassword */
	{"display_name", 30},      /* displayName */
	{"label", 30},             /* featureLabel */
	{"parking.sip_user", 30},
	{"parking.sip_password", 30},
	{"keys.label", 30},        /* featureLabel of a speed dial */
	{NULL, 0},
};

static const struct vendor_ops ent_ops = {
	.parse_user_agent = ent_parse_ua,
	.notify_body = ent_notify_body,
};

const struct vendor_profile vendor_cisco_ent = {
	.name = "cisco-enterprise",
	.match_priority = 40,
	.device_files = ent_device,
	.n_device_files = sizeof(ent_device) / sizeof(ent_device[0]),
	.shared_files = NULL,
	.n_shared_files = 0,
	.transport = {"2", "1", "3"},
	/* userLocale name (locale installers' names, as wazo-provd maps them) */
	.language = {"English_United_States", "English_United_Kingdom", "French_France",
	             "German_Germany", "Spanish_Spain", "Italian_Italy", "Dutch_Netherlands",
	             "Portuguese_Portugal"},
	.notify_event = "service-control",
	.notify_subscription_state = "active",
	.notify_content_type = "text/plain",
	.ops = &ent_ops,
	.field_limits = ent_limits,
};
