"""The mPower HTTPS API of a simulated AEP Conduit (reference §3).

Envelope: success is HTTP 200 ``{"code": 200, "status": "success", "result": ...}``,
failure is HTTP ``<code>`` ``{"code": <code>, "status": "fail", "error": "..."}``.
Query strings are decoded the way the device's web server does (``+`` is a
space, ``&`` separates parameters, ``#`` never arrives), so a client that does
not URL-encode a password fails here as it fails on the device.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .device import AasSession, ApiToken, password_problem

if TYPE_CHECKING:
    from .device import Device

DEVICE_KEY = web.AppKey("device", object)


def ok(result: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": 200, "status": "success"}
    if result is not None:
        body["result"] = result
    return web.json_response(body)


def fail(code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "status": "fail", "error": message}, status=code)


def _device(request: web.Request) -> "Device":
    return request.app[DEVICE_KEY]  # type: ignore[return-value]


@web.middleware
async def envelope_middleware(request: web.Request, handler):
    device = _device(request)
    device.log("http", method=request.method, path=request.path,
               params=sorted(request.query.keys()))
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return fail(exc.status, exc.reason or "error")
        raise
    except Exception as exc:  # the device answers 500, it never crashes
        device.log("http-error", error=repr(exc))
        return fail(500, "Internal server error")


async def _json_body(request: web.Request) -> tuple[Any, web.Response | None]:
    text = await request.text()
    if not text.strip():
        return None, fail(400, "Request body is empty")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, fail(400, f"Invalid JSON: {exc.msg} at position {exc.pos}")


def _token_user(request: web.Request) -> tuple[str | None, web.Response | None]:
    device = _device(request)
    token = request.query.get("token") or request.cookies.get("token")
    if not token:
        return None, fail(401, "Authentication required")
    entry = device.mpower.tokens.get(token)
    timeout = int(device.mpower.running.get("timeoutSeconds", 300) or 300)
    if entry is None:
        return None, fail(401, "Invalid or expired token")
    if time.time() - entry.last_used > timeout:
        del device.mpower.tokens[token]
        return None, fail(401, "Invalid or expired token")
    entry.last_used = time.time()
    return entry.user, None


async def commissioning_get(request: web.Request) -> web.Response:
    device = _device(request)
    if device.mpower.commissioned:
        return fail(400, "commissioning is finished")
    return ok({"aasID": "", "aasType": "", "aasMsg": "", "username": ""})


async def commissioning_post(request: web.Request) -> web.Response:
    device = _device(request)
    if device.mpower.commissioned:
        return fail(400, "commissioning is finished")
    body, error = await _json_body(request)
    if error:
        return error
    if not isinstance(body, dict):
        return fail(400, "Request body must be a JSON object")
    username = body.get("username")
    aas_id = body.get("aasID", "")
    answer = body.get("aasAnswer", "")
    if not isinstance(username, str) or not isinstance(aas_id, str) or not isinstance(answer, str):
        return fail(400, "username, aasID and aasAnswer must be strings")
    if not aas_id:
        if not username or username.startswith("-") or not username.replace("-", "").replace("_", "").replace(
                ".", "").isalnum():
            return ok({"aasID": "", "aasType": "error", "aasMsg": f"Invalid user name '{username}'"})
        new_id = secrets.token_hex(8).upper()
        device.mpower.aas[new_id] = AasSession(username=username, step="password")
        return ok({"aasID": new_id, "aasType": "password", "aasMsg": f"Enter a password for {username}"})
    session = device.mpower.aas.get(aas_id)
    if session is None:
        return fail(400, "Unknown or expired aasID")
    if session.username != username:
        return fail(400, "username does not match the commissioning session")
    if session.step == "password":
        problem = password_problem(answer, username)
        if problem:
            return ok({"aasID": aas_id, "aasType": "error", "aasMsg": problem})
        session.password = answer
        session.step = "confirm"
        return ok({"aasID": aas_id, "aasType": "password", "aasMsg": "Confirm the password"})
    if answer != session.password:
        session.step = "password"
        session.password = ""
        return ok({"aasID": aas_id, "aasType": "error", "aasMsg": "Passwords do not match"})
    del device.mpower.aas[aas_id]
    device._commission(username, answer)  # pylint: disable=protected-access
    device.log("commissioned", username=username)
    return ok({"aasID": aas_id, "aasType": "info", "aasMsg": "Commissioning complete"})


async def login(request: web.Request) -> web.Response:
    device = _device(request)
    if request.method == "POST":
        body, error = await _json_body(request)
        if error:
            return error
        body = body if isinstance(body, dict) else {}
        username, password = body.get("username"), body.get("password")
    else:
        username, password = request.query.get("username"), request.query.get("password")
    if not device.mpower.commissioned:
        return fail(401, "Device is in commissioning mode; create a user first")
    if not isinstance(username, str) or not isinstance(password, str) or \
            device.mpower.users.get(username) != password:
        device.log("login-failed", username=str(username))
        return fail(401, "Invalid username or password")
    token = secrets.token_hex(16).upper()
    device.mpower.tokens[token] = ApiToken(user=username, client=request.remote or "", last_used=time.time())
    response = ok({"token": token, "permission": "admin"})
    response.set_cookie("token", token, httponly=True, secure=True, samesite="Strict")
    return response


async def logout(request: web.Request) -> web.Response:
    device = _device(request)
    token = request.query.get("token") or request.cookies.get("token")
    device.mpower.tokens.pop(token or "", None)
    return ok()


async def system(request: web.Request) -> web.Response:
    _user, error = _token_user(request)
    if error:
        return error
    return ok(_device(request).system_object())


async def remote_access_get(request: web.Request) -> web.Response:
    _user, error = _token_user(request)
    if error:
        return error
    return ok(copy.deepcopy(_device(request).mpower.running))


def _validate_remote_access(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "remoteAccess must be a JSON object"
    for section in ("ssh", "http", "https", "icmp", "snmp", "reverseSsh"):
        value = body.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            return f"{section} must be an object"
        for flag in ("enabled", "lan", "wan"):
            if flag in value and not isinstance(value[flag], bool):
                return f"{section}.{flag} must be true or false"
        if "port" in value and (not isinstance(value["port"], int) or isinstance(value["port"], bool)
                                or not 1 <= value["port"] <= 65535):
            return f"{section}.port must be an integer between 1 and 65535"
    if "timeoutSeconds" in body and not isinstance(body["timeoutSeconds"], int):
        return "timeoutSeconds must be an integer"
    return None


async def remote_access_put(request: web.Request) -> web.Response:
    _user, error = _token_user(request)
    if error:
        return error
    body, error = await _json_body(request)
    if error:
        return error
    problem = _validate_remote_access(body)
    if problem:
        return fail(400, problem)
    device = _device(request)
    merged = copy.deepcopy(device.mpower.running)
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    device.mpower.running = merged
    return ok(copy.deepcopy(merged))


async def command(request: web.Request) -> web.Response:
    _user, error = _token_user(request)
    if error:
        return error
    device = _device(request)
    name = request.match_info["name"]
    if name == "revert":
        device.mpower.running = copy.deepcopy(device.mpower.saved)
    elif name == "save":
        device.mpower.saved = copy.deepcopy(device.mpower.running)
    elif name == "restart":
        device.schedule_cycle("restart")
    elif name == "save_restart":
        device.mpower.saved = copy.deepcopy(device.mpower.running)
        device.schedule_cycle("restart")
    else:
        return fail(404, f"Unknown command '{name}'")
    device.log("command", name=name)
    return ok()


async def not_found(request: web.Request) -> web.Response:
    return fail(404, f"Resource not found: {request.path}")


def build_app(device: "Device") -> web.Application:
    app = web.Application(middlewares=[envelope_middleware], client_max_size=1024 * 1024)
    app[DEVICE_KEY] = device
    app.router.add_get("/api/commissioning", commissioning_get)
    app.router.add_post("/api/commissioning", commissioning_post)
    app.router.add_get("/api/login", login)
    app.router.add_post("/api/login", login)
    app.router.add_get("/api/logout", logout)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/system", system)
    app.router.add_get("/api/remoteAccess", remote_access_get)
    app.router.add_put("/api/remoteAccess", remote_access_put)
    app.router.add_post("/api/command/{name}", command)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
