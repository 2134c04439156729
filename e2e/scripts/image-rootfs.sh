# shellcheck shell=bash
# Root filesystems for images built without a container engine from files on this machine
# (sourced by build-images.sh and landlord-images.sh).

# copy_path ROOT PATH: PATH under ROOT as it is (a symlink stays one) and, when it is a
# link, what it resolves to. /bin, /lib and /lib64 name their /usr counterparts (Debian 12
# merged them), so the copy goes through /usr and ROOT keeps the same links.
copy_path() {
  local root=$1 p=$2
  [[ $p == /usr/* ]] || p=/usr$p
  if [[ ! -e $root$p && ! -L $root$p ]]; then
    mkdir -p "$root${p%/*}"
    cp -a "$p" "$root$p"
  fi
  [[ -L $p ]] && copy_path "$root" "$(realpath "$p")"
  return 0
}

# copy_libs ROOT FILE...: every shared library each file loads (ldd) under ROOT, so a
# dynamically linked binary runs in the image.
copy_libs() {
  local root=$1 f lib
  shift
  for f in "$@"; do
    for lib in $(ldd "$f" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
      copy_path "$root" "$lib"
    done
  done
}

# copy_with_libs ROOT FILE...: each file under ROOT at its own path, with its libraries.
copy_with_libs() {
  local root=$1 f
  shift
  for f in "$@"; do
    copy_path "$root" "$f"
    copy_libs "$root" "$f"
  done
}

# distroless_cc_rootfs ROOT: what gcr.io/distroless/cc-debian12:nonroot gives a binary: the
# merged-/usr links, CA certificates, /tmp, and the users root and nonroot (65532).
distroless_cc_rootfs() {
  local root=$1 d
  mkdir -p "$root"/{etc/ssl/certs,tmp,home/nonroot}
  chmod 1777 "$root/tmp"
  for d in bin lib sbin lib64; do [[ -L /$d ]] && ln -sfn "$(readlink "/$d")" "$root/$d"; done
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  chown 65532:65532 "$root/home/nonroot"
}

