#!/usr/bin/env bash
# mlinux_upgrade against simulated AEP units: check -> run -> check -> run on an
# MTCDT and an MTCAP, every kind of bad image refused before any upload, a
# dropped upload resumed, a unit that never returns, a cellular unit, and no
# password in the -vvv output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
images="${workdir}/images"
mkdir -p "${images}"
for model in mtcdt mtcap; do
    python -m simulator image "${images}/good-${model}.bin" --model "${model}" --size 3M --version 5.3.31
done
python -m simulator image "${images}/other-version-mtcdt.bin" --model mtcdt --size 1M --version 5.3.30
for defect in wrong-model bad-md5 truncated not-tar; do
    python -m simulator image "${images}/${defect}.bin" --model mtcdt --size 1M --defect "${defect}"
done
printf '%064d  good-mtcdt.bin\n' 0 > "${images}/SHA256SUMS"
# aep-01 MTCDT with a new host key after the flash, aep-02 MTCAP, aep-03 drops the upload, aep-04 never returns,
# aep-05 cellular, aep-06 for the bad images, aep-07 gets a different version,
# aep-08 has too little room in /tmp
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --aep 8 --flash-time 1 --reboot-time 1 --subnet "${SIM_SUBNET:-127.63.0.0/24}" \
    --device aep-01:commissioned=1,ssh_enabled=1,keep_host_keys=0 \
    --device aep-02:commissioned=1,ssh_enabled=1,product=MTCAP-868-001A \
    --device aep-03:commissioned=1,ssh_enabled=1,drop_upload_after=1000000 \
    --device aep-04:commissioned=1,ssh_enabled=1,never_return=1 \
    --device aep-05:commissioned=1,ssh_enabled=1,cellular=1 \
    --device aep-06:commissioned=1,ssh_enabled=1 \
    --device aep-07:commissioned=1,ssh_enabled=1 \
    --device aep-08:commissioned=1,ssh_enabled=1,volatile_mib=2 -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" -e "images=$2" "$0" > "$1" 2>&1' \
    "${here}/playbook.yml" "${workdir}/run.log" "${images}" \
    || { grep -E 'FAILED|fatal|assert|"msg"' "${workdir}/run.log" | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log"
grep -E '^aep-0[1-8] +:' "${workdir}/run.log"
