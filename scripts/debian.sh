# Sourced by the scripts that need a Debian package the project's tests use.
# debian_package PACKAGE FILE PURPOSE: installs Debian's PACKAGE (as root) unless FILE exists;
# fails, saying how to install it, where it cannot.
debian_package() {
  local package=$1 file=$2 purpose=$3
  if [ -e "$file" ]; then return 0; fi
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $package (Debian package) for $purpose…"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    return 0
  fi
  echo "$package missing; install Debian's $package (sudo apt-get install $package)" >&2
  return 1
}
