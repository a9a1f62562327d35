#!/usr/bin/env bash
# `npm test`'s pretest: the suite runs against real servers and tools (OpenSSH sshd and
# client, Dropbear, TinySSH, AsyncSSH for the strict-KEX re-key test, iproute2 for the
# network namespace tests, procps). Missing ones
# are installed when running as root on Debian; otherwise this prints the one command that
# installs them and fails. Nothing is ever skipped for want of a package.
set -euo pipefail

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
)

missing_packages() {
  local entry what pkg out=()
  for entry in "${checks[@]}"; do
    read -r what pkg <<<"$entry"
    if [[ "$what" == *.py ]]; then
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
