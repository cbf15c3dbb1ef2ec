#!/usr/bin/env bash
# jumphost_register and jumphost_tunnels against a real sshd jumphost: check ->
# run -> check -> run in both account modes, re-keying, a malformed line kept,
# deregistration, bad input, and 32 registrations at once. No password in -vvv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
python "${here}/make_gateways.py" "${workdir}/gateways.yml" 44
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
ANSIBLE_FORKS=40 python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --jumphost --subnet "${SIM_SUBNET:-127.63.0.0/24}" -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" -i "$1" "$0" > "$2" 2>&1' \
    "${here}/playbook.yml" "${workdir}/gateways.yml" "${workdir}/run.log" \
    || { grep -E 'FAILED|fatal|assert|msg' "${workdir}/run.log" | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log"
grep -E '^gw-(01|44) +:' "${workdir}/run.log"
