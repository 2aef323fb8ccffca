"""REST endpoints of SSH: a person's own certificate (`garrison ssh login`), list, revoke."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from garrison.core.errors import NotFoundError, PermissionDeniedError
from garrison.server.accounts import throttle
from garrison.server.accounts.actions import verify_second_factor
from garrison.server.accounts.api import api_user
from garrison.server.accounts.middleware import client_ip
from garrison.server.accounts.models import User
from garrison.server.accounts.permissions import RolePermission
from garrison.server.accounts.roles import SELF_SERVICE
from garrison.server.api import Pagination
from garrison.server.bootstrap import ssh_authority
from garrison.server.ssh import actions, queries
from garrison.server.ssh.models import Certificate
from garrison.ssh.ca import parse_user_key

MAX_KEY_LENGTH = 16384


class CertificateSerializer(serializers.ModelSerializer[Certificate]):
    """A certificate as the API shows it (not the certificate itself: its record)."""

    serial = serializers.CharField(read_only=True, help_text="As a string: it is 63 bits.")
    state = serializers.CharField(read_only=True, help_text="valid, expired or revoked.")

    class Meta:
        model = Certificate
        fields = (
            "serial",
            "kind",
            "key_id",
            "principals",
            "fingerprint",
            "valid_after",
            "valid_before",
            "issued_by",
            "issued_at",
            "revoked_at",
            "state",
        )
        read_only_fields = fields


class LoginSerializer(serializers.Serializer[Any]):
    """A certificate request: the key, the second factor, and (without a token) the password."""

    public_key = serializers.CharField(max_length=MAX_KEY_LENGTH, trim_whitespace=True)
    totp = serializers.RegexField(r"^\s*\d{3}\s?\d{3}\s*$", help_text="The current TOTP code.")
    ttl_hours = serializers.FloatField(required=False, min_value=0.01)
    username = serializers.CharField(max_length=150, required=False)
    password = serializers.CharField(max_length=1024, required=False, trim_whitespace=False)


class IssuedSerializer(serializers.Serializer[Any]):
    """What `garrison ssh login` receives: the certificate and how to use it."""

    serial = serializers.CharField()
    certificate = serializers.CharField(help_text="The -cert.pub line.")
    key_id = serializers.CharField()
    principals = serializers.ListField(child=serializers.CharField())
    valid_before = serializers.DateTimeField()
    known_hosts = serializers.ListField(
        child=serializers.CharField(), help_text="@cert-authority lines for known_hosts."
    )
    ssh_config = serializers.CharField(help_text="A snippet for ~/.ssh/config.")


def _person(request: Request, data: dict[str, Any]) -> User:
    """The caller by API token, else by username and password (throttled like sign-in)."""
    if isinstance(request.user, User) and request.user.is_authenticated:
        return request.user
    username, password = data.get("username"), data.get("password")
    if not username or password is None:
        raise PermissionDeniedError(
            "send an API token (Authorization: Bearer ...), or username and password"
        )
    name = str(username).strip().lower()
    attempt = throttle.begin(name, client_ip(request))
    user = authenticate(request._request, username=name, password=password)
    if not isinstance(user, User):
        raise PermissionDeniedError("wrong username or password")
    attempt.succeeded()
    return user


def ssh_config(known_hosts: str = "~/.ssh/garrison_known_hosts") -> str:
    """The ``~/.ssh/config`` lines that make plain ``ssh host`` go through the bastion and
    check hosts by the host CA (``known_hosts`` holds the ``@cert-authority`` lines)."""
    lines = ["# Garrison: certificates from `garrison ssh login`"]
    bastion = settings.GARRISON.ssh_bastion
    if bastion:
        host, _, port = bastion.partition(":")
        lines += [f"Host {host}", f"  Port {port or 22}", f"Host * !{host}", f"  ProxyJump {host}"]
    lines += [
        "Host *",
        f"  UserKnownHostsFile {known_hosts}",
        "  StrictHostKeyChecking yes",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication yes",  # the bastion's TOTP prompt
    ]
    return "\n".join(lines) + "\n"


class TokenOrPassword(RolePermission):
    """A token as every write needs one (role, scope), or else a username and password in the
    body, which the view checks (throttled) before anything else."""

    def has_permission(self, request: Request, view: Any) -> bool:
        """Token callers as usual; others only with a username to check."""
        if isinstance(request.user, User) and request.user.is_authenticated:
            return super().has_permission(request, view)
        return isinstance(request.data, dict) and "username" in request.data


class LoginView(APIView):
    """A person's own SSH user certificate, after their second factor."""

    permission_classes = [TokenOrPassword]
    write_roles = SELF_SERVICE

    @extend_schema(
        operation_id="ssh_login",
        request=LoginSerializer,
        responses={201: IssuedSerializer},
        extensions={"x-garrison-auth": "bearer token, or username and password in the body"},
    )
    def post(self, request: Request) -> Response:
        """Certify `public_key` for the caller (API token or password, and a TOTP code)."""
        data = LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        person = _person(request, v)
        if person.role not in SELF_SERVICE:
            raise PermissionDeniedError(f"the {person.role} role gets no SSH certificates")
        actions.user_lifetime(v.get("ttl_hours"), person.role)  # bad input must not spend the code
        parse_user_key(v["public_key"])
        verify_second_factor(person, v["totp"], client_ip(request))
        issued = actions.do_issue_for_person(person, v["public_key"], v.get("ttl_hours"))
        authority = ssh_authority(settings.PREPARED)
        body = {
            "serial": str(issued.serial),
            "certificate": issued.certificate,
            "key_id": issued.key_id,
            "principals": list(issued.principals),
            "valid_before": issued.valid_before,
            "known_hosts": [f"@cert-authority * {key}" for key in authority.trusted("host")],
            "ssh_config": ssh_config(),
        }
        return Response(IssuedSerializer(body).data, status=status.HTTP_201_CREATED)


class CertificateListView(APIView):
    """SSH certificates: everyone's for operators, admins and auditors; one's own otherwise."""

    pagination_class = Pagination

    @extend_schema(operation_id="ssh_certificates_list", responses=CertificateSerializer(many=True))
    def get(self, request: Request) -> Response:
        """Certificates, newest first."""
        pager = Pagination()
        page = pager.paginate_queryset(queries.visible_to(api_user(request)), request, self)
        return pager.get_paginated_response(CertificateSerializer(page, many=True).data)


class CertificateDetailView(APIView):
    """One certificate, by serial."""

    write_roles = SELF_SERVICE

    @extend_schema(operation_id="ssh_certificates_revoke", responses={200: CertificateSerializer})
    def delete(self, request: Request, serial: str) -> Response:
        """Revoke a certificate (one's own; operators and admins: anyone's)."""
        if not serial.isdigit() or int(serial) >= 2**63:  # serials are 63-bit
            raise NotFoundError(f"no SSH certificate with serial {serial[:40]!r}")
        revoked = actions.do_revoke(api_user(request), int(serial))
        return Response(CertificateSerializer(revoked).data)
