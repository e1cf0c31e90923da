#!/usr/bin/env bash
# Sends a LAN's TCP port 443 (and any other ports given) to catena's transparent listener
# on a Linux gateway, with iptables (Debian's iptables-nft, or legacy). All rules live in
# chains of their own (CATENA..., one jump from each built-in chain used), so teardown.sh
# removes exactly what this adds; it runs teardown.sh first, so running it again gives the
# same rules, never duplicates. REDIRECT (nat) is the default; TPROXY (-t: mangle, with a
# mark and policy routing; no NAT, the listener needs tproxy = true) is optional.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
port=3129
chain=CATENA
user=catena
local_too=0
tproxy=0
mark=0x1
table=100
on_ip4=
on_ip6=
v6=0
dry=0

usage() {
    cat <<EOF
Usage: $prog [options] LAN_IF[,LAN_IF...] [PORT...]

Redirects TCP connections to port 443 (and to each PORT given) that arrive on the
LAN interface(s) to catena's transparent listener on this host. Connections to
this host's own addresses are left alone. The listener in catena.conf:
    { type = "transparent"; address = "0.0.0.0:3129"; }
and each redirected port must be in access.connect_ports, the clients' networks
in access.client_networks. IPv4 forwarding (net.ipv4.ip_forward) is not changed:
the gateway must route the traffic it does not redirect by itself.

Options:
  -p PORT   catena's transparent listener port (default: $port)
  -l        also redirect connections made on this host itself (nat OUTPUT), except
            those of USER, so catena's own connections to origins are not sent back
            to catena (the loop-avoidance rule: -m owner --uid-owner USER -j RETURN)
  -u USER   the user catena runs as, for -l (default: $user)
  -t        TPROXY (mangle table, mark MARK, policy routing to table TABLE) instead
            of REDIRECT. catena's listener needs tproxy = true (IP_TRANSPARENT, which
            needs CAP_NET_ADMIN). Not with -l.
  -m MARK   TPROXY packet mark (default: $mark)
  -r TABLE  TPROXY routing table (default: $table)
  -a ADDR   TPROXY: the address catena listens on (--on-ip; default: the
            address of the interface the packet came in on). Once per family:
            -a 10.0.0.1 -a fd00::1 (an IPv6 one needs -6)
  -6        IPv6 too (ip6tables; catena then needs an IPv6 transparent listener,
            e.g. "[::]:3129")
  -c CHAIN  chain name prefix (default: $chain)
  -n        print the commands instead of running them
  -h        this text

Undo with teardown.sh (same -c, -m, -r).
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

valid_port() {
    [[ $1 =~ ^[1-9][0-9]{0,4}$ ]] && [ "$1" -le 65535 ]
}

while getopts "p:lu:tm:r:a:6c:nh" opt; do
    case $opt in
    p) port=$OPTARG ;;
    l) local_too=1 ;;
    u) user=$OPTARG ;;
    t) tproxy=1 ;;
    m) mark=$OPTARG ;;
    r) table=$OPTARG ;;
    a)
        if [[ $OPTARG == *:* ]]; then
            [ -z "$on_ip6" ] || die "-a $OPTARG: an IPv6 -a was given already"
            on_ip6=$OPTARG
        else
            [ -z "$on_ip4" ] || die "-a $OPTARG: an IPv4 -a was given already"
            on_ip4=$OPTARG
        fi
        ;;
    6) v6=1 ;;
    c) chain=$OPTARG ;;
    n) dry=1 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -lt 1 ]; then
    usage >&2
    exit 2
fi
lan=$1
shift
ports=(443)
for p in "$@"; do
    valid_port "$p" || die "$p: not a port (1..65535)"
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
valid_port "$port" || die "-p $port: not a port (1..65535)"
[[ $chain =~ ^[A-Za-z][A-Za-z0-9_-]{0,19}$ ]] || die "-c $chain: 1..20 letters, digits, '_' or '-'"
valid_mark "$mark" || die "-m $mark: a non-zero 32-bit number"
valid_table "$table" ||
    die "-r $table: a routing table number other than 253..255 (default, main, local)"
mark=$(printf '0x%x' "$((mark))")
[ "$tproxy" = 0 ] || [ "$local_too" = 0 ] ||
    die "-l with -t: local traffic cannot be sent to a TPROXY listener by this script"
[ -z "$on_ip4$on_ip6" ] || [ "$tproxy" = 1 ] || die "-a is for TPROXY (-t) only"
[ -z "$on_ip6" ] || [ "$v6" = 1 ] || die "-a $on_ip6: an IPv6 address needs -6"
if [ "$dry" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "must be run as root (iptables and ip rule need CAP_NET_ADMIN); -n prints the commands"
fi
command -v iptables >/dev/null 2>&1 || die "iptables not found (Debian: apt-get install iptables)"
command -v ip >/dev/null 2>&1 || die "ip not found (Debian: apt-get install iproute2)"
if [ "$v6" = 1 ]; then
    command -v ip6tables >/dev/null 2>&1 ||
        die "ip6tables not found (Debian: apt-get install iptables)"
fi
IFS=, read -r -a lans <<<"$lan"
[ ${#lans[@]} -gt 0 ] || die "no LAN interface given"
for i in "${lans[@]}"; do
    [[ $i =~ ^[A-Za-z0-9_.:@-]{1,15}$ ]] || die "$i: not an interface name"
    ip link show dev "$i" >/dev/null 2>&1 || die "$i: no such interface"
done
uid=
if [ "$local_too" = 1 ]; then
    uid=$(id -u "$user" 2>/dev/null) || die "-u $user: no such user (the user catena runs as)"
fi
if [ -n "$on_ip4" ]; then
    [[ $on_ip4 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "-a $on_ip4: not an IP address"
fi
if [ -n "$on_ip6" ]; then
    [[ $on_ip6 =~ ^[0-9A-Fa-f:.]+$ ]] || die "-a $on_ip6: not an IP address"
fi

run() {
    if [ "$dry" = 1 ]; then
        printf '%s\n' "$*"
    else
        "$@"
    fi
}

# Whatever an earlier run added goes first: same options, same result.
td=("$here/teardown.sh" -c "$chain" -m "$mark" -r "$table")
[ "$dry" = 0 ] || td+=(-n)
if [ "$dry" = 0 ] || [ "$(id -u)" = 0 ]; then
    "${td[@]}"
fi

families=(iptables)
[ "$v6" = 0 ] || families+=(ip6tables)

for ipt in "${families[@]}"; do
    I=("$ipt" -w)
    if [ "$tproxy" = 0 ]; then
        run "${I[@]}" -t nat -N "$chain"
        # The gateway's own services (its web UI on 443...) are not redirected.
        run "${I[@]}" -t nat -A "$chain" -m addrtype --dst-type LOCAL -j RETURN
        for p in "${ports[@]}"; do
            run "${I[@]}" -t nat -A "$chain" -p tcp --dport "$p" -j REDIRECT --to-ports "$port"
        done
        for i in "${lans[@]}"; do
            run "${I[@]}" -t nat -A PREROUTING -i "$i" -p tcp -j "$chain"
        done
        if [ "$local_too" = 1 ]; then
            run "${I[@]}" -t nat -N "${chain}_OUT"
            # Loop avoidance: catena's own connections to the origins (it runs as
            # USER) must reach them, not catena again.
            run "${I[@]}" -t nat -A "${chain}_OUT" -m owner --uid-owner "$uid" -j RETURN
            run "${I[@]}" -t nat -A "${chain}_OUT" -m addrtype --dst-type LOCAL -j RETURN
            for p in "${ports[@]}"; do
                run "${I[@]}" -t nat -A "${chain}_OUT" -p tcp --dport "$p" \
                    -j REDIRECT --to-ports "$port"
            done
            run "${I[@]}" -t nat -A OUTPUT -p tcp -j "${chain}_OUT"
        fi
    else
        fam=-4
        [ "$ipt" = iptables ] || fam=-6
        run "${I[@]}" -t mangle -N "${chain}_DIVERT"
        run "${I[@]}" -t mangle -A "${chain}_DIVERT" -j MARK --set-mark "$mark/$mark"
        run "${I[@]}" -t mangle -A "${chain}_DIVERT" -j ACCEPT
        run "${I[@]}" -t mangle -N "$chain"
        # Packets of connections catena already holds go straight to its socket.
        run "${I[@]}" -t mangle -A "$chain" -p tcp -m socket --transparent -j "${chain}_DIVERT"
        run "${I[@]}" -t mangle -A "$chain" -m addrtype --dst-type LOCAL -j RETURN
        # Each family's table takes the -a of that family, if any.
        on=()
        if [ "$fam" = -4 ] && [ -n "$on_ip4" ]; then
            on=(--on-ip "$on_ip4")
        elif [ "$fam" = -6 ] && [ -n "$on_ip6" ]; then
            on=(--on-ip "$on_ip6")
        fi
        for p in "${ports[@]}"; do
            run "${I[@]}" -t mangle -A "$chain" -p tcp --dport "$p" \
                -j TPROXY --on-port "$port" "${on[@]}" --tproxy-mark "$mark/$mark"
        done
        for i in "${lans[@]}"; do
            run "${I[@]}" -t mangle -A PREROUTING -i "$i" -p tcp -j "$chain"
        done
        # Marked packets are delivered locally (to catena's socket), whatever their
        # destination address.
        run ip "$fam" rule add fwmark "$mark/$mark" lookup "$table"
        if [ "$fam" = -4 ]; then dst=0.0.0.0/0; else dst=::/0; fi
        run ip "$fam" route replace local "$dst" dev lo table "$table"
    fi
done

if [ "$tproxy" = 1 ] && [ "$dry" = 0 ]; then
    echo "$prog: TPROXY rules set; catena's transparent listener needs tproxy = true" >&2
fi
exit 0
