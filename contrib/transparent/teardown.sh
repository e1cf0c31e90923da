#!/usr/bin/env bash
# Removes what contrib/transparent/setup.sh added on a gateway: the jumps from the
# built-in chains to catena's chains (CATENA, CATENA_OUT, CATENA_DIVERT in the nat and
# mangle tables, IPv4 and IPv6), those chains, and the TPROXY policy routing (the ip rule
# for the mark and the local route of its table). Only rules that jump to catena's chains
# are deleted, so other rules in PREROUTING/OUTPUT stay as they were. Running it when
# nothing is set up changes nothing and succeeds.
set -euo pipefail

prog=${0##*/}
chain=CATENA
mark=0x1
table=100
dry=0

usage() {
    cat <<EOF
Usage: $prog [options]

Removes catena's transparent-mode rules (see setup.sh): every jump to the chains
CHAIN, CHAIN_OUT and CHAIN_DIVERT in the nat and mangle tables (iptables and
ip6tables), the chains themselves, and the TPROXY routing: the rule
"fwmark MARK/MARK lookup TABLE" and the route "local default dev lo table TABLE".

Options (give the same -c, -m and -r as to setup.sh):
  -c CHAIN  chain name prefix (default: $chain)
  -m MARK   TPROXY packet mark (default: $mark)
  -r TABLE  TPROXY routing table (default: $table)
  -n        print the commands instead of running them
  -h        this text
EOF
}

valid_mark() {
    [[ $1 =~ ^(0x[0-9a-fA-F]{1,8}|[1-9][0-9]{0,9})$ ]] || return 1
    [ $(($1)) -gt 0 ] && [ $(($1)) -le 4294967295 ]
}

valid_table() {
    [[ $1 =~ ^[1-9][0-9]{0,9}$ ]] || return 1
    [ "$1" -le 4294967295 ] && [ "$1" -ne 253 ] && [ "$1" -ne 254 ] && [ "$1" -ne 255 ]
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

while getopts "c:m:r:nh" opt; do
    case $opt in
    c) chain=$OPTARG ;;
    m) mark=$OPTARG ;;
    r) table=$OPTARG ;;
    n) dry=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ne 0 ]; then
    usage >&2
    exit 2
fi
[[ $chain =~ ^[A-Za-z][A-Za-z0-9_-]{0,19}$ ]] || die "-c $chain: 1..20 letters, digits, '_' or '-'"
valid_mark "$mark" || die "-m $mark: a non-zero 32-bit number"
valid_table "$table" ||
    die "-r $table: a routing table number other than 253..255 (default, main, local)"
mark=$(printf '0x%x' "$((mark))")
if [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "must be run as root (iptables and ip rule need CAP_NET_ADMIN); -n prints the commands"
fi
command -v iptables >/dev/null 2>&1 || die "iptables not found (Debian: apt-get install iptables)"
command -v ip >/dev/null 2>&1 || die "ip not found (Debian: apt-get install iproute2)"

run() {
    if [ "$dry" = 1 ]; then
        printf '%s\n' "$*"
    else
        "$@"
    fi
}

ours="$chain ${chain}_OUT ${chain}_DIVERT"

# Deletes every rule of a built-in chain that jumps to one of our chains, as
# `-S` prints it (with -D instead of -A), so the rule is matched exactly.
unhook() {
    local ipt=$1 tbl=$2 builtin=$3 listing line target
    listing=$("$ipt" -w -t "$tbl" -S "$builtin" 2>/dev/null) || return 0
    while IFS= read -r line; do
        [[ $line == "-A $builtin "* ]] || continue
        for target in $ours; do
            if [[ $line == *" -j $target" || $line == *" -j $target "* ]]; then
                eval "run \"\$ipt\" -w -t \"\$tbl\" -D ${line#-A }"
                break
            fi
        done
    done <<<"$listing"
}

for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null 2>&1 || continue
    for tbl in nat mangle; do
        "$ipt" -w -t "$tbl" -S >/dev/null 2>&1 || continue # table unavailable here
        for builtin in PREROUTING OUTPUT; do
            unhook "$ipt" "$tbl" "$builtin"
        done
        for c in $ours; do
            if "$ipt" -w -t "$tbl" -S "$c" >/dev/null 2>&1; then
                run "$ipt" -w -t "$tbl" -F "$c"
            fi
        done
        # Flushed first: a chain may be deleted only once nothing jumps to it.
        for c in $ours; do
            if "$ipt" -w -t "$tbl" -S "$c" >/dev/null 2>&1; then
                run "$ipt" -w -t "$tbl" -X "$c"
            fi
        done
    done
done

# The TPROXY routing, for both families, removed while present (bounded). The
# listings are read whole before grep: grep -q stopping early would fail a
# pipeline (SIGPIPE) under pipefail.
for fam in -4 -6; do
    for _ in 1 2 3 4 5 6 7 8; do
        rules=$(ip -N "$fam" rule show 2>/dev/null || true)
        grep -Eq "fwmark $mark/$mark lookup $table( |\$)" <<<"$rules" || break
        run ip "$fam" rule del fwmark "$mark/$mark" lookup "$table" || break
        [ "$dry" = 0 ] || break
    done
    if [ "$fam" = -4 ]; then dst=0.0.0.0/0; else dst=::/0; fi
    routes=$(ip "$fam" route show table "$table" 2>/dev/null || true)
    if grep -Eq '^local (default|0\.0\.0\.0/0|::/0) dev lo( |$)' <<<"$routes"; then
        run ip "$fam" route del local "$dst" dev lo table "$table"
    fi
done
exit 0
