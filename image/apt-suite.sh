# Sourced by the scripts that need packages of a Debian suite other than this machine's (trixie,
# sid) without touching the machine's own apt sources: apt runs with lists and a cache of its own.
#
#   . image/apt-suite.sh
#   apt_suite SUITE ARCH DIR     # sets APT_SUITE=(apt-get options...) and runs apt-get update once a day
#   apt-get "${APT_SUITE[@]}" download PACKAGE...
#
# MIRROR (default deb.debian.org) names the mirror. sid's Release file can be past its
# Valid-Until against a machine's clock; the check is off (the archive key still signs it).

apt_suite() {
  local suite="$1" arch="$2" dir="$3"
  local mirror="${MIRROR:-http://deb.debian.org/debian}"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$dir/sources.list"
  APT_SUITE=(-o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=/nonexistent
    -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Architectures::="$arch"
    -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false -o APT::Sandbox::User=root -q)
  if [ -z "$(find "$dir/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
    apt-get "${APT_SUITE[@]}" update -qq || { echo "apt-get update against $mirror $suite failed: is the mirror reachable?" >&2; return 1; }
  fi
}
