#!/bin/sh
# devlog.sh DIR CMD...: runs CMD in a private mount namespace whose /dev/log is the datagram socket
# DIR/log (bound by the test), or, when DIR/log is no socket, has no /dev/log at all. The host's /dev may have no /dev/log to mount over (no syslog daemon),
# so the namespace gets a tmpfs /dev holding the host's entries (device nodes and directories bound,
# symlinks copied) plus a file for the socket to be bound on. Nothing changes outside the namespace.
set -eu
dir=$1
shift
exec unshare -m sh -eu -c '
  dir=$1; shift
  mount --make-rprivate /
  mkdir -p "$dir/dev"
  mount -t tmpfs -o mode=755 devlog "$dir/dev"
  for f in /dev/* ; do
    n=${f#/dev/}
    [ "$n" = log ] && continue
    if [ -L "$f" ]; then cp -P "$f" "$dir/dev/$n"
    elif [ -d "$f" ]; then mkdir "$dir/dev/$n" && mount --rbind "$f" "$dir/dev/$n"
    else : > "$dir/dev/$n" && mount --bind "$f" "$dir/dev/$n"
    fi
  done
  if [ -S "$dir/log" ]; then
    : > "$dir/dev/log"
    mount --bind "$dir/log" "$dir/dev/log"
  fi
  mount --rbind "$dir/dev" /dev
  exec "$@"
' devlog "$dir" "$@"
