#!/usr/bin/env bash
# lorawan.conduit.linear (the strategy of the provision playbook) through real ansible-playbook: same run as
# ansible.builtin.linear, and its workers keep sharing the controller's memory through a garbage collection.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap 'rm -rf "${workdir}"' EXIT
{ echo '[workers]'; for n in 1 2 3; do
    echo "worker-${n} ansible_connection=local ansible_python_interpreter=$(command -v python)"; done; } > "${workdir}/hosts"
ansible-playbook -i "${workdir}/hosts" "${here}/playbook.yml" > "${workdir}/run.log" 2>&1 \
    || { grep -E 'ERROR|FAILED|fatal|assert|msg' "${workdir}/run.log" | cut -c1-400 | tail -20; exit 1; }
grep -E '"worker-1: ' "${workdir}/run.log"
grep -E '^worker-[0-9] +:' "${workdir}/run.log"
