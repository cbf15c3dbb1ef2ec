#!/usr/bin/env bash
# aep_commission against simulated AEP units: check -> run -> check -> run,
# identity against the manifest, the faults the old script got wrong, and no
# password in the -vvv output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
# aep-01 factory, aep-02 slow to boot, aep-03 already commissioned with another
# password, aep-04 an MTCAP, aep-05 factory (password refused by the rules)
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --aep 5 --aep-mtcap 1 --reboot-time 1 --subnet "${SIM_SUBNET:-127.62.0.0/24}" \
    --device aep-02:startup_delay=4 --device aep-03:commissioned=1,ssh_enabled=1 \
    --device aep-04:product=MTCAP-868-001A -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" "$0" > "$1" 2>&1' \
    "${here}/playbook.yml" "${workdir}/run.log" || { grep -E 'FAILED|fatal|assert|msg' "${workdir}/run.log" | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log" 'Sw0rd#&+ !%x' 'rejected-pw'
grep -E '^aep-0[1-5] +:' "${workdir}/run.log"
