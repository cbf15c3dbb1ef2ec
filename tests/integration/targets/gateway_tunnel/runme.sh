#!/usr/bin/env bash
# gateway_facts, jumphost_register and gateway_tunnel on simulated mLinux units
# (MTCDT and MTCAP) through the real sshd jumphost: check mode changes nothing,
# the tunnel carries OpenSSH `ssh -J` to each unit, a re-run changes nothing,
# a changed host key is refused until the unit is declared re-flashed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
ssh-keygen -q -t ed25519 -N "" -C provisioning -f "${workdir}/provisioning"
ssh-keygen -q -t rsa -b 2048 -N "" -C impostor -f "${workdir}/impostor"
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --mlinux 2 --mlinux-mtcap 1 --jumphost --subnet "${SIM_SUBNET:-127.64.0.0/24}" -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" -e "work=$1" "$0" > "$1/run.log" 2>&1' \
    "${here}/playbook.yml" "${workdir}" \
    || { grep -E 'ERROR|FAILED|fatal|assert|msg' "${workdir}/run.log" | cut -c1-400 | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log"
grep -E '^mlinux-0[12] +:' "${workdir}/run.log"
