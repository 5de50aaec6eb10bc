#!/bin/bash
# Inside the keycloak container (deploy/compose.yaml mounts it):
#
#   docker compose exec keycloak bash /opt/referrals/keycloak-setup.sh LOGIN UNIT ROLE
#
# Lets the web client come back to http://localhost:8000, and creates one person in the
# `stockholm` realm with ROLE (youth_worker, caseworker, auditor) and the unit attribute
# UNIT, with a random temporary password printed once (they choose their own at first
# sign-in).  Not run by the tests: there is no Keycloak on the test machine (the smoke
# test's identity provider stands in).
set -euo pipefail
login=$1 unit=$2 role=${3:-youth_worker}
kcadm=/opt/keycloak/bin/kcadm.sh
# kcadm trusts the stack's self-signed certificate through a throw-away trust store.
store=$(mktemp -d)/trust.p12
keytool -importcert -noprompt -alias idp -file /run/secrets/idp-tls-cert \
  -keystore "$store" -storetype PKCS12 -storepass "$(basename "$store")-pass" >/dev/null
"$kcadm" config truststore --trustpass "$(basename "$store")-pass" "$store"
"$kcadm" config credentials --server https://keycloak.localhost:8443 --realm master \
  --user admin --password "$(cat /run/secrets/keycloak-admin-password)"
client=$("$kcadm" get clients -r stockholm -q clientId=referrals-web --fields id --format csv --noquotes)
"$kcadm" update "clients/$client" -r stockholm \
  -s 'redirectUris=["http://localhost:8000/app/*"]' -s 'webOrigins=["http://localhost:8000"]' \
  -s 'attributes."post.logout.redirect.uris"=http://localhost:8000/app/'
"$kcadm" create users -r stockholm -s "username=$login" -s enabled=true \
  -s "attributes.unit=[\"$unit\"]"
"$kcadm" add-roles -r stockholm --uusername "$login" --rolename "$role"
password=$(head -c 18 /dev/urandom | base64)
"$kcadm" set-password -r stockholm --username "$login" --new-password "$password" --temporary
echo "$login ($role, $unit): temporary password $password"
