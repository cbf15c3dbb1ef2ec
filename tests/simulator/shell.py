"""The device shell: enough of busybox ``sh`` for what provisioning sends.

A command line is parsed the way ``sh -c`` would (quotes, ``$VAR``, ``;``,
``&&``, ``||``, ``|``, ``>``, ``>>``, ``<``, ``2>&1``) and run against the
device's :class:`~tests.simulator.vfs.DeviceFs`. Commands are looked up on the
device's ``PATH`` so that a command the device lacks answers
``sh: X: not found`` with status 127, exactly like the real box. Constructs the
simulator does not implement (``$(...)``, ``if``, ``for``, here-documents)
fail loudly with status 2 rather than doing something subtly different.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import posixpath
import re
import shlex
import stat
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from .vfs import DeviceFs, VfsError

SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
BUILTINS = {"echo", "printf", "test", "[", "true", "false", "cd", "exit", ":", "pwd", "export", "umask"}
UNSUPPORTED_WORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case",
                     "esac", "function", "{", "}", "(", ")"}


class ShellSyntaxError(Exception):
    pass


class Stdin(Protocol):
    async def readline(self) -> bytes: ...

    async def read_all(self) -> bytes: ...


class BufferStdin:
    """Standard input that is already known (pipes, ``<`` redirections)."""

    def __init__(self, data: bytes = b""):
        self._data = data

    async def readline(self) -> bytes:
        line, sep, rest = self._data.partition(b"\n")
        self._data = rest
        return line + sep

    async def read_all(self) -> bytes:
        data, self._data = self._data, b""
        return data


class Output:
    """Where a command writes: a buffer, or a live sink (the SSH channel)."""

    def __init__(self, sink: Callable[[bytes], None] | None = None):
        self._sink = sink
        self.buffer = bytearray()

    def write(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self._sink is not None:
            self._sink(data)
        else:
            self.buffer.extend(data)


class DeviceHooks(Protocol):
    """What the shell needs from the device behind it."""

    def sysfs(self, attribute: str) -> str | None: ...

    async def firmware_upgrade(self, path: str, io: "Io") -> int: ...

    async def init_script(self, name: str, action: str, io: "Io") -> int: ...

    def ntp_sync(self, io: "Io") -> int: ...

    async def reboot(self, io: "Io") -> int: ...

    def check_password(self, user: str, password: str) -> bool: ...

    def may_sudo(self, user: str) -> bool: ...

    def process_names(self) -> list[str]: ...


@dataclass
class Io:
    stdin: Stdin
    stdout: Output
    stderr: Output


@dataclass
class Session:
    fs: DeviceFs
    hooks: DeviceHooks
    user: str
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    hostname: str = "mtcdt"
    last_status: int = 0
    # sudo remembers a good password for the rest of the login session (no tty: per parent).
    sudo_granted: set[str] = field(default_factory=set)

    def fork(self, user: str | None = None) -> "Session":
        home = self.fs.accounts[user].home if user and user in self.fs.accounts else self.env.get("HOME", "/")
        env = dict(self.env)
        if user:
            env.update(USER=user, LOGNAME=user, HOME=home)
        return Session(self.fs, self.hooks, user or self.user, self.cwd, env, self.hostname,
                       sudo_granted=self.sudo_granted)


# --- parsing -------------------------------------------------------------------

@dataclass
class Redirect:
    fd: int
    op: str  # '>', '>>', '<', '>&'
    target: str


@dataclass
class Simple:
    argv: list[str]
    redirects: list[Redirect]
    assignments: dict[str, str]


@dataclass
class Pipeline:
    commands: list[Simple]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


_OPERATORS = ("&&", "||", ";;", ">>", ">&", "<<", ";", "|", "&", ">", "<", "(", ")", "\n")
_VAR = re.compile(r"\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*|[?$#0-9])")


_MARK = re.compile("\x02([^\x03]*)\x03")


def _mark(text: str) -> str:
    """Replace ``$NAME`` by a marker; values are filled in when the command runs."""
    return _VAR.sub(lambda m: "\x02" + m.group(1).strip("{}") + "\x03", text)


def expand(text: str, env: dict[str, str]) -> str:
    return _MARK.sub(lambda m: env.get(m.group(1), ""), text)


def tokenize(line: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """Split into ('word', text) and ('op', text) tokens, expanding variables."""
    tokens: list[tuple[str, str]] = []
    i = 0
    word: list[str] | None = None
    globbable = False

    def flush() -> None:
        nonlocal word, globbable
        if word is not None:
            tokens.append(("glob" if globbable else "word", "".join(word)))
        word = None
        globbable = False

    while i < len(line):
        ch = line[i]
        if ch in " \t":
            flush()
            i += 1
            continue
        if ch == "#" and word is None:
            while i < len(line) and line[i] != "\n":
                i += 1
            continue
        if ch == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word = (word or []) + [line[i + 1:end]]
            i = end + 1
            continue
        if ch == '"':
            i += 1
            chunk = []
            while True:
                if i >= len(line):
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < len(line) and line[i + 1] in '"\\$`\n':
                    chunk.append("\\" + line[i + 1] if line[i + 1] == "$" else line[i + 1])
                    i += 2
                    continue
                if c == "`" or line.startswith("$(", i):
                    raise ShellSyntaxError("command substitution is not supported by the simulator")
                chunk.append(c)
                i += 1
            text = "".join(chunk)
            text = _mark(text.replace("\\$", "\x00")).replace("\x00", "$")
            word = (word or []) + [text]
            continue
        if ch == "\\":
            if i + 1 < len(line):
                word = (word or []) + [line[i + 1]]
            i += 2
            continue
        if ch == "`" or line.startswith("$(", i):
            raise ShellSyntaxError("command substitution is not supported by the simulator")
        if ch == "$":
            match = _VAR.match(line, i)
            if match:
                word = (word or []) + ["\x02" + match.group(1).strip("{}") + "\x03"]
                i = match.end()
                continue
        if ch.isdigit() and word is None and i + 1 < len(line) and line[i + 1] in "<>":
            tokens.append(("fd", ch))
            i += 1
            continue
        op = next((o for o in _OPERATORS if line.startswith(o, i)), None)
        if op is not None:
            flush()
            if op == "<<":
                raise ShellSyntaxError("here-documents are not supported by the simulator")
            tokens.append(("op", op))
            i += len(op)
            continue
        if ch in "*?[":
            globbable = True
        word = (word or []) + [ch]
        i += 1
    flush()
    return tokens


def parse(line: str, env: dict[str, str]) -> list[AndOr]:
    tokens = tokenize(line, env)
    lists: list[AndOr] = []
    pos = 0

    def parse_simple() -> Simple:
        nonlocal pos
        argv: list[str] = []
        redirects: list[Redirect] = []
        assignments: dict[str, str] = {}
        while pos < len(tokens):
            kind, text = tokens[pos]
            if kind == "fd" or (kind == "op" and text in (">", ">>", "<", ">&")):
                fd = None
                if kind == "fd":
                    fd = int(text)
                    pos += 1
                    kind, text = tokens[pos] if pos < len(tokens) else ("op", "")
                    if text not in (">", ">>", "<", ">&"):
                        raise ShellSyntaxError("bad redirection")
                pos += 1
                if pos >= len(tokens) or tokens[pos][0] not in ("word", "glob"):
                    raise ShellSyntaxError(f"syntax error: unexpected end after {text}")
                target = tokens[pos][1]
                pos += 1
                redirects.append(Redirect(fd if fd is not None else (0 if text == "<" else 1), text, target))
                continue
            if kind == "op":
                if text in ("(", ")", ";;"):
                    raise ShellSyntaxError(f"syntax error: {text!r} is not supported by the simulator")
                break
            if not argv and kind == "word" and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", text):
                name, _sep, value = text.partition("=")
                assignments[name] = value
                pos += 1
                continue
            if not argv and text in UNSUPPORTED_WORDS and kind == "word":
                raise ShellSyntaxError(f"syntax error: '{text}' is not supported by the simulator")
            argv.append(("\x01" + text) if kind == "glob" else text)
            pos += 1
        return Simple(argv, redirects, assignments)

    def parse_pipeline() -> Pipeline:
        nonlocal pos
        negate = False
        if pos < len(tokens) and tokens[pos] == ("word", "!"):
            negate = True
            pos += 1
        commands = [parse_simple()]
        while pos < len(tokens) and tokens[pos] == ("op", "|"):
            pos += 1
            commands.append(parse_simple())
        for command in commands:
            if not command.argv and not command.assignments and not command.redirects:
                raise ShellSyntaxError("syntax error: empty command")
        return Pipeline(commands, negate)

    while pos < len(tokens):
        if tokens[pos][0] == "op" and tokens[pos][1] in (";", "\n", "&"):
            pos += 1
            continue
        first = parse_pipeline()
        rest = []
        while pos < len(tokens) and tokens[pos][0] == "op" and tokens[pos][1] in ("&&", "||"):
            op = tokens[pos][1]
            pos += 1
            while pos < len(tokens) and tokens[pos] == ("op", "\n"):
                pos += 1
            rest.append((op, parse_pipeline()))
        lists.append(AndOr(first, rest))
        if pos < len(tokens):
            kind, text = tokens[pos]
            if kind == "op" and text in (";", "\n", "&"):
                pos += 1
            else:
                raise ShellSyntaxError(f"syntax error: unexpected {text!r}")
    return lists


# --- running -----------------------------------------------------------------

class ExitShell(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


CommandFn = Callable[["Session", list[str], Io], Awaitable[int]]
COMMANDS: dict[str, CommandFn] = {}


def command(*names: str):
    def register(fn: CommandFn) -> CommandFn:
        for name in names:
            COMMANDS[name] = fn
        return fn
    return register


async def run_line(session: Session, line: str, io: Io) -> int:
    """Run one ``sh -c`` style command line; return its exit status."""
    try:
        lists = parse(line, _env_for(session))
    except ShellSyntaxError as exc:
        io.stderr.write(f"sh: {exc}\n")
        return 2
    status = 0
    try:
        for and_or in lists:
            status = await _run_pipeline(session, and_or.first, io)
            for op, pipeline in and_or.rest:
                if (op == "&&" and status == 0) or (op == "||" and status != 0):
                    status = await _run_pipeline(session, pipeline, io)
            session.last_status = status
    except ExitShell as done:
        return done.status
    return status


def _env_for(session: Session) -> dict[str, str]:
    env = dict(session.env)
    env["?"] = str(session.last_status)
    env["$"] = "4242"
    return env


async def _run_pipeline(session: Session, pipeline: Pipeline, io: Io) -> int:
    stdin = io.stdin
    status = 0
    for index, simple in enumerate(pipeline.commands):
        last = index == len(pipeline.commands) - 1
        out = io.stdout if last else Output()
        status = await _run_simple(session, simple, Io(stdin, out, io.stderr))
        if not last:
            stdin = BufferStdin(bytes(out.buffer))
    if pipeline.negate:
        status = 0 if status else 1
    return status


def _glob(session: Session, pattern: str) -> list[str]:
    directory, _sep, base = pattern.rpartition("/")
    directory = directory or ("/" if pattern.startswith("/") else "")
    try:
        names = session.fs.listdir(directory or ".", session.cwd)
    except VfsError:
        return [pattern]
    matches = [n for n in names if fnmatch.fnmatchcase(n, base) and not n.startswith(".")]
    if not matches:
        return [pattern]
    prefix = (directory.rstrip("/") + "/") if directory else ""
    return [prefix + n for n in matches]


async def _run_simple(session: Session, simple: Simple, io: Io) -> int:
    env = _env_for(session)
    argv: list[str] = []
    for arg in simple.argv:
        if arg.startswith("\x01"):
            argv.extend(_glob(session, expand(arg[1:], env)))
        else:
            argv.append(expand(arg, env))
    simple = Simple(argv, [Redirect(r.fd, r.op, expand(r.target, env)) for r in simple.redirects],
                    {k: expand(v, env) for k, v in simple.assignments.items()})
    stdin, stdout, stderr = io.stdin, io.stdout, io.stderr
    files: list[tuple[str, bool, Output]] = []
    for redirect in simple.redirects:
        if redirect.op == ">&":
            target_fd = redirect.target
            if target_fd not in ("1", "2"):
                io.stderr.write(f"sh: {redirect.target}: bad file descriptor\n")
                return 1
            chosen = stdout if target_fd == "1" else stderr
            if redirect.fd == 2:
                stderr = chosen
            else:
                stdout = chosen
            continue
        if redirect.op == "<":
            try:
                session.fs.check_read(session.user, redirect.target, session.cwd)
                stdin = BufferStdin(session.fs.read_bytes(redirect.target, session.cwd))
            except VfsError as exc:
                io.stderr.write(f"sh: can't open {exc.device_path}: {exc.strerror}\n")
                return 1
            continue
        sink = Output()
        if redirect.target != "/dev/null":
            try:
                session.fs.check_create(session.user, redirect.target, session.cwd)
                if redirect.op == ">":
                    session.fs.write_bytes(redirect.target, b"", session.cwd, user=session.user)
            except VfsError as exc:
                io.stderr.write(f"sh: can't create {exc.device_path}: {exc.strerror}\n")
                return 1
            files.append((redirect.target, True, sink))
        if redirect.fd == 2:
            stderr = sink
        else:
            stdout = sink
    if not argv:
        session.env.update(simple.assignments)
        status = 0
    else:
        status = await execute(session, argv, Io(stdin, stdout, stderr))
    for target, _append, sink in files:
        try:
            session.fs.write_bytes(target, bytes(sink.buffer), session.cwd, append=True, user=session.user)
        except VfsError as exc:
            io.stderr.write(f"sh: write error: {exc.strerror}\n")
            status = 1
    return status


async def execute(session: Session, argv: list[str], io: Io) -> int:
    """Run one command (argv[0] looked up like the device's shell would)."""
    name = argv[0]
    if name in BUILTINS:
        return await COMMANDS[name](session, argv, io)
    if "/" in name:
        try:
            canonical = session.fs.resolve(name, session.cwd)
        except VfsError:
            canonical = None
        if canonical is None or not session.fs.exists(canonical):
            io.stderr.write(f"sh: {name}: not found\n")
            return 127
        if not session.fs.may(session.user, canonical, 1):
            io.stderr.write(f"sh: {name}: Permission denied\n")
            return 126
    else:
        canonical = next((posixpath.join(d, name) for d in SEARCH_PATH
                          if session.fs.exists(posixpath.join(d, name))), None)
        if canonical is None:
            io.stderr.write(f"sh: {name}: not found\n")
            return 127
        canonical = session.fs.resolve(canonical)
    base = posixpath.basename(canonical)
    if canonical.startswith(("/etc/init.d/", "/var/config/init.d/")) or "/init.d/" in canonical:
        action = argv[1] if len(argv) > 1 else ""
        return await session.hooks.init_script(base, action, io)
    impl = COMMANDS.get(base)
    if impl is None:
        io.stderr.write(f"sh: {name}: cannot execute (the simulator does not implement it)\n")
        return 126
    return await impl(session, [name] + argv[1:], io)


def _err(io: Io, prog: str, exc: VfsError) -> int:
    io.stderr.write(f"{prog}: {exc.shell_message()}\n")
    return 1


def _split_flags(argv: list[str], with_value: str = "") -> tuple[dict[str, str | bool], list[str]]:
    """Busybox-style short options: ``-pm 755`` etc. Stops at ``--`` or the first operand."""
    flags: dict[str, str | bool] = {}
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in with_value:
                if letters:
                    flags[letter], letters = letters, ""
                elif rest:
                    flags[letter] = rest.pop(0)
                else:
                    flags[letter] = ""
            else:
                flags[letter] = True
    return flags, rest


# --- builtins ----------------------------------------------------------------

@command("true", ":")
async def _true(session, argv, io):
    return 0


@command("false")
async def _false(session, argv, io):
    return 1


@command("exit")
async def _exit(session, argv, io):
    raise ExitShell(int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else session.last_status)


@command("pwd")
async def _pwd(session, argv, io):
    io.stdout.write(session.cwd + "\n")
    return 0


@command("export", "umask")
async def _export(session, argv, io):
    for arg in argv[1:]:
        name, sep, value = arg.partition("=")
        if sep:
            session.env[name] = value
    return 0


@command("cd")
async def _cd(session, argv, io):
    target = argv[1] if len(argv) > 1 else session.env.get("HOME", "/")
    try:
        canonical = session.fs.resolve(target, session.cwd)
        if not session.fs.stat(canonical) or not stat.S_ISDIR(session.fs.stat(canonical).st_mode):
            raise VfsError(errno.ENOTDIR, target)
    except VfsError as exc:
        io.stderr.write(f"sh: cd: can't cd to {target}: {exc.strerror}\n")
        return 2
    session.cwd = canonical
    return 0


@command("echo")
async def _echo(session, argv, io):
    args = argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline = False
        args = args[1:]
    io.stdout.write(" ".join(args) + ("\n" if newline else ""))
    return 0


_PRINTF_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "0": "\0", "a": "\a"}


def _printf_unescape(text: str) -> str:
    return re.sub(r"\\([ntr\\0a])", lambda m: _PRINTF_ESCAPES[m.group(1)], text)


@command("printf")
async def _printf(session, argv, io):
    if len(argv) < 2:
        io.stderr.write("printf: usage: printf FORMAT [ARGUMENT...]\n")
        return 1
    fmt = _printf_unescape(argv[1])
    args = argv[2:]
    specs = re.findall(r"%[-0-9.]*[sdbx%]", fmt)
    consumers = [s for s in specs if s != "%%"]
    out = []
    while True:
        chunk_args = args[:len(consumers)] if consumers else []
        args = args[len(consumers):] if consumers else []
        values = iter(chunk_args)

        def repl(match: re.Match) -> str:
            spec = match.group(0)
            if spec == "%%":
                return "%"
            value = next(values, "")
            if spec.endswith("b"):
                return _printf_unescape(value)
            if spec.endswith(("d", "x")):
                try:
                    return (spec[:-1] + spec[-1]) % int(value or 0)
                except ValueError:
                    return "0"
            return (spec[:-1] + "s") % value
        out.append(re.sub(r"%[-0-9.]*[sdbx%]", repl, fmt))
        if not args or not consumers:
            break
    io.stdout.write("".join(out))
    return 0


@command("test", "[")
async def _test(session, argv, io):
    args = argv[1:]
    if argv[0] == "[":
        if not args or args[-1] != "]":
            io.stderr.write("[: missing ]\n")
            return 2
        args = args[:-1]
    try:
        return 0 if _evaluate_test(session, args) else 1
    except ValueError as exc:
        io.stderr.write(f"test: {exc}\n")
        return 2


def _evaluate_test(session: Session, args: list[str]) -> bool:
    if not args:
        return False
    if args[0] == "!":
        return not _evaluate_test(session, args[1:])
    for op in ("-a", "-o"):
        if op in args:
            i = args.index(op)
            left, right = _evaluate_test(session, args[:i]), _evaluate_test(session, args[i + 1:])
            return (left and right) if op == "-a" else (left or right)
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2:
        op, path = args
        fs = session.fs
        if op == "-n":
            return path != ""
        if op == "-z":
            return path == ""
        if op in ("-L", "-h"):
            try:
                return stat.S_ISLNK(fs.lstat(path, session.cwd).st_mode)
            except VfsError:
                return False
        try:
            st = fs.stat(path, session.cwd)
        except VfsError:
            return False
        checks = {
            "-e": lambda: True,
            "-f": lambda: stat.S_ISREG(st.st_mode),
            "-d": lambda: stat.S_ISDIR(st.st_mode),
            "-s": lambda: st.st_size > 0,
            "-r": lambda: fs.may(session.user, path, 4, session.cwd),
            "-w": lambda: fs.may(session.user, path, 2, session.cwd),
            "-x": lambda: fs.may(session.user, path, 1, session.cwd),
        }
        if op not in checks:
            raise ValueError(f"{op}: unknown operand")
        return checks[op]()
    if len(args) == 3:
        left, op, right = args
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        numeric = {"-eq": int.__eq__, "-ne": int.__ne__, "-lt": int.__lt__, "-le": int.__le__,
                   "-gt": int.__gt__, "-ge": int.__ge__}
        if op in numeric:
            try:
                return numeric[op](int(left), int(right))
            except ValueError:
                raise ValueError(f"{left}: bad number") from None
    raise ValueError("syntax error")


# --- file commands -------------------------------------------------------------

@command("cat")
async def _cat(session, argv, io):
    _ignored, paths = _split_flags(argv)
    if not paths:
        io.stdout.write(await io.stdin.read_all())
        return 0
    status = 0
    for path in paths:
        if path == "-":
            io.stdout.write(await io.stdin.read_all())
            continue
        try:
            session.fs.check_read(session.user, path, session.cwd)
            io.stdout.write(session.fs.read_bytes(path, session.cwd))
        except VfsError as exc:
            status = _err(io, "cat", exc)
    return status


@command("head", "tail")
async def _head(session, argv, io):
    argv = [argv[0]] + [f"-n{a[1:]}" if re.fullmatch(r"-\d+", a) else a for a in argv[1:]]
    flags, paths = _split_flags(argv, "nc")
    count = int(flags.get("n", 10) or 10)
    data = await io.stdin.read_all() if not paths else None
    if data is None:
        try:
            session.fs.check_read(session.user, paths[0], session.cwd)
            data = session.fs.read_bytes(paths[0], session.cwd)
        except VfsError as exc:
            return _err(io, argv[0], exc)
    lines = data.splitlines(keepends=True)
    chosen = lines[:count] if posixpath.basename(argv[0]) == "head" else lines[-count:] if count else []
    io.stdout.write(b"".join(chosen))
    return 0


@command("tee")
async def _tee(session, argv, io):
    flags, paths = _split_flags(argv)
    data = await io.stdin.read_all()
    io.stdout.write(data)
    status = 0
    for path in paths:
        try:
            session.fs.check_create(session.user, path, session.cwd)
            session.fs.write_bytes(path, data, session.cwd, append=bool(flags.get("a")), user=session.user)
        except VfsError as exc:
            status = _err(io, "tee", exc)
    return status


@command("touch")
async def _touch(session, argv, io):
    _ignored, paths = _split_flags(argv)
    status = 0
    for path in paths:
        try:
            if session.fs.exists(path, session.cwd):
                if not session.fs.may(session.user, path, 2, session.cwd):
                    raise VfsError(errno.EACCES, path)
                continue
            session.fs.check_create(session.user, path, session.cwd)
            session.fs.write_bytes(path, b"", session.cwd, user=session.user)
        except VfsError as exc:
            status = _err(io, "touch", exc)
    return status


def _parse_mode(text: str, current: int) -> int:
    if re.fullmatch(r"[0-7]{1,4}", text):
        return int(text, 8)
    mode = current
    for clause in text.split(","):
        match = re.fullmatch(r"([ugoa]*)([-+=])([rwx]*)", clause)
        if not match:
            raise ValueError(f"invalid mode '{text}'")
        who, op, perms = match.groups()
        who = who or "a"
        bits = 0
        for w in ("u", "g", "o"):
            if w in who or "a" in who:
                shift = {"u": 6, "g": 3, "o": 0}[w]
                for p, v in (("r", 4), ("w", 2), ("x", 1)):
                    if p in perms:
                        bits |= v << shift
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mask = 0
            for w in ("u", "g", "o"):
                if w in who or "a" in who:
                    mask |= 7 << {"u": 6, "g": 3, "o": 0}[w]
            mode = (mode & ~mask) | bits
    return mode


def _require_owner_or_root(session: Session, path: str) -> None:
    if session.user != "root" and session.fs.owner(path, session.cwd)[0] != session.user:
        raise VfsError(errno.EPERM, path)


@command("chmod")
async def _chmod(session, argv, io):
    flags, rest = _split_flags(argv)
    if len(rest) < 2:
        io.stderr.write("chmod: missing operand\n")
        return 1
    mode_text, paths = rest[0], rest[1:]
    status = 0
    for path in paths:
        try:
            _require_owner_or_root(session, path)
            current = stat.S_IMODE(session.fs.stat(path, session.cwd).st_mode)
            session.fs.chmod(path, _parse_mode(mode_text, current), session.cwd)
        except VfsError as exc:
            status = _err(io, "chmod", exc)
        except ValueError as exc:
            io.stderr.write(f"chmod: {exc}\n")
            return 1
    return status


@command("chown")
async def _chown(session, argv, io):
    flags, rest = _split_flags(argv)
    if len(rest) < 2:
        io.stderr.write("chown: missing operand\n")
        return 1
    spec, paths = rest[0], rest[1:]
    user, _sep, group = spec.replace(".", ":", 1).partition(":") if ":" not in spec else spec.partition(":")
    if user and user not in session.fs.accounts:
        io.stderr.write(f"chown: unknown user {user}\n")
        return 1
    if session.user != "root":
        io.stderr.write(f"chown: {paths[0]}: Operation not permitted\n")
        return 1
    status = 0
    for path in paths:
        try:
            if not session.fs.exists(path, session.cwd, follow=not flags.get("h")):
                raise VfsError(errno.ENOENT, path)
            canonical = session.fs.resolve(path, session.cwd, follow_last=not flags.get("h"))
            session.fs.set_owner(canonical, user, group or None)
            if flags.get("R"):
                _chown_tree(session, canonical, user, group or None)
        except VfsError as exc:
            status = _err(io, "chown", exc)
    return status


def _chown_tree(session: Session, canonical: str, user: str, group: str | None) -> None:
    try:
        names = session.fs.listdir(canonical)
    except VfsError:
        return
    for name in names:
        child = posixpath.join(canonical, name)
        session.fs.set_owner(child, user, group)
        if not stat.S_ISLNK(session.fs.lstat(child).st_mode):
            _chown_tree(session, child, user, group)


@command("mkdir")
async def _mkdir(session, argv, io):
    flags, paths = _split_flags(argv, "m")
    try:
        mode = _parse_mode(str(flags["m"]), 0o755) if "m" in flags else 0o755
    except ValueError as exc:
        io.stderr.write(f"mkdir: {exc}\n")
        return 1
    status = 0
    for path in paths:
        try:
            if not (flags.get("p") and session.fs.exists(path, session.cwd)):
                session.fs.check_create(session.user, path, session.cwd) if not flags.get("p") else None
                _mkdir_checked(session, path, mode, bool(flags.get("p")))
        except VfsError as exc:
            io.stderr.write(f"mkdir: can't create directory '{path}': {exc.strerror}\n")
            status = 1
    return status


def _mkdir_checked(session: Session, path: str, mode: int, parents: bool) -> None:
    canonical = session.fs.resolve(path, session.cwd)
    parent = posixpath.dirname(canonical)
    if parents and not session.fs.exists(parent):
        _mkdir_checked(session, parent, 0o755, True)
    if session.fs.exists(canonical):
        if parents:
            return
        raise VfsError(errno.EEXIST, path)
    if not session.fs.may(session.user, parent, 3):
        raise VfsError(errno.EACCES, path)
    session.fs.mkdir(canonical, mode, user=session.user)


@command("rm")
async def _rm(session, argv, io):
    flags, paths = _split_flags(argv)
    status = 0
    for path in paths:
        try:
            if not session.fs.exists(path, session.cwd, follow=False):
                if flags.get("f"):
                    continue
                raise VfsError(errno.ENOENT, path)
            canonical = session.fs.resolve(path, session.cwd, follow_last=False)
            if not session.fs.may(session.user, posixpath.dirname(canonical), 3):
                raise VfsError(errno.EACCES, path)
            is_dir = stat.S_ISDIR(session.fs.lstat(canonical).st_mode)
            if is_dir and not (flags.get("r") or flags.get("R")):
                io.stderr.write(f"rm: '{path}' is a directory\n")
                status = 1
                continue
            session.fs.remove(canonical, recursive=is_dir)
        except VfsError as exc:
            io.stderr.write(f"rm: can't remove '{path}': {exc.strerror}\n")
            status = 1
    return status


@command("rmdir")
async def _rmdir(session, argv, io):
    _ignored, paths = _split_flags(argv)
    for path in paths:
        try:
            if session.fs.listdir(path, session.cwd):
                raise VfsError(errno.ENOTEMPTY, path)
            session.fs.remove(path, session.cwd, recursive=True)
        except VfsError as exc:
            return _err(io, "rmdir", exc)
    return 0


@command("mv")
async def _mv(session, argv, io):
    flags, rest = _split_flags(argv)
    if len(rest) < 2:
        io.stderr.write("mv: missing operand\n")
        return 1
    *sources, dest = rest
    status = 0
    for source in sources:
        try:
            session.fs.check_create(session.user, source, session.cwd)
            target = dest
            if session.fs.exists(dest, session.cwd) and stat.S_ISDIR(session.fs.stat(dest, session.cwd).st_mode):
                target = posixpath.join(dest, posixpath.basename(source))
            session.fs.check_create(session.user, target, session.cwd)
            session.fs.rename(source, target, session.cwd)
        except VfsError as exc:
            status = _err(io, "mv", exc)
    return status


@command("cp")
async def _cp(session, argv, io):
    flags, rest = _split_flags(argv)
    if len(rest) < 2:
        io.stderr.write("cp: missing operand\n")
        return 1
    *sources, dest = rest
    status = 0
    for source in sources:
        try:
            session.fs.check_read(session.user, source, session.cwd)
            target = dest
            if session.fs.exists(dest, session.cwd) and stat.S_ISDIR(session.fs.stat(dest, session.cwd).st_mode):
                target = posixpath.join(dest, posixpath.basename(source))
            session.fs.check_create(session.user, target, session.cwd)
            session.fs.copy(source, target, session.cwd, user=session.user)
            if flags.get("p"):
                mode = stat.S_IMODE(session.fs.stat(source, session.cwd).st_mode)
                session.fs.chmod(target, mode, session.cwd)
        except VfsError as exc:
            status = _err(io, "cp", exc)
    return status


@command("ln")
async def _ln(session, argv, io):
    flags, rest = _split_flags(argv)
    if not flags.get("s"):
        io.stderr.write("ln: hard links are not supported by the simulator\n")
        return 1
    if len(rest) != 2:
        io.stderr.write("ln: missing operand\n")
        return 1
    target, link = rest
    fs = session.fs
    try:
        if fs.exists(link, session.cwd) and not flags.get("n") \
                and stat.S_ISDIR(fs.stat(link, session.cwd).st_mode):
            link = posixpath.join(fs.resolve(link, session.cwd), posixpath.basename(target.rstrip("/")))
        if fs.exists(link, session.cwd, follow=False):
            if not flags.get("f"):
                raise VfsError(errno.EEXIST, link)
            if stat.S_ISDIR(fs.lstat(link, session.cwd).st_mode):
                raise VfsError(errno.EISDIR, link)
            fs.check_create(session.user, link, session.cwd)
            fs.remove(link, session.cwd)
        fs.check_create(session.user, link, session.cwd)
        fs.symlink(target, link, session.cwd, user=session.user)
    except VfsError as exc:
        io.stderr.write(f"ln: {link}: {exc.strerror}\n")
        return 1
    return 0


@command("readlink")
async def _readlink(session, argv, io):
    flags, paths = _split_flags(argv)
    try:
        if flags.get("f"):
            io.stdout.write(session.fs.resolve(paths[0], session.cwd) + "\n")
        else:
            io.stdout.write(session.fs.readlink(paths[0], session.cwd) + "\n")
    except (VfsError, IndexError):
        return 1
    return 0


@command("ls")
async def _ls(session, argv, io):
    flags, paths = _split_flags(argv)
    status = 0
    for path in paths or ["."]:
        try:
            st = session.fs.lstat(path, session.cwd)
            if stat.S_ISDIR(session.fs.stat(path, session.cwd).st_mode) and not flags.get("d"):
                names = session.fs.listdir(path, session.cwd)
                if not flags.get("a"):
                    names = [n for n in names if not n.startswith(".")]
                entries = [(n, posixpath.join(path, n)) for n in names]
            else:
                entries = [(path, path)]
            for name, full in entries:
                if flags.get("l"):
                    io.stdout.write(_long_listing(session, name, full) + "\n")
                else:
                    io.stdout.write(name + "\n")
            del st
        except VfsError as exc:
            io.stderr.write(f"ls: {exc.device_path}: {exc.strerror}\n")
            status = 1
    return status


def _long_listing(session: Session, name: str, path: str) -> str:
    st = session.fs.lstat(path, session.cwd)
    owner, group = session.fs.owner(path, session.cwd, follow=False)
    link = f" -> {session.fs.readlink(path, session.cwd)}" if stat.S_ISLNK(st.st_mode) else ""
    stamp = time.strftime("%b %d %H:%M", time.gmtime(st.st_mtime))
    return f"{stat.filemode(st.st_mode)} 1 {owner:<8} {group:<8} {st.st_size:>9} {stamp} {name}{link}"


@command("stat")
async def _stat(session, argv, io):
    flags, paths = _split_flags(argv, "c")
    fmt = str(flags.get("c", "%n %s %a %U %G"))
    status = 0
    for path in paths:
        try:
            follow = bool(flags.get("L"))
            st = session.fs.stat(path, session.cwd) if follow else session.fs.lstat(path, session.cwd)
            owner, group = session.fs.owner(path, session.cwd, follow=follow)
            kind = ("symbolic link" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode)
                    else "regular file" if st.st_size else "regular empty file")
            values = {"n": path, "s": str(st.st_size), "a": format(stat.S_IMODE(st.st_mode), "o"),
                      "U": owner, "G": group, "F": kind, "Y": str(int(st.st_mtime)), "%": "%",
                      "N": f"'{path}'" + (f" -> '{session.fs.readlink(path, session.cwd)}'"
                                          if stat.S_ISLNK(st.st_mode) else "")}
            io.stdout.write(re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group(0)), fmt) + "\n")
        except VfsError as exc:
            io.stderr.write(f"stat: can't stat '{path}': {exc.strerror}\n")
            status = 1
    return status


async def _digest(session, argv, io, algorithm: str) -> int:
    flags, paths = _split_flags(argv)
    status = 0
    if flags.get("c"):
        listing = (await io.stdin.read_all()) if not paths or paths[0] == "-" else session.fs.read_bytes(paths[0])
        for line in listing.decode().splitlines():
            expected, _sep, name = line.strip().partition("  ")
            name = name or "-"
            try:
                session.fs.check_read(session.user, name, session.cwd)
                actual = hashlib.new(algorithm, session.fs.read_bytes(name, session.cwd)).hexdigest()
            except VfsError:
                io.stdout.write(f"{name}: FAILED open or read\n")
                status = 1
                continue
            ok = actual == expected.lower()
            io.stdout.write(f"{name}: {'OK' if ok else 'FAILED'}\n")
            status |= 0 if ok else 1
        return status
    if not paths:
        data = await io.stdin.read_all()
        io.stdout.write(f"{hashlib.new(algorithm, data).hexdigest()}  -\n")
        return 0
    for path in paths:
        try:
            session.fs.check_read(session.user, path, session.cwd)
            digest = hashlib.new(algorithm)
            with open(session.fs.host_path(path, session.cwd), "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            io.stdout.write(f"{digest.hexdigest()}  {path}\n")
        except (VfsError, IsADirectoryError) as exc:
            status = _err(io, f"{algorithm}sum", exc if isinstance(exc, VfsError)
                          else VfsError(errno.EISDIR, path))
    return status


@command("md5sum")
async def _md5sum(session, argv, io):
    return await _digest(session, argv, io, "md5")


@command("sha256sum")
async def _sha256sum(session, argv, io):
    return await _digest(session, argv, io, "sha256")


@command("df")
async def _df(session, argv, io):
    flags, paths = _split_flags(argv)
    fs = session.fs
    mounts = []
    if paths:
        for path in paths:
            try:
                mount = fs.mount_of(fs.resolve(path, session.cwd))
            except VfsError as exc:
                io.stderr.write(f"df: {path}: {exc.strerror}\n")
                return 1
            if mount is None or not fs.exists(path, session.cwd):
                io.stderr.write(f"df: {path}: can't find mount point\n")
                return 1
            mounts.append(mount)
    else:
        mounts = list(fs.mounts)
    io.stdout.write("Filesystem           1K-blocks      Used Available Use% Mounted on\n")
    for mount in mounts:
        used = fs.used_kib(mount)
        available = max(0, mount.size_kib - used)
        percent = (used * 100 + mount.size_kib - 1) // mount.size_kib if mount.size_kib else 0
        io.stdout.write(f"{mount.device:<20} {mount.size_kib:>9} {used:>9} {available:>9} {percent:>3}% {mount.point}\n")
    return 0


@command("sort")
async def _sort(session, argv, io):
    flags, paths = _split_flags(argv, "o")
    try:
        if paths:
            data = b"".join(session.fs.read_bytes(p, session.cwd) for p in paths)
        else:
            data = await io.stdin.read_all()
    except VfsError as exc:
        return _err(io, "sort", exc)
    lines = data.decode("utf-8", "replace").splitlines()
    lines = sorted(set(lines)) if flags.get("u") else sorted(lines)
    if flags.get("r"):
        lines.reverse()
    text = "".join(line + "\n" for line in lines)
    if flags.get("o"):
        try:
            session.fs.check_create(session.user, str(flags["o"]), session.cwd)
            session.fs.write_text(str(flags["o"]), text, cwd=session.cwd, user=session.user)
        except VfsError as exc:
            return _err(io, "sort", exc)
    else:
        io.stdout.write(text)
    return 0


@command("grep")
async def _grep(session, argv, io):
    flags, rest = _split_flags(argv, "e")
    pattern = str(flags["e"]) if "e" in flags else (rest.pop(0) if rest else None)
    if pattern is None:
        io.stderr.write("grep: usage: grep PATTERN [FILE]\n")
        return 2
    try:
        if rest:
            data = session.fs.read_bytes(rest[0], session.cwd)
        else:
            data = await io.stdin.read_all()
    except VfsError as exc:
        io.stderr.write(f"grep: {exc.shell_message()}\n")
        return 2
    regex = re.compile(re.escape(pattern) if flags.get("F") else _bre_to_python(pattern),
                       re.IGNORECASE if flags.get("i") else 0)
    found = 0
    for line in data.decode("utf-8", "replace").splitlines():
        matched = bool(regex.fullmatch(line) if flags.get("x") else regex.search(line))
        if matched != bool(flags.get("v")):
            found += 1
            if not flags.get("q") and not flags.get("c"):
                io.stdout.write(line + "\n")
    if flags.get("c"):
        io.stdout.write(f"{found}\n")
    return 0 if found else 1


_POSIX_CLASSES = {"[:space:]": r"\s", "[:blank:]": " \t", "[:digit:]": "0-9", "[:alpha:]": "A-Za-z",
                  "[:alnum:]": "A-Za-z0-9", "[:upper:]": "A-Z", "[:lower:]": "a-z", "[:punct:]": r"!-/:-@\[-`{-~"}


def _bre_to_python(pattern: str) -> str:
    """POSIX basic regular expression to Python (groups, intervals, alternation, classes)."""
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "(){}|+?" else "\\" + nxt)
            i += 2
            continue
        out.append("\\" + ch if ch in "(){}|+?" else ch)
        i += 1
    return "".join(out)


@command("sed")
async def _sed(session, argv, io):
    flags, rest = _split_flags(argv, "e")
    scripts = [str(flags["e"])] if "e" in flags else ([rest.pop(0)] if rest else [])
    if not scripts:
        io.stderr.write("sed: no script specified\n")
        return 1
    address = None
    script = scripts[0]
    addressed = re.match(r"/((?:[^/\\]|\\.)*)/", script)
    if addressed:
        address = re.compile(_bre_to_python(addressed.group(1)))
        script = script[addressed.end():]
    match = re.fullmatch(r"s(.)(.*?)(?<!\\)\1(.*?)(?<!\\)\1([gI]*)", script, re.S)
    if not match:
        io.stderr.write(f"sed: unsupported command: {scripts[0]} (the simulator knows s///)\n")
        return 1
    delim, regex, replacement, sflags = match.groups()
    regex = regex.replace("\\" + delim, delim)
    replacement = re.sub(r"\\([0-9])", r"\\g<\1>", replacement.replace("\\" + delim, delim)).replace("&", r"\g<0>")
    compiled = re.compile(_bre_to_python(regex), re.IGNORECASE if "I" in sflags else 0)
    count = 0 if "g" in sflags else 1
    targets = rest if rest else [None]
    for target in targets:
        try:
            data = (await io.stdin.read_all()) if target is None else session.fs.read_bytes(target, session.cwd)
        except VfsError as exc:
            return _err(io, "sed", exc)
        lines = data.decode("utf-8", "replace").splitlines(keepends=True)
        edited = "".join((compiled.sub(replacement, line.rstrip("\n"), count=count)
                          if address is None or address.search(line) else line.rstrip("\n"))
                         + ("\n" if line.endswith("\n") else "") for line in lines)
        if flags.get("i") and target is not None:
            try:
                session.fs.check_create(session.user, target, session.cwd)
                session.fs.write_text(target, edited, cwd=session.cwd, user=session.user)
            except VfsError as exc:
                return _err(io, "sed", exc)
        else:
            io.stdout.write(edited)
    return 0


@command("wc")
async def _wc(session, argv, io):
    flags, paths = _split_flags(argv)
    try:
        data = session.fs.read_bytes(paths[0], session.cwd) if paths else await io.stdin.read_all()
    except VfsError as exc:
        return _err(io, "wc", exc)
    lines = data.count(b"\n")
    if flags.get("l"):
        io.stdout.write(f"{lines}\n")
    elif flags.get("c"):
        io.stdout.write(f"{len(data)}\n")
    else:
        io.stdout.write(f"{lines} {len(data.split())} {len(data)}\n")
    return 0


@command("basename", "dirname")
async def _basename(session, argv, io):
    if len(argv) < 2:
        return 1
    func = posixpath.basename if posixpath.basename(argv[0]) == "basename" else posixpath.dirname
    io.stdout.write((func(argv[1].rstrip("/") or "/") or ".") + "\n")
    return 0


@command("sleep", "sync", "logger")
async def _noop(session, argv, io):
    return 0


# --- system commands -----------------------------------------------------------

@command("id")
async def _id(session, argv, io):
    flags, _ignored = _split_flags(argv)
    account = session.fs.accounts.get(session.user)
    uid = account.uid if account else 0
    if flags.get("u"):
        io.stdout.write(f"{uid}\n" if not flags.get("n") else f"{session.user}\n")
    else:
        group = account.group if account else "root"
        io.stdout.write(f"uid={uid}({session.user}) gid={account.gid if account else 0}({group})\n")
    return 0


@command("whoami")
async def _whoami(session, argv, io):
    io.stdout.write(session.user + "\n")
    return 0


@command("hostname")
async def _hostname(session, argv, io):
    io.stdout.write(session.hostname + "\n")
    return 0


@command("uname")
async def _uname(session, argv, io):
    flags, _ignored = _split_flags(argv)
    if flags.get("a"):
        io.stdout.write(f"Linux {session.hostname} 5.4.199 #1 Fri Jan 1 00:00:00 UTC 2021 armv5tejl GNU/Linux\n")
    elif flags.get("m"):
        io.stdout.write("armv5tejl\n")
    else:
        io.stdout.write("Linux\n")
    return 0


@command("date")
async def _date(session, argv, io):
    flags, rest = _split_flags(argv)
    if rest and rest[0] == "+%s":
        io.stdout.write(f"{int(time.time())}\n")
    else:
        io.stdout.write(time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime()) + "\n")
    return 0


@command("sh", "bash", "ash")
async def _sh(session, argv, io):
    flags, rest = _split_flags(argv, "c")
    if "c" not in flags:
        if rest:
            try:
                script = session.fs.read_text(rest[0], session.cwd)
            except VfsError as exc:
                io.stderr.write(f"sh: can't open '{rest[0]}': {exc.strerror}\n")
                return 2
        else:
            script = (await io.stdin.read_all()).decode("utf-8", "replace")
    else:
        script = str(flags["c"])
    child = session.fork()
    for index, value in enumerate(rest[1:] if "c" in flags else [], start=1):
        child.env[str(index)] = value
    return await run_line(child, script, io)


@command("env")
async def _env(session, argv, io):
    rest = argv[1:]
    child = session.fork()
    while rest and "=" in rest[0]:
        name, _sep, value = rest.pop(0).partition("=")
        child.env[name] = value
    if not rest:
        for key, value in sorted(child.env.items()):
            io.stdout.write(f"{key}={value}\n")
        return 0
    return await execute(child, rest, io)


@command("sudo")
async def _sudo(session, argv, io):
    flags, rest = _split_flags(argv, "puC")
    prompt = str(flags.get("p", f"[sudo] password for {session.user}: "))
    target_user = str(flags.get("u", "root"))
    if not rest and not flags.get("v"):
        io.stderr.write("usage: sudo -h | -K | -k | -V\n")
        return 1
    if session.user != "root":
        if not session.hooks.may_sudo(session.user):
            io.stderr.write(f"{session.user} is not in the sudoers file.  This incident will be reported.\n")
            return 1
        if session.user not in session.sudo_granted or flags.get("k"):
            if flags.get("n"):
                io.stderr.write("sudo: a password is required\n")
                return 1
            if not flags.get("S"):
                io.stderr.write("sudo: a terminal is required to read the password; either use the -S option "
                                "to read from standard input or configure an askpass helper\n")
                return 1
            if not await _sudo_authenticate(session, prompt, io):
                return 1
    if flags.get("v"):
        return 0
    child = session.fork(target_user)
    return await execute(child, rest, io)


async def _sudo_authenticate(session: Session, prompt: str, io: Io) -> bool:
    """Three tries to read the password from standard input, like ``sudo -S``."""
    for attempt in range(3):
        io.stderr.write(prompt)
        line = await io.stdin.readline()
        if not line:
            io.stderr.write("\nsudo: no password was provided\n")
            return False
        if session.hooks.check_password(session.user, line.rstrip(b"\r\n").decode("utf-8", "replace")):
            session.sudo_granted.add(session.user)
            return True
        io.stderr.write("\nSorry, try again.\n" if attempt < 2 else "\n")
    io.stderr.write("sudo: 3 incorrect password attempts\n")
    return False


@command("mts-io-sysfs")
async def _mts_io_sysfs(session, argv, io):
    if len(argv) < 3 or argv[1] != "show":
        io.stderr.write("Usage: mts-io-sysfs [ OPTIONS ] OBJECT [--] [ ARGUMENTS ]\n"
                        "where  OBJECT := {\n          show SHOW-NAME |\n          store STORE-NAME |\n"
                        "          show-trigger SHOW-TRIGGER-NAME\n        }\n")
        return 1
    value = session.hooks.sysfs(argv[2])
    if value is None:
        io.stderr.write(f"cat: can't open '/sys/devices/platform/mts-io/{argv[2]}': No such file or directory\n")
        return 1
    io.stdout.write(value + "\n")
    return 0


@command("mlinux-firmware-upgrade")
async def _firmware_upgrade(session, argv, io):
    if session.user != "root":
        io.stderr.write("firmware_upgrade: must be run as root\n")
        return 1
    if len(argv) != 2:
        io.stderr.write("Usage: mlinux-firmware-upgrade <firmware image>\n")
        return 1
    return await session.hooks.firmware_upgrade(argv[1], io)


@command("reboot", "shutdown")
async def _reboot(session, argv, io):
    if session.user != "root":
        io.stderr.write("reboot: Operation not permitted\n")
        return 1
    return await session.hooks.reboot(io)


@command("ntpdate")
async def _ntpdate(session, argv, io):
    if session.user != "root":
        io.stderr.write("ntpdate: bind() fails: Permission denied\n")
        return 1
    return session.hooks.ntp_sync(io)


@command("update-rc.d")
async def _update_rc_d(session, argv, io):
    if session.user != "root":
        io.stderr.write("update-rc.d: must be run as root\n")
        return 1
    flags, rest = _split_flags(argv)
    if len(rest) < 2:
        io.stderr.write("usage: update-rc.d [-n] [-f] [-r <root>] <basename> remove|defaults [NN [NN]]\n")
        return 1
    name, action = rest[0], rest[1]
    fs = session.fs
    if action == "remove":
        for level in "0123456S":
            directory = f"/etc/rc{level}.d"
            if fs.exists(directory):
                for entry in fs.listdir(directory):
                    if re.fullmatch(rf"[SK]\d\d{re.escape(name)}", entry):
                        fs.remove(posixpath.join(directory, entry))
        return 0
    if action != "defaults":
        io.stderr.write(f"update-rc.d: unsupported action {action}\n")
        return 1
    if not fs.exists(f"/etc/init.d/{name}"):
        io.stderr.write(f"update-rc.d: /etc/init.d/{name}: file does not exist\n")
        return 1
    start = rest[2] if len(rest) > 2 else "20"
    kill = rest[3] if len(rest) > 3 else start
    links = [(level, f"S{start}") for level in "2345"] + [(level, f"K{kill}") for level in "016"]
    existing = any(fs.exists(f"/etc/rc{level}.d/{prefix}{name}", follow=False) for level, prefix in links)
    if existing and not flags.get("f"):
        io.stdout.write(f" System startup links for /etc/init.d/{name} already exist.\n")
        return 0
    io.stdout.write(f" Adding system startup for /etc/init.d/{name}.\n")
    for level, prefix in links:
        directory = f"/etc/rc{level}.d"
        if not fs.exists(directory):
            fs.mkdir(directory, 0o755, parents=True)
        if not fs.exists(f"{directory}/{prefix}{name}", follow=False):
            fs.symlink(f"../init.d/{name}", f"{directory}/{prefix}{name}")
    return 0


@command("pgrep", "pidof")
async def _pgrep(session, argv, io):
    flags, rest = _split_flags(argv)
    names = session.hooks.process_names()
    wanted = rest[0] if rest else ""
    matches = [n for n in names if (n == wanted if flags.get("x") or argv[0] == "pidof" else wanted in n)]
    for index, _name in enumerate(matches):
        io.stdout.write(f"{1000 + index}\n")
    return 0 if matches else 1


def split_words(text: str) -> list[str]:
    """shlex split for default-file values (quotes removed)."""
    return shlex.split(text, posix=True)
