#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing.
# Usage: contrib/deps.sh GROUP...   (groups: build wolfssl-source
# wolfssl-system test asan fuzz bench chain transparent)
# As root it runs apt-get; otherwise it prints the exact apt-get line and fails.
set -euo pipefail

pkgs_for() {
  case "$1" in
    build)          echo gcc make pkg-config libev-dev libconfig-dev libc-ares-dev libcrypt-dev ;;
    wolfssl-source) echo autoconf automake libtool dpkg-dev xz-utils ca-certificates ;;
    wolfssl-system) echo libwolfssl-dev ;;
    test)           echo libcmocka-dev python3 python3-pytest nginx dnsmasq-base curl openssl procps squid iproute2 iptables ;;
    asan)           echo clang libclang-rt-14-dev ;;
    fuzz)           echo clang libclang-rt-14-dev ;;
    bench)          echo wrk nginx curl openssl ;;
    chain)          echo squid ;;
    transparent)    echo iproute2 iptables ;;
    *) echo "deps: unknown group $1" >&2; exit 2 ;;
  esac
}

want=()
for g in "$@"; do
  for p in $(pkgs_for "$g"); do want+=("$p"); done
done

missing=()
for p in "${want[@]}"; do
  # dpkg-query prints "install ok installed" for a package that is present.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    case " ${missing[*]-} " in *" $p "*) ;; *) missing+=("$p") ;; esac
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages; as root run:" >&2
  echo "  $line" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/catena-deps.log 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/catena-deps.log 2>&1 ||
    { tail -20 /tmp/catena-deps.log >&2; exit 1; }
fi
