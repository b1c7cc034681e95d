# Shared shell helpers for the project's scripts. Source it; do not run it.

log() { printf '[micro] %s\n' "$*" >&2; }

# apt_install PKG...: installs the Debian packages that are missing (root only),
# running `apt-get update` once first.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing packages: ${missing[*]} (run as root or install them)"; return 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_toolchains: cargo and go must be on PATH.
ensure_toolchains() {
  [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
  [ -d /usr/local/go/bin ] && PATH="/usr/local/go/bin:$PATH"
  export PATH
  command -v cargo >/dev/null || { log "cargo not found"; return 1; }
  command -v go >/dev/null || { log "go not found"; return 1; }
}

# ensure_deps: everything the build and the tests need on this machine.
ensure_deps() {
  ensure_toolchains
  # protoc for etcd-client's build; etcd for the etcd tests.
  apt_install protobuf-compiler etcd-server etcd-client
}
