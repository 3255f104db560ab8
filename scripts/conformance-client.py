#!/usr/bin/env python3
"""The client command the MCP conformance suite runs: `conformance-client.py URL`.

One adapter for every scenario, never special-cased by scenario name: it writes a config for
the URL from tests/fixtures/conformance/client.toml and runs `mcp-exporter check` on it, so the
suite sees exactly what the prober sends. The only input besides the URL is what the scenario
hands over in MCP_CONFORMANCE_CONTEXT: `toolCalls` become the canary calls (one server entry
each), and the client credentials (`client_id`, `client_secret`, `private_key_pem`, `issuer`,
a workload's `valid_jwt`) become the entry's `auth = { type = "oauth", ... }` (docs/auth.md), and an
identity provider's (`idp_token_endpoint`, `idp_client_id`, `idp_id_token`) its
`identity_provider` table (enterprise-managed authorization); every entry has an oauth
`auth`, with no client when the scenario hands none over, as a prober watching a server it has
no client for. Without `toolCalls` the canary is the suite's conventional one,
add_numbers(a=2, b=3). Context keys the prober has no use for are reported on stderr.

A server the check reports `login_required` gets what an operator would do next: `mcp-exporter
login NAME` (authorization code with PKCE; docs/auth.md#login), its authorization URL handed to
scripts/follow-authorization-url.py (a browser whose person approves at once), then the check
again. The entry's `client_metadata_url` is the suite's conventional client ID metadata document
URL (CLIENT_METADATA_URL), used only where an authorization server accepts such documents.

Environment:
  MCP_EXPORTER_BIN        the binary to run (default: target/debug/mcp-exporter)
  MCP_CONFORMANCE_CONTEXT the scenario's context, JSON (set by the suite)
See docs/conformance.md.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "fixtures" / "conformance" / "client.toml"
DEFAULT_CANARY = {"name": "add_numbers", "arguments": {"a": 2, "b": 3}}
# The environment variables the client secret and a workload's JWT are handed over in (never
# written into the file).
SECRET_VARIABLE = "MCP_CONFORMANCE_CLIENT_SECRET"
ASSERTION_VARIABLE = "MCP_CONFORMANCE_ASSERTION"
# The environment variable the identity provider's ID token is handed over in.
ID_TOKEN_VARIABLE = "MCP_CONFORMANCE_IDP_ID_TOKEN"
# Context keys that become the `auth` table (`valid_jwt`: a workload identity token, presented
# with the JWT-bearer grant).
AUTH_KEYS = ("client_id", "client_secret", "private_key_pem", "signing_algorithm", "issuer", "valid_jwt")
# Context keys that become the `identity_provider` table (`idp_issuer`: its token endpoint is
# named directly, so the issuer is not needed).
IDP_KEYS = ("idp_token_endpoint", "idp_client_id", "idp_id_token", "idp_issuer")
# The client ID metadata document URL the suite's authorization servers expect (an operator
# hosts such a document and names it in auth.client_metadata_url).
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"
# The opener of `mcp-exporter login`: GETs the authorization URL and follows its redirect.
OPENER = "python3 %s" % (ROOT / "scripts" / "follow-authorization-url.py")
# How long `login` waits for the redirect (the suite's authorization endpoint answers at once).
LOGIN_WAIT = "15s"


class Unrepresentable(ValueError):
    """A JSON value TOML cannot hold (null inside an array, a non-finite number)."""


def toml_string(text):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append("\\u%04X" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value):
    """A JSON value as a one-line TOML value. A null member of an object is left out (TOML has
    no null, and MCP treats an absent argument like a null one)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unrepresentable("a non-finite number")
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        if any(item is None for item in value):
            raise Unrepresentable("null inside an array")
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        members = [
            "%s = %s" % (toml_string(str(key)), toml_value(item))
            for key, item in value.items()
            if item is not None
        ]
        return "{ " + ", ".join(members) + " }" if members else "{}"
    raise Unrepresentable("null")


def canary_calls(context):
    """The calls the scenario hands over, else the conventional canary."""
    calls = context.get("toolCalls")
    if not isinstance(calls, list) or not calls:
        return [DEFAULT_CANARY]
    return [
        {"name": str(call.get("name", "")), "arguments": call.get("arguments") or {}}
        for call in calls
        if isinstance(call, dict)
    ]


def auth_table(context, key_path):
    """The oauth `auth` inline table for the context's client credentials. The secret is a
    ${VAR} reference (its value goes in the environment); a private key is written to
    `key_path` and named by `private_key_file`."""
    members = ['type = "oauth"']
    if isinstance(context.get("client_id"), str):
        members.append("client_id = %s" % toml_string(context["client_id"]))
    else:
        members.append("client_metadata_url = %s" % toml_string(CLIENT_METADATA_URL))
    if isinstance(context.get("client_secret"), str):
        members.append('client_secret = "${%s}"' % SECRET_VARIABLE)
    if isinstance(context.get("private_key_pem"), str):
        key_path.write_text(context["private_key_pem"], encoding="utf-8")
        key_path.chmod(0o600)
        members.append("private_key_file = %s" % toml_string(str(key_path)))
        members.append('token_endpoint_auth_method = "private_key_jwt"')
    if isinstance(context.get("valid_jwt"), str):
        members.append('assertion = "${%s}"' % ASSERTION_VARIABLE)
    if isinstance(context.get("issuer"), str):
        members.append("authorization_server = %s" % toml_string(context["issuer"]))
    if isinstance(context.get("idp_token_endpoint"), str) and isinstance(context.get("idp_id_token"), str):
        idp = [
            "token_endpoint = %s" % toml_string(context["idp_token_endpoint"]),
            'subject_token = "${%s}"' % ID_TOKEN_VARIABLE,
        ]
        if isinstance(context.get("idp_client_id"), str):
            idp.append("client_id = %s" % toml_string(context["idp_client_id"]))
        members.append("identity_provider = { " + ", ".join(idp) + " }")
    return "{ " + ", ".join(members) + " }"


def render(url, calls, auth):
    """The config: the template once per canary call."""
    template = TEMPLATE.read_text(encoding="utf-8")
    entries = []
    for index, call in enumerate(calls, start=1):
        inline = "{ tool = %s, arguments = %s }" % (
            toml_string(call["name"]),
            toml_value(call["arguments"]),
        )
        entries.append(
            template.replace("@NAME@", "conformance-%d" % index)
            .replace("@URL@", toml_string(url))
            .replace("@CALL@", inline)
            .replace("@AUTH@", auth)
        )
    return "\n".join(entries)


def main(argv):
    if len(argv) != 2:
        print("usage: conformance-client.py URL", file=sys.stderr)
        return 2
    url = argv[1]
    try:
        context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    except json.JSONDecodeError as err:
        print("conformance-client: MCP_CONFORMANCE_CONTEXT is not JSON: %s" % err, file=sys.stderr)
        return 2
    if not isinstance(context, dict):
        context = {}
    unused = sorted(key for key in context if key not in ("name", "toolCalls") + AUTH_KEYS + IDP_KEYS)
    if unused:
        print(
            "conformance-client: context keys the prober has no use for: %s" % ", ".join(unused),
            file=sys.stderr,
        )
    binary = os.environ.get("MCP_EXPORTER_BIN") or str(ROOT / "target" / "debug" / "mcp-exporter")
    env = dict(os.environ)
    if isinstance(context.get("client_secret"), str):
        env[SECRET_VARIABLE] = context["client_secret"]
    if isinstance(context.get("valid_jwt"), str):
        env[ASSERTION_VARIABLE] = context["valid_jwt"]
    if isinstance(context.get("idp_id_token"), str):
        env[ID_TOKEN_VARIABLE] = context["idp_id_token"]
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as tmp:
        try:
            config = render(url, canary_calls(context), auth_table(context, Path(tmp) / "client-key.pem"))
        except Unrepresentable as err:
            print("conformance-client: a tool call cannot be written as TOML: %s" % err, file=sys.stderr)
            return 2
        path = Path(tmp) / "mcp-exporter.toml"
        path.write_text(config, encoding="utf-8")
        returncode, needs_login = check(binary, path, env)
        if needs_login:
            for name in needs_login:
                subprocess.run(
                    [binary, "login", name, "--config", str(path), "--no-browser",
                     "--open-with", OPENER, "--wait", LOGIN_WAIT],
                    check=False, env=env, stdout=sys.stderr,
                )
            returncode, _ = check(binary, path, env)
    return returncode


def check(binary, path, env):
    """Runs `mcp-exporter check` on the config, its report passed through to stdout; returns
    its exit status and the servers it reports login_required."""
    done = subprocess.run(
        [binary, "check", "--config", str(path), "--output", "json"],
        check=False, env=env, stdout=subprocess.PIPE, text=True,
    )
    sys.stdout.write(done.stdout)
    sys.stdout.flush()
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, []
    servers = report.get("servers") if isinstance(report, dict) else None
    needs_login = [
        row.get("server")
        for row in servers or []
        if isinstance(row, dict) and "login_required" in str(row.get("reason", ""))
    ]
    return done.returncode, [name for name in needs_login if isinstance(name, str)]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
