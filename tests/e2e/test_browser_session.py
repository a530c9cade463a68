"""A console left alone in a real browser (chromium, as in test_browser.py)
is signed out.  Its own file: the test waits out the shortest idle time
[web] session_idle accepts (60 s), and with --dist loadfile a file of its
own waits beside the rest of the suite rather than after the other
browser tests.
"""

import time

from selenium.webdriver.common.by import By

import hdharness
from test_browser import (_shared_chromium, browser,  # noqa: F401 (fixtures)
                          console_sign_in, shot, text, wait_for)


def test_console_session_expires_in_chromium(make_daemon, browser):
    """[web] session_idle: a console left alone longer is signed out at its
    next request and shows the sign-in form."""
    d = make_daemon({"web": {"session_idle": "60"}})
    hdharness.build_demo(d)
    drv = browser
    console_sign_in(drv, d, d.admin_token)
    row = '#where-table tr[data-ext="acme/102"]'
    wait_for(drv, lambda: text(drv, row) != "", "who-is-where")
    # (an idle time that starts again at each request: tests/test_session.c)
    time.sleep(65)
    drv.find_element(By.ID, "where-refresh").click()
    wait_for(drv, lambda: drv.find_element(By.ID, "login").is_displayed(), "signed out")
    shot(drv, "session-expired")
