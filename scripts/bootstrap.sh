#!/usr/bin/env bash
# Install what Garrison needs to run on a fresh Debian 12 machine, into ./.venv.
#   scripts/bootstrap.sh          runtime only
#   scripts/bootstrap.sh --dev    plus everything the tests and analysers need
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian's own Python, not one under a home directory: PostgreSQL runs Garrison as its
# archive_command, as the postgres user, who must be able to run .venv/bin/python.
python=/usr/bin/python3
apt_packages=()
"$python" -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3 python3-venv)
command -v ssh-keygen >/dev/null || apt_packages+=(openssh-client)  # SSH CA: KRLs
command -v gpg >/dev/null || apt_packages+=(gnupg)  # backups are OpenPGP messages
if [ "$dev" = 1 ]; then
  # the client alone (psql) may be there: look for the server binary itself
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || apt_packages+=(postgresql)
  command -v chromium >/dev/null || apt_packages+=(chromium)
  command -v npm >/dev/null || apt_packages+=(npm)
  [ -x /lib/systemd/systemd-journal-remote ] || apt_packages+=(systemd-journal-remote)
  command -v journalctl >/dev/null || apt_packages+=(systemd)
  [ -x /usr/sbin/sshd ] || apt_packages+=(openssh-server)  # SSH tests run a real sshd
  command -v ip >/dev/null || apt_packages+=(iproute2)  # the bastion test's network namespaces
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "== apt: ${apt_packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$dev" = 1 ]; then
  .venv/bin/pip install -q -r requirements/dev.txt
else
  .venv/bin/pip install -q -r requirements/base.txt
fi
.venv/bin/pip install -q --no-deps -e .
echo "== installed: $(.venv/bin/garrison --version)"
