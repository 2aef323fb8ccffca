"""The console in Chromium against a real `garrison up`: first-admin setup, two-step sign-in,
TOTP replay refusal, recovery codes, keyboard focus order, strict CSP and (optionally) axe-core.

All tests share one `garrison up` and the first admin it lets us create (a setup link works
once); each test signs in on its own fresh browser context.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Garrison

pytestmark = pytest.mark.browser

UI_TIMEOUT_MS = 30_000
STEP = 30
SETUP_RE = re.compile(r"https://\S+/setup/[A-Za-z0-9_-]+/")
RECOVERY_RE = re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$")
WRONG_CODE_TEXT = "That code is wrong or has already been used"
AXE_DEFAULT = "/tmp/axe/node_modules/axe-core/axe.min.js"  # noqa: S108  # where CI installs it
# Not GARRISON_*: Garrison refuses unknown GARRISON_ variables, and so would tests/settings.py.
AXE_JS = Path(os.environ.get("AXE_CORE_JS", AXE_DEFAULT))
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Records violations in every document, including ones whose CSP blocks every script.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.garrisonCspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def _step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // STEP)


@dataclass
class Account:
    """The first admin, as created through the setup page, and the codes it has used."""

    username: str
    display_name: str
    password: str
    secret: str
    recovery_codes: list[str]
    last_step: int
    last_code: str | None = None

    def fresh_code(self) -> str:
        """A TOTP code for a step newer than any used (waiting at most one step for it)."""
        step = max(_step(), self.last_step + 1)
        deadline = time.monotonic() + STEP + 5
        while step > _step() + 1 and time.monotonic() < deadline:  # server accepts now +- 1
            time.sleep(0.5)
        assert step <= _step() + 1, "TOTP clock did not advance"
        self.last_step = step
        self.last_code = pyotp.TOTP(self.secret).at(step * STEP)
        return self.last_code

    def wrong_code(self) -> str:
        """Six digits that are no valid code in or near the current window."""
        totp = pyotp.TOTP(self.secret)
        near = {totp.at((_step() + d) * STEP) for d in range(-3, 4)}
        return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)

    def recovery_code(self) -> str:
        """An unused recovery code (each is used once)."""
        return self.recovery_codes.pop()


@dataclass
class Enrolment:
    """What the browser saw while using the first-admin setup link."""

    account: Account
    setup_url: str
    setup_headers: dict[str, str]
    csp_console_errors: list[str]
    csp_violations: list[str]
    done_heading: str
    recovery_codes_shown: tuple[str, ...]


@dataclass
class Tab:
    """A page with every console message and CSP violation it produced."""

    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def record_console(self, message: ConsoleMessage) -> None:
        """Keep a console message."""
        self.console.append(message)

    def record_violation(self, text: str) -> None:
        """Keep a CSP violation reported by the page's listener."""
        self.violations.append(text)

    def csp_errors(self) -> list[str]:
        """Console errors that report a Content Security Policy violation."""
        return [
            m.text
            for m in self.console
            if m.type == "error" and "content security policy" in m.text.lower()
        ]


def open_tab(context: BrowserContext) -> Tab:
    """A new page that records console messages and CSP violations."""
    tab = Tab(context.new_page())
    tab.page.on("console", tab.record_console)
    tab.page.expose_function("garrisonCspViolation", tab.record_violation)
    tab.page.add_init_script(CSP_LISTENER)
    return tab


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (sync API)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as pw:
        expect.set_options(timeout=UI_TIMEOUT_MS)
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


def new_context(
    browser: Browser, garrison: Garrison, *, bypass_csp: bool = False
) -> BrowserContext:
    """A fresh browser profile (no cookies) pointed at the console."""
    context = browser.new_context(
        base_url=garrison.url, ignore_https_errors=True, bypass_csp=bypass_csp
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context


@pytest.fixture
def tab(browser: Browser, garrison_up: Garrison) -> Iterator[Tab]:
    """A page in a fresh context; its CSP must hold on every page it visits."""
    context = new_context(browser, garrison_up)
    tab = open_tab(context)
    yield tab
    context.close()
    assert not tab.csp_errors(), tab.csp_errors()
    assert not tab.violations, tab.violations


@pytest.fixture(scope="module")
def enrolment(browser: Browser, garrison_up: Garrison) -> Iterator[Enrolment]:
    """Create the first admin in the browser from the setup link `garrison up` printed."""
    setup_url = garrison_up.wait_for_line(SETUP_RE).group(0)
    assert setup_url.startswith(f"{garrison_up.url}/setup/"), setup_url
    context = new_context(browser, garrison_up)
    tab = open_tab(context)
    page = tab.page
    response = page.goto(setup_url)
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", name="Create the first admin")).to_be_visible()

    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    username, display_name = "ada", "Ada Lovelace"
    password = f"e2e {secrets.token_urlsafe(12)} battery"
    page.get_by_label("Username").fill(username)
    page.get_by_label("Display name").fill(display_name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    step = _step()
    page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).at(step * STEP))
    page.get_by_role("button", name="Save and finish").click()

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Your account is ready")
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    done_heading = heading.inner_text()
    page.get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(f"{garrison_up.url}/login/")
    account = Account(username, display_name, password, secret, list(codes), last_step=step)
    yield Enrolment(
        account,
        setup_url,
        response.headers,
        tab.csp_errors(),
        tab.violations,
        done_heading,
        tuple(codes),
    )
    context.close()


@pytest.fixture
def account(enrolment: Enrolment) -> Account:
    """The first admin (created once per module)."""
    return enrolment.account


def submit_password(page: Page, account: Account) -> None:
    """Step 1 of sign-in; ends on the second-factor page."""
    page.goto("/login/")
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/login/verify/$"))
    expect(page.get_by_role("heading", name="Second factor")).to_be_visible()


def submit_code(page: Page, code: str) -> None:
    """Step 2 of sign-in: an authenticator or recovery code."""
    page.get_by_label("Authenticator code or recovery code").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()


def expect_refused_code(page: Page) -> None:
    """The code was refused: an alert says so and we are still on the second-factor page."""
    expect(page.get_by_role("alert")).to_contain_text(WRONG_CODE_TEXT)
    expect(page).to_have_url(re.compile(r"/login/verify/$"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def expect_signed_in(page: Page, garrison: Garrison, account: Account) -> None:
    """We are on the overview, signed in as `account`."""
    expect(page).to_have_url(f"{garrison.url}/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"Signed in as {account.username}")
    expect(page.get_by_role("link", name=account.display_name)).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page, garrison: Garrison) -> None:
    """Use the Sign out button; ends on the sign-in page."""
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{garrison.url}/login/")
    expect(page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")


def test_setup_link_creates_first_admin_and_shows_recovery_codes(enrolment: Enrolment) -> None:
    """The printed one-time link enrols the first admin and shows ten recovery codes once."""
    assert enrolment.done_heading == "Your account is ready"
    codes = enrolment.recovery_codes_shown
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(RECOVERY_RE.fullmatch(c) for c in codes), codes


def test_setup_link_works_only_once(tab: Tab, enrolment: Enrolment) -> None:
    """Opening the used first-admin link again is refused with a 404 page."""
    response = tab.page.goto(enrolment.setup_url)
    assert response is not None
    assert response.status == 404
    expect(tab.page.locator("main")).to_contain_text("already used or expired")


def test_setup_page_has_strict_csp_and_no_violations(enrolment: Enrolment) -> None:
    """The setup page sent a CSP without 'unsafe-inline' and nothing on it broke that CSP."""
    csp = enrolment.setup_headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'none'"], csp
    assert directives.get("script-src") == ["'self'"], csp
    assert directives.get("style-src") == ["'self'"], csp
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert enrolment.csp_console_errors == []
    assert enrolment.csp_violations == []


def test_wrong_code_is_refused_then_right_code_signs_in_and_out(
    tab: Tab, garrison_up: Garrison, account: Account
) -> None:
    """A wrong TOTP code keeps us on the verify page; the right one signs in; Sign out ends it."""
    page = tab.page
    submit_password(page, account)
    submit_code(page, account.wrong_code())
    expect_refused_code(page)

    submit_code(page, account.fresh_code())
    expect_signed_in(page, garrison_up, account)
    sign_out(page, garrison_up)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))


def test_replayed_totp_code_is_refused_and_recovery_code_signs_in(
    tab: Tab, garrison_up: Garrison, account: Account
) -> None:
    """An already used TOTP code is refused; a recovery code signs in, and only once."""
    page = tab.page
    # Replay a code the server would still accept by time (its step is current), so only the
    # replay check can refuse it; if there is none (test run alone, or slow), use one first.
    if account.last_code is None or account.last_step < _step():
        submit_password(page, account)
        submit_code(page, account.fresh_code())
        expect_signed_in(page, garrison_up, account)
        sign_out(page, garrison_up)
    used = account.last_code
    assert used is not None

    submit_password(page, account)
    submit_code(page, used)
    expect_refused_code(page)

    recovery = account.recovery_code()
    submit_code(page, recovery)
    expect_signed_in(page, garrison_up, account)
    sign_out(page, garrison_up)

    submit_password(page, account)
    submit_code(page, recovery)
    expect_refused_code(page)


FOCUS_JS = """() => {
  const e = document.activeElement;
  const style = getComputedStyle(e);
  return {
    name: e.id || (e.textContent || "").trim() || e.tagName,
    visible: e.matches(":focus-visible") && style.outlineStyle !== "none"
      && parseFloat(style.outlineWidth) > 0,
  };
}"""


def test_sign_in_keyboard_order_and_visible_focus(tab: Tab) -> None:
    """Tab goes skip link, brand, username, password, Continue; each shows a focus outline."""
    page = tab.page
    page.goto("/login/")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus
    for _ in range(10):  # Tab round to the top of the page, as a keyboard user arrives there
        page.keyboard.press("Tab")
        if page.evaluate(FOCUS_JS)["name"] == "Skip to content":
            break
    stops = [page.evaluate(FOCUS_JS)]
    for _ in range(4):
        page.keyboard.press("Tab")
        stops.append(page.evaluate(FOCUS_JS))
    names = [s["name"] for s in stops]
    assert names == ["Skip to content", "Garrison", "id_username", "id_password", "Continue"]
    assert all(s["visible"] for s in stops), stops
    expect(page.get_by_role("button", name="Continue")).to_be_focused()


def _axe_violations(page: Page) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations axe-core finds on the current page."""
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        AXE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def test_console_pages_have_no_serious_accessibility_violations(
    browser: Browser, garrison_up: Garrison, account: Account
) -> None:
    """axe-core finds no serious/critical WCAG 2.1 AA issue on the main console pages."""
    if not AXE_JS.is_file():
        pytest.skip(
            f"axe-core not found at {AXE_JS}: npm install --no-save --prefix /tmp/axe axe-core "
            "(or set AXE_CORE_JS)"
        )
    context = new_context(browser, garrison_up, bypass_csp=True)  # CSP would block axe itself
    page = context.new_page()
    found: dict[str, list[str]] = {}
    try:
        page.goto("/login/")
        found["sign-in"] = _axe_violations(page)
        submit_password(page, account)
        found["verify"] = _axe_violations(page)
        submit_code(page, account.recovery_code())
        expect_signed_in(page, garrison_up, account)
        found["overview"] = _axe_violations(page)
        for name, path in [
            ("account", "/account/"),
            ("tokens", "/tokens/"),
            ("audit", "/audit/"),
            ("logs", "/logs/"),
            ("findings", "/findings/"),
            ("suppressions", "/findings/suppressions/"),
            ("ssh", "/ssh/"),
            ("users", "/users/"),  # last: the invitation below is made on this page
        ]:
            page.goto(path)
            found[name] = _axe_violations(page)

        page.get_by_label("Username").fill("grace")
        page.get_by_label("Role").select_option("auditor")
        page.get_by_role("button", name="Invite").click()
        invite = page.locator("#invite-link").inner_text().strip()
        sign_out(page, garrison_up)
        page.goto(invite)
        expect(page.get_by_role("heading", name="Welcome to Garrison")).to_be_visible()
        found["setup"] = _axe_violations(page)
    finally:
        context.close()
    problems = {page_name: v for page_name, v in found.items() if v}
    assert not problems, problems


def test_host_metrics_charts_render(tab: Tab, garrison_up: Garrison, account: Account) -> None:
    """`garrison up`'s own agent ships metrics; the monitor keeps them; the hosts page draws
    sparklines and the host's page its charts, in every range, under the strict CSP."""
    page = tab.page
    submit_password(page, account)
    submit_code(page, account.fresh_code())
    expect_signed_in(page, garrison_up, account)
    deadline = time.monotonic() + 90
    while True:
        page.goto("/hosts/")
        if page.locator("svg.spark polyline").count():
            break
        assert time.monotonic() < deadline, "no metrics reached the hosts page"
        time.sleep(2)
    page.locator("table a").first.click()
    expect(page.get_by_role("heading", name="Health checks")).to_be_visible()

    def points() -> int:
        lines = page.locator("svg.line polyline")
        return len((lines.first.get_attribute("points") or "").split()) if lines.count() else 0

    while points() < 2:
        assert time.monotonic() < deadline, "fewer than two points after 90 s"
        time.sleep(2)
        page.reload()
    expect(page.locator("svg.line")).to_have_count(6)
    box = page.locator("svg.line polyline").first.bounding_box()
    assert box is not None
    assert box["width"] > 0
    for chosen in ("day", "month"):
        page.get_by_role("link", name=f"last {chosen}").click()
        expect(page).to_have_url(re.compile(rf"\?range={chosen}$"))
        expect(page.locator("svg.line")).to_have_count(6)
    page.get_by_role("link", name="Services", exact=True).click()
    expect(page.get_by_role("heading", name="Services", level=1)).to_be_visible()
    sign_out(page, garrison_up)
