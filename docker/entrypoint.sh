#!/bin/sh
# Starts tftpd-hpa on the TFTP root hotdeskd writes, then hotdeskd in the
# foreground (SIGTERM to the container stops both).
set -eu
mkdir -p /var/lib/hotdeskd/tftp
chmod 0755 /var/lib/hotdeskd/tftp
in.tftpd -l -a 0.0.0.0:69 -s -P /run/tftpd.pid /var/lib/hotdeskd/tftp
exec /usr/sbin/hotdeskd --config /etc/hotdeskd.ini
