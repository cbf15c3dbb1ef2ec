"""Command line of the Conduit simulator.

    python -m simulator serve --aep N --mlinux M [--jumphost] --manifest FILE
    python -m simulator image OUT [--model mtcdt] [--size 64M] [--version 5.3.31] [--defect D]
    python -m simulator demo
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import time

from .device import Knobs
from .fleet import Fleet, FleetOptions, parse_override
from .images import DEFECTS, build_image, parse_size


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="start a simulated fleet and write its manifest")
    serve.add_argument("--aep", type=int, default=0, help="factory-fresh AEP (mPower) units")
    serve.add_argument("--aep-mtcap", type=int, default=0, help="how many of the AEP units are MTCAP")
    serve.add_argument("--mlinux", type=int, default=0, help="units already running mLinux")
    serve.add_argument("--mlinux-mtcap", type=int, default=0, help="how many of the mLinux units are MTCAP")
    serve.add_argument("--jumphost", action="store_true", help="also start a real sshd jumphost (root)")
    serve.add_argument("--jumphost-sudo", choices=("password", "nopasswd"), default="password",
                       help="whether the jumphost's admin gives its password to sudo (default) or not")
    serve.add_argument("--manifest", required=True, help="YAML file written once every device answers")
    serve.add_argument("--state-dir", help="where device filesystems live (default: a new temporary folder)")
    serve.add_argument("--subnet", default="127.77.0.0/16", help="loopback network for the devices")
    serve.add_argument("--first-address", type=int, default=10,
                       help="the first device's offset in the subnet (1 puts a bench unit at 192.168.2.1)")
    serve.add_argument("--dhcp-subnet", help="loopback network the units move to after the flash")
    serve.add_argument("--seed", help="seed for MACs, serials and EUIs (default: the subnet)")
    serve.add_argument("--ports", choices=("standard", "ephemeral"),
                       help="443/22 per device address (default as root) or free ports")
    defaults = Knobs()
    serve.add_argument("--reboot-time", type=float, default=defaults.reboot_time,
                       help="seconds an AEP restart keeps HTTPS and SSH down")
    serve.add_argument("--flash-time", type=float, default=defaults.flash_time,
                       help="seconds from mlinux-firmware-upgrade to mLinux answering")
    serve.add_argument("--boot-time", type=float, default=defaults.boot_time, help="seconds an mLinux reboot takes")
    serve.add_argument("--volatile-mib", type=int, default=defaults.volatile_mib,
                       help="size of the /var/volatile tmpfs (where /tmp lives)")
    serve.add_argument("--device", action="append", default=[], metavar="NAME:KNOB=VALUE[,...]",
                       help="per-device settings: product, cellular, commissioned, ssh_enabled, "
                            "startup_delay, never_return, drop_upload_after, upload_rate, keep_host_keys, "
                            "ntp_reachable, reboot_time, flash_time, boot_time, volatile_mib, post_flash_address, "
                            "forwarder, forwarder_crashes, clock_offset")
    serve.add_argument("--log-level", default="WARNING")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    image = sub.add_parser("image", help="write an mLinux upgrade image for tests")
    image.add_argument("output")
    image.add_argument("--model", default="mtcdt")
    image.add_argument("--size", default="4M")
    image.add_argument("--version", default="5.3.31")
    image.add_argument("--defect", choices=DEFECTS)
    demo = sub.add_parser("demo", help="the README's demo")
    demo.add_argument("--keep", action="store_true", help="leave the fleet running until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "image":
        info = build_image(args.output, args.model, parse_size(args.size), args.version, args.defect)
        print(f"{info.path}: model={info.model} version={info.version} size={info.size} sha256={info.sha256}"
              f"{' defect=' + info.defect if info.defect else ''}")
        return 0
    if args.command == "demo":
        from .demo import run_demo
        return run_demo(keep=args.keep)
    return asyncio.run(serve(args))


def options_from_args(args: argparse.Namespace) -> FleetOptions:
    overrides: dict[str, dict] = {}
    for text in args.device:
        name, values = parse_override(text)
        overrides.setdefault(name, {}).update(values)
    return FleetOptions(
        aep=args.aep, aep_mtcap=args.aep_mtcap, mlinux=args.mlinux, mlinux_mtcap=args.mlinux_mtcap,
        jumphost=args.jumphost, jumphost_sudo_password=args.jumphost_sudo == "password", subnet=args.subnet, first_address=args.first_address,
        dhcp_subnet=args.dhcp_subnet, state_dir=args.state_dir,
        seed=args.seed, standard_ports=None if args.ports is None else args.ports == "standard",
        defaults={"reboot_time": args.reboot_time, "flash_time": args.flash_time, "boot_time": args.boot_time,
                  "volatile_mib": args.volatile_mib},
        overrides=overrides)


async def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        fleet = Fleet(options_from_args(args))
    except (KeyError, ValueError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await fleet.start()
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        print(f"simulator: cannot start: {exc}", file=sys.stderr)
        await fleet.stop()
        return 1
    fleet.write_manifest(args.manifest)
    elapsed = time.monotonic() - fleet.started
    print(f"simulator: {len(fleet.devices)} devices ready in {elapsed:.2f} s; manifest {args.manifest}; "
          f"control {fleet.control_url}", flush=True)
    await stop.wait()
    await fleet.stop()
    if fleet._owns_state_dir:  # pylint: disable=protected-access
        shutil.rmtree(fleet.state_dir, ignore_errors=True)
    print("simulator: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
