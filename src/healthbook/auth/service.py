"""The authentication service of one app: the token authenticator, the development provider, SMART discovery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from healthbook.auth.devidp.service import DevIdentityProvider
from healthbook.auth.tokens import Authenticator, build_authenticator, first_metadata
from healthbook.config import Settings
from healthbook.fhir.capability import security_section

SMART_CAPABILITIES = [
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-standalone-patient",
    "permission-v2",
    "permission-v1",
    "permission-patient",
    "permission-user",
]
SCOPES_SUPPORTED = [
    "openid",
    "fhirUser",
    "launch/patient",
    "patient/*.rs",
    "patient/*.read",
    "user/*.rs",
    "user/*.cruds",
    "system/*.rs",
    "system/*.cruds",
]


@dataclass
class AuthService:
    """What create_app wires for authentication (app.state.auth)."""

    settings: Settings
    authenticator: Authenticator
    dev_idp: DevIdentityProvider | None = None

    @staticmethod
    def build(
        settings: Settings,
        dev_idp: DevIdentityProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> AuthService:
        """The authenticator trusts the configured issuers and, when enabled, the development provider."""
        extra = [dev_idp.trusted_issuer()] if dev_idp is not None else []
        return AuthService(settings, build_authenticator(settings, extra, transport), dev_idp)

    async def _provider(self) -> dict[str, Any] | None:
        """The metadata of the authorization server to advertise: the development one first."""
        if self.dev_idp is not None:
            return self.dev_idp.metadata()
        found = await first_metadata(self.authenticator)
        return found[1] if found else None

    async def smart_configuration(self) -> dict[str, Any] | None:
        """The SMART App Launch 2.x configuration (`.well-known/smart-configuration`), None without a provider."""
        meta = await self._provider()
        if meta is None:
            return None
        out: dict[str, Any] = {
            "issuer": meta["issuer"],
            "jwks_uri": meta.get("jwks_uri"),
            "authorization_endpoint": meta.get("authorization_endpoint"),
            "token_endpoint": meta.get("token_endpoint"),
            "grant_types_supported": meta.get(
                "grant_types_supported", ["authorization_code", "client_credentials"]
            ),
            "token_endpoint_auth_methods_supported": _with(
                meta.get("token_endpoint_auth_methods_supported", []), "private_key_jwt"
            ),
            "token_endpoint_auth_signing_alg_values_supported": meta.get(
                "token_endpoint_auth_signing_alg_values_supported", ["RS384", "ES384"]
            ),
            "scopes_supported": SCOPES_SUPPORTED,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": SMART_CAPABILITIES,
        }
        for name in (
            "registration_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "userinfo_endpoint",
        ):
            if name in meta:
                out[name] = meta[name]
        return {k: v for k, v in out.items() if v is not None}

    async def capability_security(self) -> dict[str, Any]:
        """CapabilityStatement.rest.security: SMART-on-FHIR, with the OAuth URIs when a provider is known."""
        meta = await self._provider()
        return security_section(
            meta.get("authorization_endpoint") if meta else None,
            meta.get("token_endpoint") if meta else None,
            required=self.settings.auth == "required",
        )


def _with(values: list[str], value: str) -> list[str]:
    return values if value in values else [*values, value]
