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

# The Debian packages the build, the tests and the benchmarks need, and what each
# provides that `preflight` checks for. `protobuf-compiler` alone is not enough:
# etcd-client's build script compiles .proto files that import Google's
# well-known types, which ship in `libprotobuf-dev` (a Recommends of
# protobuf-compiler, so --no-install-recommends leaves it out).
#   package           what must exist afterwards
DEPS=(
  "protobuf-compiler  cmd:protoc"
  "libprotobuf-dev    file:/usr/include/google/protobuf/descriptor.proto"
  "libprotobuf-dev    file:/usr/include/google/protobuf/struct.proto"
  "etcd-server        cmd:etcd"
  "etcd-client        cmd:etcdctl"
  "procps             cmd:ps"
  "gnuplot-nox       cmd:gnuplot"
)

# dep_packages: the package names of DEPS, once each.
dep_packages() {
  local d; for d in "${DEPS[@]}"; do set -- $d; echo "$1"; done | awk '!seen[$0]++'
}

# preflight: fails loudly, naming the Debian package, when a tool or file the
# build or the tests need is missing (instead of failing deep inside a build
# script). Also checks the toolchains.
preflight() {
  local d pkg what missing=()
  for d in "${DEPS[@]}"; do
    set -- $d; pkg=$1; what=$2
    case "$what" in
      cmd:*) command -v "${what#cmd:}" >/dev/null 2>&1 || missing+=("$pkg (provides ${what#cmd:})") ;;
      file:*) [ -e "${what#file:}" ] || missing+=("$pkg (provides ${what#file:})") ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing system packages:"
    local m; for m in "${missing[@]}"; do log "  $m"; done
    log "install them with: apt-get install -y --no-install-recommends $(printf '%s\n' "${missing[@]}" | cut -d' ' -f1 | sort -u | tr '\n' ' ')"
    return 1
  fi
}

# ensure_deps: everything the build and the tests need on this machine, then a
# check that it is really there.
ensure_deps() {
  ensure_toolchains
  apt_install $(dep_packages) || true
  preflight
}
