"""Holds the simulated Teams (sim/src/teams.rs) against Microsoft's own code.

Given a JSON config (path as the only argument) written by
tests/bot/fake_teams.rs:

    {"metadata_url", "service_url", "login_url", "app_id", "password",
     "tenant", "channel", "cases": [{"name", "activity", "auth_header"}]}

(a) runs botframework-connector's JwtTokenValidation.authenticate_request
    (ChannelValidation, OpenID metadata pointed at the fake) with a
    SimpleCredentialProvider on every case: the fake's inbound tokens, good and
    forged, and reports which were accepted;
(b) runs botframework-connector's ConnectorClient with MicrosoftAppCredentials
    (MSAL underneath) against the fake's token endpoint and Connector: creates
    a thread in a channel, replies into it twice, updates the root with a card,
    updates an unknown activity, and asks for a token with a wrong secret.

Prints one JSON report on stdout. Exit status 0 unless the script itself broke.
"""

import asyncio
import json
import sys
import time
import traceback

import requests
from msal import ConfidentialClientApplication

from botbuilder.schema import Activity, Attachment, ConversationParameters
from botframework.connector import ConnectorClient
from botframework.connector.auth import (
    ChannelValidation,
    JwtTokenValidation,
    MicrosoftAppCredentials,
    SimpleCredentialProvider,
)
from botframework.connector.models import ErrorResponseException

REAL_LOGIN = "https://login.microsoftonline.com"


class LoginProxy(requests.Session):
    """MSAL insists on https authorities; the fake speaks plain HTTP on
    loopback. This session plays a TLS-terminating proxy: requests for
    https://login.microsoftonline.com/... go to the fake's login URL, with
    X-Forwarded-Proto/Host saying what was asked for (the fake then names its
    endpoints with that origin, as behind a real proxy). Everything else MSAL
    does (discovery, the client-credentials form, parsing, caching) is its own.
    """

    def __init__(self, login_url):
        super().__init__()
        self.login_url = login_url.rstrip("/")
        self.seen = []

    def request(self, method, url, *args, **kwargs):
        if url.startswith(REAL_LOGIN):
            url = self.login_url + url[len(REAL_LOGIN):]
            headers = dict(kwargs.pop("headers", None) or {})
            headers["X-Forwarded-Proto"] = "https"
            headers["X-Forwarded-Host"] = "login.microsoftonline.com"
            kwargs["headers"] = headers
        self.seen.append(f"{method} {url}")
        return super().request(method, url, *args, **kwargs)


def credentials(cfg, password):
    creds = MicrosoftAppCredentials(cfg["app_id"], password, channel_auth_tenant=cfg["tenant"])
    proxy = LoginProxy(cfg["login_url"])
    # The same ConfidentialClientApplication MicrosoftAppCredentials builds
    # for itself (authority = its oauth_endpoint), with the proxy as transport.
    creds.app = ConfidentialClientApplication(
        client_id=cfg["app_id"],
        client_credential=password,
        authority=creds.oauth_endpoint,
        http_client=proxy,
    )
    return creds, proxy


async def check_tokens(cfg):
    ChannelValidation.open_id_metadata_endpoint = cfg["metadata_url"]
    provider = SimpleCredentialProvider(cfg["app_id"], cfg["password"])
    out = {}
    for case in cfg["cases"]:
        activity = Activity().deserialize(case["activity"])
        try:
            identity = await JwtTokenValidation.authenticate_request(
                activity, case.get("auth_header") or "", provider
            )
            out[case["name"]] = {
                "accepted": bool(identity and identity.is_authenticated),
                "claims": identity.claims if identity else None,
            }
        except Exception as e:  # every refusal is an exception of some kind
            out[case["name"]] = {"accepted": False, "error": f"{type(e).__name__}: {e}"}
    return out


def check_connector(cfg):
    out = {}
    creds, proxy = credentials(cfg, cfg["password"])
    client = ConnectorClient(creds, base_url=cfg["service_url"])
    conv = client.conversations

    created = conv.create_conversation(
        ConversationParameters(
            is_group=True,
            channel_data={"channel": {"id": cfg["channel"]}},
            activity=Activity(type="message", text="conformance: a new thread"),
            tenant_id=cfg["tenant"],
        )
    )
    out["create"] = {"id": created.id, "activity_id": created.activity_id}

    reply = conv.send_to_conversation(
        created.id, Activity(type="message", text="conformance: a reply in the thread")
    )
    out["reply"] = {"id": reply.id}

    reply2 = conv.reply_to_activity(
        created.id,
        created.activity_id,
        Activity(type="message", text="conformance: a reply to the root"),
    )
    out["reply_to_activity"] = {"id": reply2.id}

    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": "conformance: updated", "wrap": True}],
        "actions": [{"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": {"id": "x"}}],
    }
    updated = conv.update_activity(
        created.id,
        created.activity_id,
        Activity(
            id=created.activity_id,
            type="message",
            attachments=[Attachment(content_type="application/vnd.microsoft.card.adaptive", content=card)],
        ),
    )
    out["update"] = {"id": updated.id}

    try:
        conv.update_activity(created.id, "1", Activity(id="1", type="message", text="nothing"))
        out["update_unknown"] = {"status": 200}
    except ErrorResponseException as e:
        err = e.error.error if e.error is not None else None
        out["update_unknown"] = {
            "status": e.response.status_code,
            "code": getattr(err, "code", None),
        }

    try:
        bad = ConnectorClient(credentials(cfg, "not-the-secret")[0], base_url=cfg["service_url"])
        bad.conversations.send_to_conversation(created.id, Activity(type="message", text="never"))
        out["wrong_secret"] = {"refused": False}
    except PermissionError as e:
        out["wrong_secret"] = {"refused": True, "error": str(e)}
    out["login_requests"] = proxy.seen
    return out


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    started = time.monotonic()
    report = {}
    try:
        report["tokens"] = asyncio.run(check_tokens(cfg))
    except Exception:
        report["tokens_error"] = traceback.format_exc()
    try:
        report["connector"] = check_connector(cfg)
    except Exception:
        report["connector_error"] = traceback.format_exc()
    report["seconds"] = round(time.monotonic() - started, 3)
    json.dump(report, sys.stdout, indent=1, default=str)
    print()


if __name__ == "__main__":
    main()
