#!/usr/bin/env bash
# The conduits inventory plugin against the simulator on a loopback LAN: a
# sweep finds the AEP units by their mPower answer, the ledger brings the
# mLinux unit it identified (at the address it recorded) and one that is
# provisioned; ansible-inventory --graph shows the groups.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --aep 2 --aep-mtcap 1 --mlinux 1 --device aep-02:commissioned=1,ssh_enabled=1 \
    --subnet "${SIM_SUBNET:-127.65.0.0/24}" -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" -e "work=$1" -e "subnet=$2" "$0" > "$1/run.log" 2>&1' \
    "${here}/playbook.yml" "${workdir}" "${SIM_SUBNET:-127.65.0.0/24}" \
    || { grep -E 'ERROR|FAILED|fatal|assert|msg' "${workdir}/run.log" | cut -c1-400 | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log"
sed -n '/--graph/,/^ok:/p' "${workdir}/run.log" | grep -E '^\s+"\s*\|--' | head -20 || true
grep -E '^mlinux-01 +:' "${workdir}/run.log"
