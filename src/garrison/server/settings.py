"""Django settings, derived from Garrison's typed settings (never edited by operators)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from garrison import __version__
from garrison.core import settings as garrison_settings
from garrison.server.bootstrap import prepare

GARRISON = garrison_settings.load()
PREPARED = prepare(GARRISON)

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = PREPARED.secret_key
DEBUG = False
ALLOWED_HOSTS = sorted(
    {GARRISON.host, "localhost", "127.0.0.1", "::1", urlsplit(GARRISON.console_url).hostname or ""}
    - {""}
)
CSRF_TRUSTED_ORIGINS = [GARRISON.console_url]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "rest_framework",
    "drf_spectacular",
    "garrison.server.accounts",
    "garrison.server.audit",
    "garrison.server.logs",
    "garrison.server.fleet",
    "garrison.server.findings",
    "garrison.server.ssh",
    "garrison.server.backups",
    "garrison.server.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "garrison.server.console.middleware.SecurityHeadersMiddleware",
    # Outermost after headers: every request is audited, even one refused for its Host header,
    # and the session save happens inside the request's transaction.
    "garrison.server.audit.middleware.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "garrison.server.accounts.middleware.SessionPolicyMiddleware",
    "garrison.server.audit.middleware.AuditActorMiddleware",
    "garrison.server.accounts.middleware.LoginRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "garrison.server.urls"
ASGI_APPLICATION = "garrison.server.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "garrison.server.console.context.console",
            ],
        },
    }
]

if GARRISON.database_url:
    DATABASES = {"default": dj_database_url.parse(GARRISON.database_url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(PREPARED.data.sqlite),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.BCryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("username", "display_name", "email")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "garrison.server.accounts.passwords.MaximumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SESSION_ENGINE = "garrison.server.accounts.sessions"
SESSION_COOKIE_NAME = "__Host-garrison-session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = GARRISON.session_idle_minutes * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_ABSOLUTE_SECONDS = GARRISON.session_absolute_hours * 3600
CSRF_COOKIE_NAME = "__Host-garrison-csrf"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "garrison.server.console.views.csrf_failure"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

SECURE_HSTS_SECONDS = 63072000
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = None
SECURE_SSL_REDIRECT = False  # there is no plain-HTTP listener to redirect from
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "/static/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "garrison.server.accounts.api_auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["garrison.server.accounts.permissions.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "garrison.server.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "garrison.server.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "garrison.server.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Garrison API",
    "DESCRIPTION": "Garrison control-plane API. Send `Authorization: Bearer <token>`.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
}
SILENCED_SYSTEM_CHECKS = [
    "security.W005",  # HSTS includeSubDomains: the operator's domain may host other sites
    "security.W008",  # SSL redirect: Garrison has no plain-HTTP listener to redirect from
    "security.W021",  # HSTS preload: a decision for the operator's domain, not ours
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "garrison.core.redact.RedactFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": GARRISON.log_level.upper()},
}
