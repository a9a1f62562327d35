#!/usr/bin/env bash
# `npm test`'s pretest: the suite runs against real servers and tools (OpenSSH sshd and
# client, Dropbear, TinySSH, AsyncSSH for the strict-KEX re-key test, iproute2 for the
# network namespace tests, procps, Go and golang.org/x/crypto for the bench's Go anchor, whose
# offline build test/bench/go-anchor.test.ts checks). Missing ones
# are installed when running as root on Debian; otherwise this prints the one command that
# installs them and fails. Nothing is ever skipped for want of a package.
set -euo pipefail

case "${1-}" in
  "") ;;
  -h | --help)
    cat <<'EOF_HELP'
usage: bash .ci/ensure-test-deps.sh      (npm test runs it first, as pretest)

Checks that the suite's real servers and tools are installed (OpenSSH sshd and client,
Dropbear, TinySSH, AsyncSSH, iproute2, procps, Go with golang.org/x/crypto). Missing ones are
installed with apt-get when run as root on Debian; otherwise prints the one apt-get command and
fails.

cost: well under a second when all are present (nothing written); otherwise apt-get update
and install (a minute or two, network to the Debian mirror, system packages changed).
EOF_HELP
    exit 0
    ;;
  *)
    echo "ensure-test-deps: unknown option $1; see --help" >&2
    exit 2
    ;;
esac

# file-or-command → Debian package
checks=(
  "/usr/sbin/sshd openssh-server"
  "/usr/bin/ssh openssh-client"
  "/usr/bin/ssh-keygen openssh-client"
  "/usr/sbin/dropbear dropbear-bin"
  "/usr/bin/dropbearkey dropbear-bin"
  "/usr/sbin/tinysshd tinysshd"
  "/usr/sbin/tinysshd-makekey tinysshd"
  "/usr/sbin/tinysshd-printkey tinysshd"
  "ip iproute2"
  "ps procps"
  "/usr/bin/python3 python3"
  "/usr/lib/python3/dist-packages/asyncssh/__init__.py python3-asyncssh"
  "/usr/bin/go golang-go"
  "/usr/share/gocode/src/golang.org/x/crypto/ssh/client.go golang-golang-x-crypto-dev"
)

missing_packages() {
  local entry what pkg out=()
  for entry in "${checks[@]}"; do
    read -r what pkg <<<"$entry"
    if [[ "$what" == *.py || "$what" == *.go ]]; then
      [[ -f "$what" ]] && continue
    elif [[ "$what" == /* ]]; then
      [[ -x "$what" ]] && continue
    else
      command -v "$what" >/dev/null 2>&1 && continue
    fi
    [[ " ${out[*]-} " == *" $pkg "* ]] || out+=("$pkg")
  done
  echo "${out[*]-}"
}

read -r -a missing <<<"$(missing_packages)"
((${#missing[@]} == 0)) && exit 0

install_cmd="apt-get install -y ${missing[*]}"
if [[ $(id -u) -eq 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  read -r -a still <<<"$(missing_packages)"
  if ((${#still[@]} > 0)); then
    echo "ensure-test-deps: still missing after install: ${still[*]}" >&2
    exit 1
  fi
  exit 0
fi

echo "ensure-test-deps: the test suite needs ${missing[*]} (Debian packages)." >&2
echo "Install them with:  sudo $install_cmd" >&2
exit 1
