"""Every API v1 route, in one namespace: the audit trail names calls `api.<route>.<method>`."""

from django.urls import path

from garrison.server.accounts import api as accounts
from garrison.server.audit import api as audit
from garrison.server.findings import api as findings
from garrison.server.fleet import api as fleet
from garrison.server.logs import api as logs
from garrison.server.ssh import api as ssh

app_name = "api"
urlpatterns = [
    path("me", accounts.MeView.as_view(), name="me"),
    path("users", accounts.UserListView.as_view(), name="users"),
    path("users/<str:username>", accounts.UserDetailView.as_view(), name="user"),
    path(
        "users/<str:username>/reset-access",
        accounts.UserResetAccessView.as_view(),
        name="user-reset-access",
    ),
    path("tokens", accounts.TokenListView.as_view(), name="tokens"),
    path("tokens/<str:token_id>", accounts.TokenDetailView.as_view(), name="token"),
    path("sessions", accounts.SessionListView.as_view(), name="sessions"),
    path("sessions/<str:session_id>", accounts.SessionDetailView.as_view(), name="session"),
    path("audit/events", audit.AuditEventListView.as_view(), name="audit-events"),
    path("audit/events/<str:event_id>", audit.AuditEventDetailView.as_view(), name="audit-event"),
    path("hosts", fleet.HostListView.as_view(), name="hosts"),
    path("agent/join", fleet.HostJoinView.as_view(), name="agent-join"),
    path("hosts/<str:name>", fleet.HostDetailView.as_view(), name="host"),
    path("hosts/<str:name>/metrics", fleet.HostMetricsView.as_view(), name="host-metrics"),
    path("services", fleet.ServiceListView.as_view(), name="services"),
    path("findings", findings.FindingListView.as_view(), name="findings"),
    path("findings/<str:finding_id>", findings.FindingDetailView.as_view(), name="finding"),
    path("suppressions", findings.SuppressionListView.as_view(), name="suppressions"),
    path(
        "suppressions/<str:suppression_id>",
        findings.SuppressionDetailView.as_view(),
        name="suppression",
    ),
    path("logs/streams", logs.StreamListView.as_view(), name="log-streams"),
    path("logs/search", logs.LogSearchView.as_view(), name="log-search"),
    path("ssh/login", ssh.LoginView.as_view(), name="ssh-login"),
    path("ssh/certificates", ssh.CertificateListView.as_view(), name="ssh-certificates"),
    path(
        "ssh/certificates/<str:serial>",
        ssh.CertificateDetailView.as_view(),
        name="ssh-certificate",
    ),
]
