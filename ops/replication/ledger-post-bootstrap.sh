#!/bin/sh
# Patroni's post_bootstrap hook (patroni-db*.yml), run once on the first primary with a
# superuser connection string as $1: the ledger's database. Its schema and roles come from
# `ledger db upgrade` (schema owner) and ops/db-roles.sql (login users), not from here.
set -eu
psql -v ON_ERROR_STOP=1 "$1" -c "CREATE DATABASE ledger"
