"""What a simulated unit's root filesystem holds that no package provides.

Everything else inside a unit is real: OpenSSH's sshd and its sftp-server,
sudo, busybox (the shell and the applets first on PATH), bash, Python, ssh and
autossh, all from the distribution, and the device scripts that
ttn-multitech-cm publishes (``mlinux-firmware-upgrade``), installed from a
checkout of it. What is here stands in for the parts of a Conduit that are not
public or need the hardware: the ``mts-io`` sysfs reader, the boot process,
``update-rc.d`` as OpenEmbedded has it, ``ntpdate`` (no network here), the AEP
shutdown script that holds the cellular hardware check, and a few lines of
``/etc/init.d/functions``.
"""

from __future__ import annotations

# PID 1 of a unit: mounts are made before it runs (unit.py); it starts sshd and the
# runlevel 5 scripts, then waits. busybox's reboot/halt/poweroff signal it (TERM/USR1/USR2)
# as they signal busybox init. On a shutdown it runs the runlevel 6 (or 0) scripts, as
# sysvinit does, waits the unit's shutdown grace (the time a real unit takes before it kills
# every process: a command that asked for the reboot may still return), kills every process,
# and reports to the simulator, which owns what comes next (the flash, the boot time).
# Reports go to fd 3, one line each: "up", "shutdown KIND".
INIT = r"""#!/bin/sh
exec 3>&1
mkdir -p /var/volatile/tmp /var/volatile/log /var/volatile/run /run/sshd
chmod 1777 /var/volatile/tmp
exec </dev/null >>/var/log/boot.log 2>&1
# the simulator is gone (its pipe, or the HUP that unshare sends when it dies): so is the unit
report() { echo "$*" >&3 || { kill -KILL -1; exit 1; }; }
trap 'kill -KILL -1; exit 1' HUP
run_level() {
    level=$1; action=$2
    for script in /etc/rc$level.d/$3*; do
        [ -x "$script" ] || continue
        "$script" "$action" || echo "init: $script $action exited $?"
    done
}
shutdown() {
    trap '' TERM USR1 USR2
    kind=$1
    level=6
    [ "$kind" = reboot ] || level=0
    echo "init: $kind"
    run_level $level stop K
    run_level $level start S
    grace=$(cat /etc/sim/shutdown_grace 2>/dev/null || echo 0)
    [ "$grace" = 0 ] || sleep "$grace"
    kill -KILL -1 2>/dev/null
    report "shutdown $kind"
    exec sleep 2147483647
}
trap 'shutdown reboot' TERM
trap 'shutdown halt' USR1
trap 'shutdown poweroff' USR2
syslogd -O /var/log/messages
rm -f /var/run/sshd.pid
/usr/sbin/sshd -D -e -E /var/log/sshd.log &
# sshd writes its pid file once it listens
tries=0
while [ ! -s /var/run/sshd.pid ] && [ $tries -lt 1000 ]; do
    usleep 10000
    tries=$((tries + 1))
done
run_level 5 start S
report up
while :; do
    sleep 2147483647 &
    wait $!
done
"""

# reboot: busybox's, which signals init and returns at once; the command that ran it races the shutdown. A unit
# whose shutdown grace is 0 stops at once: the command never gets back (init kills it where it waits).
REBOOT = r"""#!/bin/sh
/usr/bin/busybox reboot "$@" || exit $?
if [ "$(cat /etc/sim/shutdown_grace 2>/dev/null)" = 0 ]; then
    exec sleep 60
fi
"""

# mts-io-sysfs: a reader of the mts-io driver's attributes (the unit's /sys holds them).
MTS_IO_SYSFS = r"""#!/bin/sh
usage() {
    echo "Usage: mts-io-sysfs show NAME | store NAME VALUE" >&2
    exit 1
}
[ $# -ge 2 ] || usage
base=/sys/devices/platform/mts-io
case "$1" in
show)
    if [ -f "$base/$2" ]; then
        cat "$base/$2"
    else
        echo "mts-io-sysfs: cannot read $base/$2: No such file or directory" >&2
        exit 1
    fi
    ;;
store)
    [ $# -eq 3 ] || usage
    if [ "$(id -u)" != 0 ]; then
        echo "mts-io-sysfs: store $2: Permission denied" >&2
        exit 1
    fi
    if [ -f "$base/$2" ]; then
        echo "$3" > "$base/$2"
    else
        echo "mts-io-sysfs: cannot write $base/$2: No such file or directory" >&2
        exit 1
    fi
    ;;
*)
    usage
    ;;
esac
"""

# update-rc.d as OpenEmbedded's: `NAME defaults [S [K]]`, `NAME start|stop NN LEVELS . ...`,
# `[-f] NAME remove`.
UPDATE_RC_D = r"""#!/bin/sh
force=0
[ "$1" = -f ] && { force=1; shift; }
[ $# -ge 2 ] || { echo "usage: update-rc.d [-f] NAME remove | defaults [NN [MM]] | start|stop NN LEVELS ." >&2; exit 1; }
name=$1; shift
links() { ls /etc/rc?.d/[SK]??"$name" 2>/dev/null; }
if [ "$1" = remove ]; then
    if [ -f "/etc/init.d/$name" ] && [ $force = 0 ]; then
        echo "update-rc.d: /etc/init.d/$name exists during rc.d purge (use -f to force)" >&2
        exit 1
    fi
    for link in $(links); do rm -f "$link"; done
    exit 0
fi
if [ ! -f "/etc/init.d/$name" ]; then
    echo "update-rc.d: /etc/init.d/$name: file does not exist" >&2
    exit 1
fi
if [ -n "$(links)" ]; then
    echo " System startup links for /etc/init.d/$name already exist."
    exit 0
fi
make() {
    kind=$1; seq=$2; shift 2
    for level in "$@"; do
        mkdir -p "/etc/rc$level.d"
        ln -s "../init.d/$name" "/etc/rc$level.d/$kind$seq$name"
    done
}
case "$1" in
defaults)
    start=${2:-20}; stop=${3:-$start}
    make S "$start" 2 3 4 5
    make K "$stop" 0 1 6
    ;;
start|stop)
    while [ $# -gt 0 ]; do
        kind=S; [ "$1" = stop ] && kind=K
        seq=$2; shift 2
        levels=
        while [ $# -gt 0 ] && [ "$1" != . ]; do levels="$levels $1"; shift; done
        shift
        make $kind "$seq" $levels
    done
    ;;
*)
    echo "update-rc.d: unknown action $1" >&2
    exit 1
    ;;
esac
echo " Adding system startup for /etc/init.d/$name."
"""

# ntpdate: there is no time server here; the unit's knob says whether one answers. One that answers sets the
# clock right (clock_offset, which the date below adds).
NTPDATE = r"""#!/bin/sh
stamp=$(date '+%d %b %H:%M:%S')
if [ "$(cat /etc/sim/ntp_reachable 2>/dev/null)" = 1 ]; then
    offset=$(cat /etc/sim/clock_offset 2>/dev/null || echo 0)
    echo 0 > /etc/sim/clock_offset 2>/dev/null
    echo "$stamp ntpdate[$$]: step time server 127.0.0.123 offset $((0 - ${offset%%.*})).000412 sec"
    exit 0
fi
echo "$stamp ntpdate[$$]: no server suitable for synchronization found" >&2
exit 1
"""

# date as busybox's, on a clock that is off by the unit's clock_offset knob (seconds) until ntpdate sets it right:
# a +FORMAT alone is shown for the clock as the unit has it; anything else is busybox's own.
DATE = r"""#!/bin/sh
offset=$(cat /etc/sim/clock_offset 2>/dev/null || echo 0)
offset=${offset%%.*}
case "$offset" in ''|0|-0) exec /usr/bin/busybox date "$@" ;; esac
if [ $# -eq 1 ] && [ "${1#+}" != "$1" ]; then
    exec /usr/bin/busybox date -d "@$(( $(/usr/bin/busybox date +%s) + offset ))" "$1"
fi
exec /usr/bin/busybox date "$@"
"""

# The packet forwarder as ttn-multitech-cm's make apply installs it (its ttn-pkt-forwarder init script, the same
# pid file), around a stand-in for the program: there is no concentrator here. A unit whose forwarder_crashes knob
# is set has a forwarder that dies as it starts, as one with a broken radio card or configuration does.
FORWARDER_INIT = r"""#!/bin/sh
NAME="ttn-packet-forwarder"
pkt_fwd=/opt/lora/mp_pkt_fwd
pkt_fwd_pidfile=/var/run/lora-pkt-fwd.pid

do_start() {
    echo -n "Starting $NAME: "
    start-stop-daemon --start --background --make-pidfile --pidfile $pkt_fwd_pidfile --exec $pkt_fwd
    echo "OK"
}

do_stop() {
    echo -n "Stopping $NAME: "
    start-stop-daemon --stop --oknodo --pidfile $pkt_fwd_pidfile
    rm -f $pkt_fwd_pidfile
    echo "OK"
}

case "$1" in
start) do_start ;;
stop) do_stop ;;
restart|force-reload) do_stop; sleep 1; do_start ;;
*) echo "Usage: $0 {start|stop|restart|force-reload}" >&2; exit 3 ;;
esac
exit 0
"""

FORWARDER_PROGRAM = r"""#!/bin/sh
if [ "$(cat /etc/sim/forwarder_crashes 2>/dev/null)" = 1 ]; then
    echo "mp_pkt_fwd: ERROR: failed to start the concentrator" >> /var/log/lora-pkt-fwd.log
    exit 1
fi
exec sleep 2147483647
"""

# The part of sysvinit's /etc/init.d/functions that init scripts here use, and on AEP units
# the mPower hardware check that /etc/init.d/umountfs calls (it refuses a foreign image on
# units with a radio).
FUNCTIONS = r"""# /etc/init.d/functions
pidofproc() {
    pidof "$1"
}
killproc() {
    pid=$(pidof "$1") && kill $pid
}
status() {
    if pid=$(pidof "$1"); then
        echo "$1 (pid $pid) is running..."
        return 0
    fi
    echo "$1 is stopped"
    return 3
}
"""

AEP_FUNCTIONS = FUNCTIONS + r"""
mts_fw_check_hw_support_mp() {
    # $1: mPower version, $2: hardware version; a unit with a radio only takes mPower images
    [ "$(cat /sys/devices/platform/mts-io/has-radio 2>/dev/null)" = 1 ] && return 1
    return 0
}
"""

# AEP's shutdown script: the flash that mlinux-firmware-upgrade scheduled is dropped when the
# hardware check fails. The `if` line is the one a real unit has (device reference §11.2).
AEP_UMOUNTFS = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          umountfs
# Default-Stop:      0 6
### END INIT INFO
. /etc/init.d/functions
mpower_version=$(cat /etc/mpower-version)
hw_version=$(cat /sys/devices/platform/mts-io/hw-version)
if [ -f /var/volatile/do_flash_upgrade ]; then
\tif ! mts_fw_check_hw_support_mp "$mpower_version" "$hw_version"; then
\t\techo "umountfs: firmware is not supported on this hardware, upgrade cancelled"
\t\trm -f /var/volatile/do_flash_upgrade
\tfi
fi
sync
"""

MLINUX_UMOUNTFS = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          umountfs
# Default-Stop:      0 6
### END INIT INFO
sync
"""

# The SFTP subsystem: OpenSSH's own server. With the unit's drop_upload_after knob set, the
# link is cut (once) after that many bytes came in, as a cable pulled mid-upload cuts it
# (bytes passed on as they come: head -c, busybox's or coreutils', waits for more than the
# SFTP dialogue sends before its first answer). With upload_rate set (bytes per second), what
# comes in is passed on no faster, as over a slow link.
SFTP_SERVER = r"""#!/bin/sh
PASS_ON='
import os, sys, time
left, rate = int(sys.argv[1]), float(sys.argv[2])
started, passed = time.monotonic(), 0
while left:
    data = os.read(0, 65536 if left < 0 else min(left, 65536))
    if not data:
        break
    os.write(1, data)
    passed += len(data)
    left = left - len(data) if left > 0 else left
    if rate:
        time.sleep(max(0.0, passed / rate - (time.monotonic() - started)))
'
rate=$(cat /etc/sim/upload_rate 2>/dev/null || echo 0)
knob=/etc/sim/drop_upload_after
if [ -s $knob ]; then
    limit=$(cat $knob)
    : > $knob
    /usr/bin/python3 -c "$PASS_ON" "$limit" "$rate" | /usr/lib/openssh/sftp-server -l INFO
    logger -t sim "fault: connection dropped mid-upload"
    pid=$PPID
    while [ "$pid" -gt 1 ]; do
        if [ "$(cat /proc/$pid/comm)" = sshd ]; then
            kill -KILL "$pid"
            break
        fi
        pid=$(cut -d' ' -f4 /proc/$pid/stat)
    done
    exit 1
fi
if [ "$rate" != 0 ]; then
    /usr/bin/python3 -c "$PASS_ON" -1 "$rate" | /usr/lib/openssh/sftp-server -l INFO
    exit
fi
exec /usr/lib/openssh/sftp-server -l INFO
"""

OPKG = r"""#!/bin/sh
# opkg on a unit with no feed reachable: what is installed, nothing to fetch
case "$1" in
list-installed)
    cat /var/lib/opkg/installed
    ;;
update|install|upgrade)
    echo "Collected errors:" >&2
    echo " * opkg_download: Failed to download, no network." >&2
    exit 255
    ;;
*)
    echo "usage: opkg list-installed | update | install PKG" >&2
    exit 1
    ;;
esac
"""

OPKG_INSTALLED = """autossh - 1.4g-r0
busybox - 1.31.1-r0
lora-packet-forwarder - 4.0.1-r31.0
mlinux-version - 5.3.31-r0
mts-io - 4.7.6-r0
openssh-sshd - 8.4p1-r0
python3 - 3.8.13-r0
sudo - 1.9.5p2-r0
"""

# The key exchanges of the unit's OpenSSH 8.4p1 (its package list above), whose defaults these are: the hybrid
# sntrup761x25519 of the host's OpenSSH (9.x) came with 8.5, so a real unit never negotiates it, and it costs each
# side of every handshake some 150 ms of CPU that a real unit's peers never spend.
OPENSSH_8_4_KEX = ("curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,"
                   "ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
                   "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256")

# The unit's ssh client (its tunnel's) offers what its OpenSSH 8.4p1 would.
SSH_CONFIG = """\
Host *
    KexAlgorithms {kex}
"""

SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
{host_keys}
KexAlgorithms {kex}
PidFile /var/run/sshd.pid
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
MaxAuthTries 6
MaxStartups 64:30:128
UsePAM no
AllowTcpForwarding yes
GatewayPorts no
X11Forwarding no
PrintMotd no
PrintLastLog no
UseDNS no
SetEnv PATH={path}
Subsystem sftp /usr/libexec/sim-sftp-server
"""

# The PATH of every session: busybox's applets first, as on the device.
DEVICE_PATH = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin"

PAM_SUDO = """\
auth     required pam_unix.so
account  required pam_unix.so
session  required pam_unix.so
"""

NSSWITCH = """\
passwd:   files
group:    files
shadow:   files
hosts:    files
services: files
"""
