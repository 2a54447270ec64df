#!/usr/bin/env bash
# Test hosts for the tests that need several machines: each host a network namespace with an
# address of its own on one virtual switch (a bridge in a namespace of its own, joined to
# every host by a veth pair), its own /dev/shm (a small tmpfs) and its own host name. Needs
# root, iproute2 and util-linux. Nothing outside the namespaces and mounts it makes is touched.
#
#   scripts/test-hosts.sh up TAG HOST...     # hosts TAG-HOST, addresses 10.77.0.1, .2, ...
#   scripts/test-hosts.sh exec TAG HOST CMD...  # runs CMD on that host (execs: same pid)
#   scripts/test-hosts.sh addr TAG HOST      # the host's address
#   scripts/test-hosts.sh link TAG HOST up|down  # plugs or unplugs the host's network cable
#   scripts/test-hosts.sh sshd TAG HOST...   # an sshd on each (Debian's openssh-server);
#                                            # prints an ssh_config that reaches them as root
#   scripts/test-hosts.sh down TAG           # stops what runs on the hosts, removes them
set -euo pipefail

state=/run/ipp-test-hosts
cmd=${1:?usage: test-hosts.sh up|exec|addr|link|sshd|down TAG ...}
tag=${2:?a tag names this set of hosts}
[[ $tag =~ ^[a-z0-9-]{1,12}$ ]] || { echo "test-hosts: tag '$tag': 1-12 of a-z 0-9 -" >&2; exit 2; }
dir=$state/$tag

case $cmd in
up)
  shift 2
  [[ $# -ge 1 && $# -le 200 ]] || { echo "test-hosts: up TAG HOST... (1 to 200 hosts)" >&2; exit 2; }
  mkdir -p "$dir"
  sw=$tag-sw
  ip netns add "$sw"
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  i=0
  for host in "$@"; do
    i=$((i + 1))
    ns=$tag-$host
    ip netns add "$ns"
    ip link add "h$i" netns "$sw" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "h$i" master br0
    ip -n "$sw" link set "h$i" up
    ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    mkdir -p "$dir/shm/$host"
    mount -t tmpfs -o size=256m,mode=1777 "ipp-test-$tag-$host" "$dir/shm/$host"
    echo "10.77.0.$i" > "$dir/$host.addr"
  done
  ;;
exec)
  host=${3:?exec TAG HOST CMD...}
  shift 3
  [[ -f $dir/$host.addr ]] || { echo "test-hosts: no host $host in $tag" >&2; exit 2; }
  # A mount and UTS namespace of its own: the host's /dev/shm and name, nothing else changed.
  exec ip netns exec "$tag-$host" unshare --mount --uts sh -c \
    'mount --bind "$1" /dev/shm && hostname "$2" && shift 2 && exec "$@"' \
    sh "$dir/shm/$host" "$tag-$host" "$@"
  ;;
addr)
  cat "$dir/${3:?addr TAG HOST}.addr"
  ;;
link)
  host=${3:?link TAG HOST up|down}
  state_=${4:?link TAG HOST up|down}
  [[ $state_ == up || $state_ == down ]] || { echo "test-hosts: link ... up|down" >&2; exit 2; }
  ip -n "$tag-$host" link set eth0 "$state_"
  ;;
sshd)
  shift 2
  keys=$dir/ssh
  mkdir -p "$keys" /run/sshd
  [[ -f $keys/id ]] || ssh-keygen -q -t ed25519 -N '' -C "ipp-test-$tag" -f "$keys/id"
  [[ -f $keys/host_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$keys/host_key"
  cp "$keys/id.pub" "$keys/authorized_keys"
  for host in "$@"; do
    [[ -f $dir/$host.addr ]] || { echo "test-hosts: no host $host in $tag" >&2; exit 2; }
    cat > "$keys/sshd-$host.conf" <<CONF
ListenAddress $(cat "$dir/$host.addr")
HostKey $keys/host_key
PermitRootLogin prohibit-password
AuthorizedKeysFile $keys/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PidFile $keys/sshd-$host.pid
CONF
    # It forks into the background on the host (its namespaces), where `down` finds it.
    "$0" exec "$tag" "$host" /usr/sbin/sshd -f "$keys/sshd-$host.conf"
  done
  cat > "$keys/config" <<CONF
Host *
  User root
  IdentityFile $keys/id
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
CONF
  echo "$keys/config"
  ;;
down)
  for f in "$dir"/*.addr; do
    [[ -e $f ]] || continue
    host=$(basename "$f" .addr)
    ns=$tag-$host
    # What runs on the host was started by the test that made it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    umount "$dir/shm/$host" 2>/dev/null || true
  done
  ip netns del "$tag-sw" 2>/dev/null || true
  rm -rf "$dir"
  ;;
*)
  echo "test-hosts: unknown command '$cmd'" >&2
  exit 2
  ;;
esac
