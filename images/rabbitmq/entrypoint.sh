#!/bin/sh
# Write the default user into rabbitmq.conf, share the Erlang cookie with root (so the
# healthcheck's rabbitmq-diagnostics can talk to the node), run the server in the
# foreground as the rabbitmq user.
set -eu
: "${RABBITMQ_DEFAULT_USER:=guest}" "${RABBITMQ_DEFAULT_PASS:=guest}"
mkdir -p /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
loopback_users = none
listeners.tcp.default = 5672
CONF
cookie=/var/lib/rabbitmq/.erlang.cookie
if [ ! -s "$cookie" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$cookie"
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
chmod 400 "$cookie"
cp "$cookie" /root/.erlang.cookie && chmod 400 /root/.erlang.cookie
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- env HOME=/var/lib/rabbitmq \
  rabbitmq-server
