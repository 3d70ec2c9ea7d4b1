#!/usr/bin/env bash
# Makes sure the system packages Scanorama needs are present: nmap,
# PostgreSQL server binaries (initdb, pg_ctl), Prometheus (prometheus and
# promtool, which the metrics tests run), and the tools the nmap XML tests
# check exports with (xmllint, xsltproc, ndiff). As root it installs what is
# missing with apt-get; otherwise it prints the exact command to run.
set -euo pipefail

missing=()
command -v nmap >/dev/null 2>&1 || missing+=(nmap)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
	missing+=(postgresql)
fi
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
	missing+=(prometheus)
fi
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v xsltproc >/dev/null 2>&1 || missing+=(xsltproc)
command -v ndiff >/dev/null 2>&1 || missing+=(ndiff)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "Scanorama needs: ${missing[*]}. Install them with:" >&2
	echo "  sudo sh -c '$cmd'" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "Scanorama needs: ${missing[*]}; install them with your package manager." >&2
	exit 1
fi
echo "installing missing packages: ${missing[*]}" >&2
sh -c "$cmd" >&2
