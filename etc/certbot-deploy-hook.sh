#!/bin/sh
# certbot deploy hook for toasterd: copy the renewed certificate and key to
# where toasterd reads them, readable by its user's group, then reload.
# New TLS handshakes get the new certificate; open sessions go on.
#
# Install:  install -m 0755 etc/certbot-deploy-hook.sh \
#               /etc/letsencrypt/renewal-hooks/deploy/toasterd.sh
# and in /etc/toaster/toasterd.conf (NAME: the certificate's name in
# certbot, usually its first domain):
#   tls_cert = /etc/toaster/tls/NAME.pem
#   tls_key  = /etc/toaster/tls/NAME.key
# Copies, not links into /etc/letsencrypt: its live/ and archive/ are
# root's alone, and toasterd reads certificates as its user on a reload.
set -eu

: "${RENEWED_LINEAGE:?not run by certbot as a deploy hook}"
TLS_DIR=${TOASTER_TLS_DIR:-/etc/toaster/tls}
GROUP=${TOASTER_GROUP:-vmail}
CONF=${TOASTER_CONF:-/etc/toaster/toasterd.conf}
TOASTERCTL=${TOASTERCTL:-/usr/local/bin/toasterctl}

name=$(basename "$RENEWED_LINEAGE")
umask 077
install -d -m 0750 -o root -g "$GROUP" "$TLS_DIR"
# Each file whole or not at all (copy, then rename), the key first: a
# restart in between finds a pair that matches or fails loudly.
install -m 0640 -o root -g "$GROUP" "$RENEWED_LINEAGE/privkey.pem" "$TLS_DIR/.$name.key.new"
install -m 0644 -o root -g "$GROUP" "$RENEWED_LINEAGE/fullchain.pem" "$TLS_DIR/.$name.pem.new"
mv -f "$TLS_DIR/.$name.key.new" "$TLS_DIR/$name.key"
mv -f "$TLS_DIR/.$name.pem.new" "$TLS_DIR/$name.pem"
# Fails (and certbot says so) when toasterd is down or cannot load them.
exec "$TOASTERCTL" -c "$CONF" reload
