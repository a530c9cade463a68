/*
 * vendor_cisco_mpp.c -- the "cisco-mpp" profile: Cisco SPA5xx and the
 * multiplatform (MPP/3PCC) 68xx, 78xx, 88xx phones, flat-profile XML.
 *
 * Files (see docs/TEMPLATES.md):
 *   spa<psn>.cfg, spa<psn>.xml, CP-<psn>.xml, <psn>-3PCC.xml
 *                  the model bootstrap the phone asks for by default
 *                  ("/spa$PSN.cfg", "/$PSN.xml"; e.g. spa502G.cfg,
 *                  8841-3PCC.xml, CP-8841-3PCC.xml), matched in any case,
 *                  all from one shared template that points Profile_Rule_B
 *                  at the per-device file;
 *   <mac>.xml      per-device template ($MA.xml): line 1 only.
 *
 * Escaping: RENDER_XML_CISCO -- XML, and '$' doubled in the value of a
 * *_Rule or Short_Name_N_ element, where the phone expands macros.  Other
 * line parameters (User_ID_1_, Password_1_, Display_Name_1_, ...) are
 * taken literally, so a '$' in a password stays one '$' (unverified on
 * real phones).
 *
 * User-Agent: "Cisco-CP-8841-3PCC/11.0 (00562b043615)",
 * "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)".  NOTIFY: "resync"
 * (the phone challenges it; the notifier answers with the line's
 * credentials).
 */
#include "vendor.h"
#include "sip.h"

#include <string.h>

static const struct vendor_file mpp_device[] = {
	{"{mac}.xml", "device.xml", RENDER_XML_CISCO, NULL},
};

/* Product series ($PSN) whose bootstraps are published to the TFTP root,
 * spelled as the phones ask for them (/spa$PSN.cfg, /$PSN.xml): SPA3xx/5xx
 * and the MPP 68xx, 78xx, 88xx. */
static const char *const spa_models[] = {
	"301", "303", "501G", "502G", "504G", "508G", "509G", "512G", "514G", "525G",
	"525G2", NULL,
};
static const char *const mpp_models[] = {
	"6821", "6841", "6851", "6861", "6871", "7811", "7821", "7832", "7841", "7861",
	"8811", "8832", "8841", "8845", "8851", "8861", "8865", NULL,
};
static const char *const mpp_cp_models[] = {
	"6821-3PCC", "6841-3PCC", "6851-3PCC", "6861-3PCC", "6871-3PCC", "7811-3PCC",
	"7821-3PCC", "7832-3PCC", "7841-3PCC", "7861-3PCC", "8811-3PCC", "8832-3PCC",
	"8841-3PCC", "8845-3PCC", "8851-3PCC", "8861-3PCC", "8865-3PCC", NULL,
};

static const struct vendor_file mpp_shared[] = {
	{"spa{model}.cfg", "bootstrap.xml", RENDER_XML_CISCO, spa_models},
	{"spa{model}.xml", "bootstrap.xml", RENDER_XML_CISCO, spa_models},
	{"CP-{model}.xml", "bootstrap.xml", RENDER_XML_CISCO, mpp_cp_models},
	{"{model}-3PCC.xml", "bootstrap.xml", RENDER_XML_CISCO, mpp_models},
};

static bool
ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

/* "Cisco/<model>-<fw>" (SPA) or "Cisco-<model ending in -3PCC/-MPP>/<fw>". */
static int
mpp_parse_ua(const char *ua, struct vendor_ua *out)
{
	struct vendor_tok tok[8];
	size_t n = vendor_split(ua, tok, 8);
	if (n < 1)
		return -1;
	const char *s = tok[0].s, *end = tok[0].s + tok[0].n;
	if (vendor_prefix(s, tok[0].n, "Cisco/")) {
		const char *m = s + 6;
		const char *dash = memchr(m, '-', (size_t)(end - m));
		const char *me = dash ? dash : end;
		vendor_copy(out->model, sizeof(out->model), m, (size_t)(me - m));
		if (dash)
			vendor_copy(out->firmware, sizeof(out->firmware), dash + 1,
			            (size_t)(end - dash - 1));
	} else if (vendor_prefix(s, tok[0].n, "Cisco-")) {
		const char *m = s + 6;
		const char *slash = memchr(m, '/', (size_t)(end - m));
		const char *me = slash ? slash : end;
		if (!ends_with_ci(m, (size_t)(me - m), "-3PCC") &&
		    !ends_with_ci(m, (size_t)(me - m), "-MPP"))
			return -1; /* enterprise firmware */
		vendor_copy(out->model, sizeof(out->model), m, (size_t)(me - m));
		if (slash)
			vendor_copy(out->firmware, sizeof(out->firmware), slash + 1,
			            (size_t)(end - slash - 1));
	} else {
		return -1;
	}
	if (out->model[0] == '\0')
		return -1;
	if (vendor_mac_in_parens(ua, NULL, out->mac) < 0)
		out->mac[0] = '\0';
	return 0;
}

static const struct vendor_ops mpp_ops = {
	.parse_user_agent = mpp_parse_ua,
	.notify_body = NULL,
};

/* Auth_Resync-Reboot: MD5 with qop=auth (nc, cnonce), the line's
 * registrar as realm */
static const struct vendor_notify_auth notify_auth_cisco_mpp = { NULL, 1u << SIP_DIGEST_MD5, true };

const struct vendor_profile vendor_cisco_mpp = {
	.name = "cisco-mpp",
	.match_priority = 30,
	.device_files = mpp_device,
	.n_device_files = sizeof(mpp_device) / sizeof(mpp_device[0]),
	.shared_files = mpp_shared,
	.n_shared_files = sizeof(mpp_shared) / sizeof(mpp_shared[0]),
	.transport = {"UDP", "TCP", "TLS"},
	/* Language_Selection (MPP admin guide; other than English the phone
	 * also needs a dictionary server, unverified) */
	.language = {"English-US", "English-UK", "French", "German", "Spanish", "Italian",
	             "Dutch", "Portuguese"},
	.notify_event = "resync",
	.notify_content_type = NULL,
	.notify_auth = &notify_auth_cisco_mpp,
	.ops = &mpp_ops,
};
