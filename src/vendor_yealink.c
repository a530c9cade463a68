/*
 * vendor_yealink.c -- the "yealink" profile: Yealink T2x-T5x, CP and
 * W-series phones, firmware 8x parameter names.
 *
 * Files (see docs/TEMPLATES.md):
 *   y000000000<code>.cfg  shared template, the same for every model code
 *                         (y000000000066.cfg for a T46S, ...; the
 *                         y000000000000.cfg form too);
 *   <mac>.cfg             per-device template: account 1 only.
 * No boot file is served: without one the phone fetches its model's common
 * file, then <mac>.cfg, which is the order wanted.
 *
 * Format: "#!version:1.0.0.1" then "key = value" lines (RENDER_KV).  Keys
 * left out keep their old value on the phone, so the template blanks a
 * taken-away line explicitly (account.1.enable = 0, credentials %NULL%).
 *
 * User-Agent: "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37" (MAC with or
 * without colons, runs of blanks possible).  NOTIFY: "check-sync;reboot=true"
 * (sip.notify_reboot_enable's default reloads on plain check-sync too).
 */
#include "vendor.h"
#include "sip.h"

static const struct vendor_file yealink_device[] = {
	{"{mac}.cfg", "device.cfg", RENDER_KV, NULL},
};

/* Model codes of the common file (y000000000<code>.cfg) published to the
 * TFTP root: the generic 000 and the codes of VENDORS.md (Yealink
 * auto-provisioning guides): T46S 066, T46U 108, T48U 109, T41P 036,
 * T42S 067, T21P_E2 052, T19P_E2 053, T23G 044, T27G 069, T29G 046,
 * T31G 123, T33G 124, T54W 096, T57W 097, W52P/W56P 025, W60B 077. */
static const char *const yealink_codes[] = {
	"000", "066", "108", "109", "036", "067", "052", "053", "044", "069",
	"046", "123", "124", "096", "097", "025", "077", NULL,
};

static const struct vendor_file yealink_shared[] = {
	{"y000000000{code}.cfg", "common.cfg", RENDER_KV, yealink_codes},
};

/* "Yealink <model> <firmware> [<mac>]"; the model loses a "SIP-" prefix. */
static int
yealink_parse_ua(const char *ua, struct vendor_ua *out)
{
	struct vendor_tok tok[8];
	size_t n = vendor_split(ua, tok, 8);
	if (n < 2 || tok[0].n != 7 || !vendor_prefix(tok[0].s, tok[0].n, "Yealink"))
		return -1;
	const char *m = tok[1].s;
	size_t mn = tok[1].n;
	if (vendor_prefix(m, mn, "SIP-")) {
		m += 4;
		mn -= 4;
	}
	vendor_copy(out->model, sizeof(out->model), m, mn);
	if (n >= 3)
		vendor_copy(out->firmware, sizeof(out->firmware), tok[2].s, tok[2].n);
	if (n < 4 || vendor_mac(tok[3].s, tok[3].n, out->mac) < 0)
		out->mac[0] = '\0';
	return 0;
}

static const struct vendor_ops yealink_ops = {
	.parse_user_agent = yealink_parse_ua,
	.notify_body = NULL,
};

/* MD5, the line's registrar as realm */
static const struct vendor_notify_auth notify_auth_yealink = { NULL, 1u << SIP_DIGEST_MD5, false };

const struct vendor_profile vendor_yealink = {
	.name = "yealink",
	.match_priority = 20,
	.device_files = yealink_device,
	.n_device_files = sizeof(yealink_device) / sizeof(yealink_device[0]),
	.shared_files = yealink_shared,
	.n_shared_files = sizeof(yealink_shared) / sizeof(yealink_shared[0]),
	.transport = {"0", "1", "2"},
	/* lang.gui (Yealink admin guide; Dutch unverified) */
	.language = {"English", "English", "French", "German", "Spanish", "Italian", "Dutch",
	             "Portuguese"},
	.notify_event = "check-sync;reboot=true",
	/* sip.notify_reboot_enable = 0: the phone reboots only when asked to,
	 * so a resync without reboot is possible and preferred */
	.notify_event_alt = "check-sync;reboot=false",
	.notify_alt_key = "sip.notify_reboot_enable",
	.notify_alt_value = "0",
	.notify_content_type = NULL,
	.notify_auth = &notify_auth_yealink,
	.ops = &yealink_ops,
};
