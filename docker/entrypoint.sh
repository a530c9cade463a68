#!/bin/sh
# Starts tftpd-hpa on the TFTP root hotdeskd writes, then hotdeskd in the
# foreground (SIGTERM to the container stops both).  /etc/hotdeskd.ini is
# copied to /run/hotdeskd.ini with the contact host and ports of the
# environment (see the Dockerfile); "--check-config" as the only argument
# checks that configuration and exits.
set -eu
contact=${HOTDESKD_CONTACT_HOST:-$(hostname -I 2>/dev/null | cut -d' ' -f1)}
http=${HOTDESKD_HTTP_PORT:-8080}
sip=${HOTDESKD_SIP_PORT:-5070}
tftp=${HOTDESKD_TFTP_PORT:-69}
for v in "$http" "$sip" "$tftp"; do
	case $v in '' | *[!0-9]*) echo "entrypoint: bad port '$v'" >&2; exit 2 ;; esac
done
case $contact in *[!0-9a-fA-F.:]*) echo "entrypoint: bad HOTDESKD_CONTACT_HOST" >&2; exit 2 ;; esac
sed -e "s/^contact_host *=.*/contact_host = $contact/" \
    -e "s/^port *=.*/port = $http/" \
    -e "s/^bind *= *0\.0\.0\.0:.*/bind = 0.0.0.0:$sip/" /etc/hotdeskd.ini > /run/hotdeskd.ini
if [ "${1:-}" = "--check-config" ]; then
	exec /usr/sbin/hotdeskd --config /run/hotdeskd.ini --check-config
fi
mkdir -p /var/lib/hotdeskd/tftp
chmod 0755 /var/lib/hotdeskd/tftp
in.tftpd -l -a "0.0.0.0:$tftp" -s -P /run/tftpd.pid /var/lib/hotdeskd/tftp
exec /usr/sbin/hotdeskd --config /run/hotdeskd.ini
